package amqp

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:guest@127.0.0.1:5672/":      "amqp://guest:***@127.0.0.1:5672/",
		"amqps://u:p%40ss@host/vhost?heartbeat=5": "amqps://u:***@host/vhost?heartbeat=5",
		"amqp://user@host/":                       "amqp://***@host/",
		"amqp://host:5672/":                       "amqp://host:5672/",
		"amqp://a:b@h1/,amqp://c:d@h2/":           "amqp://a:***@h1/,amqp://c:***@h2/",
		"amqp://u:we:ird@pw@host/":                "amqp://u:***@host/",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPassword(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:guest@127.0.0.1:5672/": "guest",
		"amqp://u:p%40ss@host/vhost":         "p%40ss",
		"amqp://u:we:ird@pw@host/":           "we:ird@pw",
		"amqp://user@host/":                  "",
		"amqp://host/":                       "",
		"amqp://u:secret@host":               "secret",
		"amqp://u:secret@host?x=1":           "secret",
	} {
		if got := password(in); got != want {
			t.Errorf("password(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestScrub: an error that quotes the URL or the password (url.Parse's
// do) comes out masked, and still unwraps to the original.
func TestScrub(t *testing.T) {
	raw := "amqp://u:p%40ss word@host:x/"
	// What url.Parse returns for it: the URL quoted.
	perr := &url.Error{Op: "parse", URL: raw, Err: errors.New(`invalid port ":x" after host`)}
	cases := []error{
		perr,
		errors.New("failed for p@ss word"),
		errors.New("failed for " + raw),
	}
	for _, err := range cases {
		got := scrub(err, raw)
		if strings.Contains(got.Error(), "p%40ss") || strings.Contains(got.Error(), "p@ss") {
			t.Errorf("scrub(%q) = %q: password left", err, got)
		}
		if !errors.Is(got, err) {
			t.Errorf("scrub(%q) does not unwrap to it", err)
		}
	}
	plain := errors.New("connection refused")
	if got := scrub(plain, raw); got != plain {
		t.Errorf("scrub changed an error without secrets: %v", got)
	}
	if scrub(nil, raw) != nil {
		t.Error("scrub(nil) != nil")
	}
}

// TestBadURL: a URL that does not parse is an error without its password.
func TestBadURL(t *testing.T) {
	raw := "amqp://u:hunter2@host:notaport/"
	_, err := Dial(t.Context(), raw, "w", 0)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "u:***@") {
		t.Fatalf("Dial of a bad URL: %v", err)
	}
}

func TestDeliveryCount(t *testing.T) {
	for _, v := range []any{int64(2), int32(2), int16(2), int8(2), 2, uint64(2), uint32(2), uint16(2), uint8(2)} {
		if n, ok := deliveryCount(map[string]any{deliveryCountHeader: v}); !ok || n != 2 {
			t.Errorf("deliveryCount(%T 2) = %d, %v", v, n, ok)
		}
	}
	if _, ok := deliveryCount(nil); ok {
		t.Error("deliveryCount(nil) found a count")
	}
	if _, ok := deliveryCount(map[string]any{deliveryCountHeader: "2"}); ok {
		t.Error("deliveryCount of a string found a count")
	}
}
