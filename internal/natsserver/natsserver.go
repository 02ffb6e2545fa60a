// Package natsserver gives natspipe the NATS server a run uses: the server
// a natsconn.Config names, or, when it names none, the nats-server this
// build links (its version pinned in go.mod), embedded in the process on a
// random loopback port. It is production code ("natspipe run" and
// "natspipe server-version" use it); the test helper built on it is
// internal/natstest.
//
// An embedded server runs with JetStream on, its file store in a temporary
// directory that Close removes, with limits small enough for a test machine
// (JetStreamMaxMemory, JetStreamMaxStore). It can be stopped and started
// again on the same port and store (Restart, or Shutdown then Start), as a
// server restart in production would. EmbedCluster starts several such
// servers joined by routes into one cluster, JetStream clustered.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// ReadyTimeout bounds how long an embedded server may take to accept
// connections.
const ReadyTimeout = 10 * time.Second

// CheckTimeout bounds the JetStream probe of CheckJetStream.
const CheckTimeout = 5 * time.Second

// MaxPayload is the largest message an embedded server accepts: the
// largest payload natspipe sends plus its envelope, with room to spare.
const MaxPayload = 1 << 20

// JetStream limits of an embedded server: the memory and file storage its
// streams may use in all.
const (
	JetStreamMaxMemory = 64 << 20
	JetStreamMaxStore  = 512 << 20
)

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
	// StoreDir is an embedded server's JetStream store, removed by Close;
	// empty for an external server or one configured without JetStream.
	StoreDir string

	mu     sync.Mutex
	srv    *server.Server
	opts   server.Options // how srv was configured, port fixed once bound
	closed bool
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
// random port of 127.0.0.1, with JetStream on, without logging or signal
// handlers, and waits (at most ReadyTimeout) until it accepts connections.
// configure, when not nil, changes the options first (authentication, TLS,
// JetStream off); the returned server's Conn then holds only the URL, the
// caller adds credentials. Close the server.
func Embed(configure func(*server.Options)) (*Server, error) {
	opts := server.Options{
		Host:                  "127.0.0.1",
		Port:                  server.RANDOM_PORT,
		NoLog:                 true,
		NoSigs:                true,
		MaxControlLine:        4096,
		DisableShortFirstPing: true,
		MaxPayload:            MaxPayload,
		JetStream:             true,
		JetStreamMaxMemory:    JetStreamMaxMemory,
		JetStreamMaxStore:     JetStreamMaxStore,
	}
	if configure != nil {
		configure(&opts)
	}
	s := &Server{Version: server.VERSION}
	if opts.JetStream && opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "natspipe-js-")
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: JetStream store: %w", err)
		}
		opts.StoreDir, s.StoreDir = dir, dir
	}
	srv, err := run(&opts)
	if err != nil {
		s.removeStore()
		return nil, err
	}
	// A restart comes back on the same port.
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		srv.WaitForShutdown()
		s.removeStore()
		return nil, fmt.Errorf("embedded nats-server: listening on %v, not TCP", srv.Addr())
	}
	opts.Port = addr.Port
	s.srv, s.opts = srv, opts
	s.URL = srv.ClientURL()
	s.Conn = natsconn.Config{URL: s.URL}
	return s, nil
}

func run(opts *server.Options) (*server.Server, error) {
	o := *opts
	srv, err := server.NewServer(&o)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats-server on port %d: not ready for connections after %v", opts.Port, ReadyTimeout)
	}
	return srv, nil
}

// CheckJetStream reports, within CheckTimeout, whether the server offers
// JetStream to this client; its error names the server (URL masked) and
// the reason.
func (s *Server) CheckJetStream() error {
	nc, err := s.Conn.Connect("natspipe-jetstream-probe")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream on %s: %w", natsconn.Mask(s.URL), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("the NATS server at %s does not offer JetStream (run nats-server -js): %w", natsconn.Mask(s.URL), err)
		}
		return fmt.Errorf("JetStream on %s: account info: %w", natsconn.Mask(s.URL), err)
	}
	return nil
}

// Close shuts an embedded server down, waits until it has stopped and
// removes its JetStream store; it does nothing for an external one.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	s.removeStore()
}

func (s *Server) removeStore() {
	if s.StoreDir != "" {
		_ = os.RemoveAll(s.StoreDir)
	}
}

// Shutdown stops an embedded server at once, as a crash would, for tests of
// what a run does when its server goes away; Start brings it back. It does
// nothing for an external one.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Shutdown()
	}
}

// Start starts a stopped embedded server again on the same port with the
// same JetStream store, and waits until it accepts connections (at most
// ReadyTimeout); clients that reconnect find their streams again. It is an
// error for an external, closed or running server.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.srv == nil:
		return errors.New("natsserver: start: not an embedded server")
	case s.closed:
		return errors.New("natsserver: start: server closed")
	case s.srv.Running():
		return errors.New("natsserver: start: server is running")
	}
	s.srv.WaitForShutdown()
	srv, err := run(&s.opts)
	if err != nil {
		return fmt.Errorf("natsserver: restart: %w", err)
	}
	s.srv = srv
	return nil
}

// server is the running (or last) embedded nats-server.
func (s *Server) server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Name is an embedded server's name (server_name, its ID when it has
// none), as JetStream's cluster info names it; "" for an external one.
func (s *Server) Name() string {
	if srv := s.server(); srv != nil {
		return srv.Name()
	}
	return ""
}

// Clients lists the names of the clients connected to an embedded server
// (its connz), so a test can see which node a client is on; nil for an
// external or stopped server.
func (s *Server) Clients() ([]string, error) {
	srv := s.server()
	if srv == nil || !srv.Running() {
		return nil, nil
	}
	cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 16})
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server %s: connz: %w", srv.Name(), err)
	}
	names := make([]string, 0, len(cz.Conns))
	for _, c := range cz.Conns {
		names = append(names, c.Name)
	}
	return names, nil
}

// running reports whether an embedded server is up.
func (s *Server) running() bool {
	srv := s.server()
	return srv != nil && srv.Running()
}

// Restart stops an embedded server (Shutdown) and starts it again (Start)
// on the same port and store.
func (s *Server) Restart() error {
	s.Shutdown()
	return s.Start()
}
