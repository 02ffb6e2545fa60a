package natstest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/internal/natstest"
)

func checkLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := goleak.Find(before); err != nil {
			t.Errorf("goroutines outlived the test: %v", err)
		}
	})
}

// An embedded server keeps a file stream's messages across a restart on
// the same port, and Close removes its store.
func TestRestartKeepsStream(t *testing.T) {
	checkLeaks(t)
	t.Setenv("NATS_URL", "")
	t.Setenv("NATS_CONTEXT", "")
	srv := natstest.Start(t)
	if err := srv.CheckJetStream(); err != nil {
		t.Fatal(err)
	}
	store := srv.StoreDir
	if store == "" {
		t.Fatal("no JetStream store directory")
	}
	nc, err := nats.Connect(srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	url := srv.URL
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if srv.URL != url {
		t.Fatalf("URL after restart %s, want %s", srv.URL, url)
	}
	// The client reconnects on its own; the stream is found again.
	var info *jetstream.StreamInfo
	for {
		s, err := js.Stream(ctx, "T")
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after restart, want 1", info.State.Msgs)
	}
	if err := srv.Start(); err == nil {
		t.Fatal("Start of a running server: no error")
	}
	nc.Close()
	srv.Close()
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("store %s after Close: %v, want it gone", store, err)
	}
}

// A server without JetStream gets an error naming it, with its password
// masked, within the probe's bound.
func TestCheckJetStreamOff(t *testing.T) {
	checkLeaks(t)
	const password = "s3cret-pw"
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.JetStream = false
		o.Username, o.Password = "u", password
	})
	if srv.StoreDir != "" {
		t.Errorf("StoreDir %q for a server without JetStream", srv.StoreDir)
	}
	srv.Conn.URL = strings.Replace(srv.URL, "nats://", "nats://u:"+password+"@", 1)
	srv.URL = srv.Conn.URL
	start := time.Now()
	err := srv.CheckJetStream()
	if err == nil {
		t.Fatal("no error from a server without JetStream")
	}
	t.Logf("error: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	msg := err.Error()
	if strings.Contains(msg, password) {
		t.Fatalf("error shows the password: %v", err)
	}
	if !strings.Contains(msg, "does not offer JetStream") || !strings.Contains(msg, "127.0.0.1") {
		t.Fatalf("error %q does not say the server at its URL lacks JetStream", msg)
	}
	if d := time.Since(start); d > natsserver.CheckTimeout+5*time.Second {
		t.Fatalf("probe took %v, bound %v", d, natsserver.CheckTimeout)
	}
}
