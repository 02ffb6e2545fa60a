// Package natstest gives tests and benchmarks a NATS server, in the manner
// of net/http/httptest: an embedded nats-server on a random loopback port,
// shut down in Cleanup, or the server named by NATS_URL when that is set.
package natstest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
)

// Server is a NATS server for a test.
type Server struct {
	// URL is where clients connect.
	URL string
	// Version is the server's version as it reports it.
	Version string
	// External is true when the server came from NATS_URL.
	External bool
	srv      *server.Server
}

// Start returns a server for tb, shut down when tb ends. With NATS_URL set it
// returns that server instead, after checking it answers.
func Start(tb testing.TB) *Server {
	tb.Helper()
	url := os.Getenv(pipelines.EnvNATSURL)
	s, err := New(url)
	if err != nil {
		if url != "" {
			tb.Fatalf("natstest: the server NATS_URL names: %v", err)
		}
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// New starts an embedded server on a random loopback port when url is empty,
// else checks that the server at url answers and describes it. Close it.
func New(url string) (*Server, error) {
	if url != "" {
		nc, err := nats.Connect(url, nats.Name("natstest-probe"), nats.Timeout(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", url, err)
		}
		defer nc.Close()
		return &Server{URL: url, Version: nc.ConnectedServerVersion(), External: true}, nil
	}
	opts := natsserver.DefaultTestOptions
	opts.Host = "127.0.0.1"
	opts.Port = server.RANDOM_PORT
	opts.NoLog, opts.NoSigs = true, true
	opts.MaxPayload = 1 << 20
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats-server: not ready for connections after 10s")
	}
	return &Server{URL: srv.ClientURL(), Version: server.VERSION, srv: srv}, nil
}

// Close shuts an embedded server down and waits for it; it does nothing for
// an external one.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Shutdown stops an embedded server at once, as a crash would, for tests of
// what a run does when its server goes away.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
	}
}
