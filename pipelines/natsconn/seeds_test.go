package natsconn_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// deadURL is the URL of a loopback port nothing listens on (bound, then
// released), with userInfo ("" for none) before the host.
func deadURL(t *testing.T, userInfo string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "nats://" + userInfo + "127.0.0.1:" + strconv.Itoa(port)
}

// TestSeedListSkipsUnreachable: a seed list with servers that do not
// answer connects through the one that does, in order (the dead ones
// first) or at random.
func TestSeedListSkipsUnreachable(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.StartWith(t, nil)
	seeds := natsconn.Config{URL: strings.Join([]string{deadURL(t, "u:dead-pw@"), deadURL(t, ""), srv.URL}, ",")}
	for _, c := range []natsconn.Config{seeds, seeds.From(0)} {
		for range 3 {
			nc, err := c.Connect("seeds")
			if err != nil {
				t.Fatalf("connect with %v: %v", c, err)
			}
			if got := nc.ConnectedUrl(); got != srv.URL {
				t.Errorf("%v: connected to %s, want the live %s", c, got, srv.URL)
			}
			nc.Close()
		}
	}
}

// TestSeedListAllUnreachable: when no server of the list answers, Connect
// fails within a bound, naming every URL with its password masked.
func TestSeedListAllUnreachable(t *testing.T) {
	benchkit.CheckLeaks(t)
	const password = "seed-s3cret"
	urls := []string{deadURL(t, "u:"+password+"@"), deadURL(t, ""), deadURL(t, "")}
	c := natsconn.Config{URL: strings.Join(urls, ",")}
	start := time.Now()
	nc, err := c.Connect("seeds")
	took := time.Since(start)
	if err == nil {
		nc.Close()
		t.Fatalf("connected to %s; nothing listens there", nc.ConnectedUrl())
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	msg := err.Error()
	if strings.Contains(msg, password) {
		t.Errorf("error shows the password: %v", err)
	}
	for _, u := range urls {
		if !strings.Contains(msg, natsconn.Mask(u)) {
			t.Errorf("error %q does not name %s", msg, natsconn.Mask(u))
		}
	}
	// Each server gets one attempt of at most ConnectTimeout (a refused
	// port answers at once).
	if bound := time.Duration(len(urls))*natsconn.ConnectTimeout + 5*time.Second; took > bound {
		t.Errorf("failed after %v, bound %v", took, bound)
	}
}

// TestFrom: From rotates the seed list to start at server i (modulo its
// length) and connects in that order; the child environment carries it.
func TestFrom(t *testing.T) {
	c := natsconn.Config{URL: "nats://a:1, nats://b:2,nats://c:3"}
	for i, want := range map[int]string{0: "nats://a:1,nats://b:2,nats://c:3", 1: "nats://b:2,nats://c:3,nats://a:1", 5: "nats://c:3,nats://a:1,nats://b:2", -1: "nats://c:3,nats://a:1,nats://b:2"} {
		got := c.From(i)
		if got.URL != want || !got.Ordered {
			t.Errorf("From(%d) = %q ordered %v, want %q ordered", i, got.URL, got.Ordered, want)
		}
	}
	if c.URL != "nats://a:1, nats://b:2,nats://c:3" || c.Ordered {
		t.Errorf("From changed its receiver: %v", c)
	}
	if one := (natsconn.Config{URL: "nats://a:1"}).From(2); one.URL != "nats://a:1" {
		t.Errorf("From(2) of one server: %q", one.URL)
	}
	child := map[string]string{}
	for _, kv := range c.From(1).Environ() {
		k, v, _ := strings.Cut(kv, "=")
		child[k] = v
	}
	if got := natsconn.FromEnv(func(k string) string { return child[k] }); got != c.From(1) {
		t.Errorf("child reads %v, want %v", got, c.From(1))
	}
	if s := c.From(1).String(); !strings.Contains(s, "in order") {
		t.Errorf("String %q does not say the list is in order", s)
	}
}
