// Package natstest gives tests and benchmarks a NATS server, in the manner
// of net/http/httptest: an embedded nats-server on a random loopback port,
// shut down in Cleanup, or the server named by NATS_URL (or NATS_CONTEXT),
// with the credentials and TLS files the NATS_* variables give, when set.
package natstest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"

	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// Server is a NATS server for a test.
type Server struct {
	// URL is where clients connect. It may hold a password: print Conn
	// (or natsconn.Mask(URL)), never URL itself.
	URL string
	// Conn is how to connect: URL with the credentials and TLS settings of
	// an external server; connect with Conn, not URL.
	Conn natsconn.Config
	// Version is the server's version as it reports it.
	Version string
	// External is true when the server came from NATS_URL or NATS_CONTEXT.
	External bool
	srv      *server.Server
}

// Start returns a server for tb, shut down when tb ends. With NATS_URL or
// NATS_CONTEXT set it returns that server instead, connecting with the
// NATS_* settings (see natsconn), after checking it answers.
func Start(tb testing.TB) *Server {
	tb.Helper()
	conn, err := natsconn.Load(os.Getenv)
	if err != nil {
		tb.Fatalf("natstest: NATS_* settings: %v", err)
	}
	s, err := New(conn)
	if err != nil {
		if conn.URL != "" {
			tb.Fatalf("natstest: the server NATS_URL names: %v", err)
		}
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// StartWith returns an embedded server for tb, configured by configure
// (authentication, TLS) on top of the defaults (random loopback port), shut
// down when tb ends. Its Conn has only the URL: the test adds credentials.
func StartWith(tb testing.TB, configure func(*server.Options)) *Server {
	tb.Helper()
	s, err := embedded(configure)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// New starts an embedded server on a random loopback port when conn names
// no server, else checks that the server conn names answers and describes
// it. Close it.
func New(conn natsconn.Config) (*Server, error) {
	if conn.URL != "" {
		nc, err := conn.Connect("natstest-probe")
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		return &Server{URL: conn.URL, Conn: conn, Version: nc.ConnectedServerVersion(), External: true}, nil
	}
	return embedded(nil)
}

func embedded(configure func(*server.Options)) (*Server, error) {
	opts := natsserver.DefaultTestOptions
	opts.Host = "127.0.0.1"
	opts.Port = server.RANDOM_PORT
	opts.NoLog, opts.NoSigs = true, true
	opts.MaxPayload = 1 << 20
	if configure != nil {
		configure(&opts)
	}
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats-server: not ready for connections after 10s")
	}
	u := srv.ClientURL()
	return &Server{URL: u, Conn: natsconn.Config{URL: u}, Version: server.VERSION, srv: srv}, nil
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
