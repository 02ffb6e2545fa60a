package natsserver_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// TestEmbed: an embedded server listens on loopback, runs the version this
// build links, takes payloads up to MaxPayload, and leaves no goroutine
// behind once closed.
func TestEmbed(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv, err := natsserver.Embed(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "nats://127.0.0.1:") || srv.Version != server.VERSION || srv.External {
		t.Errorf("server %s version %s external %v, want loopback, %s, embedded", srv.URL, srv.Version, srv.External, server.VERSION)
	}
	nc, err := srv.Conn.Connect("natsserver-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != natsserver.MaxPayload {
		t.Errorf("max payload %d, want %d", got, natsserver.MaxPayload)
	}
}

// TestEmbedConfigure: configure's options apply (here a token the client
// must give), and an unusable configuration is an error, not a hang.
func TestEmbedConfigure(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv, err := natsserver.Embed(func(o *server.Options) { o.Authorization = "tok" })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if nc, err := srv.Conn.Connect("no-token"); err == nil {
		nc.Close()
		t.Error("connected without the token")
	}
	withToken := srv.Conn
	withToken.Token = "tok"
	nc, err := withToken.Connect("token")
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()

	// nats-server refuses a max payload above max pending (64 MiB).
	if s, err := natsserver.Embed(func(o *server.Options) { o.MaxPayload = 1 << 30 }); err == nil {
		s.Close()
		t.Error("max payload 1 GiB: no error")
	} else if !strings.Contains(err.Error(), "embedded nats-server") {
		t.Errorf("error %q does not say what failed", err)
	}
}

// TestOpenUnreachable: a named server that does not answer is an error.
func TestOpenUnreachable(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv, err := natsserver.Embed(nil)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL
	srv.Close()
	if s, err := natsserver.Open(natsconn.Config{URL: url}); err == nil {
		s.Close()
		t.Errorf("Open(%s) of a closed server: no error", url)
	}
}
