package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natspipe/natspipe/internal/natstest"
)

// TestServerVersion: with no server named, natspipe server-version starts
// the embedded nats-server this build links and prints its version; with
// one named, it asks that server.
func TestServerVersion(t *testing.T) {
	t.Setenv("NATS_URL", "")
	t.Setenv("NATS_CONTEXT", "")
	var out, errOut bytes.Buffer
	if code := runServerVersion(nil, &out, &errOut); code != 0 || out.String() != server.VERSION+" (embedded)\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out.String(), errOut.String(), server.VERSION+" (embedded)\n")
	}

	srv := natstest.StartWith(t, nil)
	out.Reset()
	if code := runServerVersion([]string{"-url", srv.URL}, &out, &errOut); code != 0 || !regexp.MustCompile(`^\S+ \(external\)\n$`).MatchString(out.String()) {
		t.Errorf("-url: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
