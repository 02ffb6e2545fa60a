// Package natstest gives tests and benchmarks a NATS server, in the manner
// of net/http/httptest: an embedded nats-server on a random loopback port,
// shut down in Cleanup, or the server named by NATS_URL (or NATS_CONTEXT),
// with the credentials and TLS files the NATS_* variables give, when set.
// It is the testing.TB face of internal/natsserver, which production code
// uses (see its Examples).
//
// StartCluster gives a test a 3-node cluster of its own (routes on
// loopback, JetStream clustered), for tests of what node loss does.
//
// In a test:
//
//	func TestPublish(t *testing.T) {
//		srv := natstest.Start(t) // closed when the test ends
//		nc, err := srv.Conn.Connect("test")
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer nc.Close()
//		// ...
//	}
package natstest

import (
	"os"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// Server is a NATS server for a test: see natsserver.Server. Connect with
// its Conn; print Conn, never URL (it may hold a password).
type Server = natsserver.Server

// Start returns a server for tb, shut down when tb ends. With NATS_URL or
// NATS_CONTEXT set it returns that server instead, connecting with the
// NATS_* settings (see natsconn), after checking it answers.
func Start(tb testing.TB) *Server {
	tb.Helper()
	conn, err := natsconn.Load(os.Getenv)
	if err != nil {
		tb.Fatalf("natstest: NATS_* settings: %v", err)
	}
	s, err := natsserver.Open(conn)
	if err != nil {
		if conn.URL != "" {
			tb.Fatalf("natstest: the server NATS_URL names: %v", err)
		}
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// StartJetStream is Start for tests that need JetStream: it fails tb with
// CheckJetStream's error when the server (an external one: an embedded
// server always has it) does not offer JetStream.
func StartJetStream(tb testing.TB) *Server {
	tb.Helper()
	s := Start(tb)
	if err := s.CheckJetStream(); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	return s
}

// StartWith returns an embedded server for tb, configured by configure
// (authentication, TLS, JetStream off) on top of the defaults (random
// loopback port, JetStream on), shut down when tb ends. Its Conn has only
// the URL: the test adds credentials.
func StartWith(tb testing.TB, configure func(*server.Options)) *Server {
	tb.Helper()
	s, err := natsserver.Embed(configure)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Cluster is an embedded NATS cluster for a test: see natsserver.Cluster.
type Cluster = natsserver.Cluster

// ClusterSize is the number of nodes StartCluster starts.
const ClusterSize = 3

// StartCluster returns an embedded cluster of ClusterSize nodes for tb, on
// loopback, JetStream clustered, ready (routes up, a meta leader elected),
// shut down when tb ends. It ignores NATS_URL: a test that stops a node
// needs nodes of its own. Connect to a given node with NodeConn(i), or to
// any with Conn (the seed list of every node).
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := natsserver.EmbedCluster(ClusterSize, nil)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}
