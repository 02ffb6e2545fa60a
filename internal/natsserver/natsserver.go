// Package natsserver gives natspipe the NATS server a run uses: the server
// a natsconn.Config names, or, when it names none, the nats-server this
// build links (its version pinned in go.mod), embedded in the process on a
// random loopback port. It is production code ("natspipe run" and
// "natspipe server-version" use it); the test helper built on it is
// internal/natstest.
package natsserver

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// ReadyTimeout bounds how long Embed waits for an embedded server to accept
// connections.
const ReadyTimeout = 10 * time.Second

// MaxPayload is the largest message an embedded server accepts: the
// largest payload natspipe sends plus its envelope, with room to spare.
const MaxPayload = 1 << 20

// Server is a NATS server: embedded (Close shuts it down) or external.
type Server struct {
	// URL is where clients connect. It may hold a password: print Conn
	// (or natsconn.Mask(URL)), never URL itself.
	URL string
	// Conn is how to connect: URL with the credentials and TLS settings of
	// an external server; connect with Conn, not URL.
	Conn natsconn.Config
	// Version is the server's version as it reports it.
	Version string
	// External is true when the server is one conn named (Open), not an
	// embedded one.
	External bool
	srv      *server.Server
}

// Open starts an embedded server (see Embed) when conn names no server,
// else checks that the server conn names answers and describes it. Close
// the server.
func Open(conn natsconn.Config) (*Server, error) {
	if conn.URL != "" {
		nc, err := conn.Connect("natspipe-probe")
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		return &Server{URL: conn.URL, Conn: conn, Version: nc.ConnectedServerVersion(), External: true}, nil
	}
	return Embed(nil)
}

// Embed starts the nats-server this build links in this process, on a
// random port of 127.0.0.1, without logging or signal handlers, and waits
// (at most ReadyTimeout) until it accepts connections. configure, when not
// nil, changes the options first (authentication, TLS); the returned
// server's Conn then holds only the URL, the caller adds credentials.
// Close the server.
func Embed(configure func(*server.Options)) (*Server, error) {
	opts := server.Options{
		Host:                  "127.0.0.1",
		Port:                  server.RANDOM_PORT,
		NoLog:                 true,
		NoSigs:                true,
		MaxControlLine:        4096,
		DisableShortFirstPing: true,
		MaxPayload:            MaxPayload,
	}
	if configure != nil {
		configure(&opts)
	}
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats-server: not ready for connections after %v", ReadyTimeout)
	}
	u := srv.ClientURL()
	return &Server{URL: u, Conn: natsconn.Config{URL: u}, Version: server.VERSION, srv: srv}, nil
}

// Close shuts an embedded server down and waits until it has stopped; it
// does nothing for an external one.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Shutdown stops an embedded server at once, as a crash would, for tests of
// what a run does when its server goes away; it does nothing for an
// external one.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
	}
}
