package natsserver

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// ClusterName is the name of an embedded cluster's routes (cluster.name).
const ClusterName = "natspipe"

// ClusterReadyTimeout bounds how long an embedded cluster may take to form:
// every node routed to every other and, with JetStream, a meta leader
// elected with every node as a current peer.
const ClusterReadyTimeout = 30 * time.Second

// Cluster is a NATS cluster embedded in the process: n nats-servers on
// random loopback ports, each with an explicit route to every node (as a
// cluster's configuration files would list them), JetStream clustered over
// them with a store directory per node. It is the in-process stand-in for
// servers on several machines: a client of one node reaches subscribers on
// another across a route. Close it.
type Cluster struct {
	// Nodes are the servers, node i's name "n<i+1>" (server_name, unique).
	// Stop and start one with its Shutdown and Start (or Node(i)).
	Nodes []*Server
	// URLs are the nodes' client URLs, URLs[i] node i's.
	URLs []string
	// Conn connects to the cluster: its URL is the comma-separated list of
	// every node's URL (a seed list), so a client connects to whichever
	// answers, at random, as nats.go does.
	Conn natsconn.Config
	// JetStream is true when the nodes run JetStream (clustered).
	JetStream bool

	closeOnce sync.Once
}

// EmbedCluster starts an embedded cluster of n nodes (n >= 1), each with
// Embed's defaults (JetStream on, its own store directory, removed by
// Close), joined by routes on 127.0.0.1, and waits, at most
// ClusterReadyTimeout, until it is ready (see WaitReady). configure, when
// not nil, changes node i's options after the cluster's own (it must keep
// the cluster settings: Cluster, Routes, ServerName). Close the cluster.
func EmbedCluster(n int, configure func(i int, o *server.Options)) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("embedded cluster: %d nodes, want at least 1", n)
	}
	// Route ports are picked before any node starts, so every node's
	// configuration names every route, restarts included. Another process
	// may take a picked port before its node binds it: the start then
	// fails, and is tried again with new ports.
	var err error
	for range 3 {
		var c *Cluster
		var retry bool
		if c, retry, err = embedCluster(n, configure); err == nil || !retry {
			return c, err
		}
	}
	return nil, err
}

// embedCluster is one attempt of EmbedCluster; retry says whether a node
// failed to start (its port may have been taken).
func embedCluster(n int, configure func(i int, o *server.Options)) (c *Cluster, retry bool, err error) {
	ports, err := freePorts(n)
	if err != nil {
		return nil, false, fmt.Errorf("embedded cluster: pick route ports: %w", err)
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(p)
	}
	c = &Cluster{}
	for i := range n {
		srv, err := Embed(func(o *server.Options) {
			o.ServerName = "n" + strconv.Itoa(i+1)
			o.Cluster.Name = ClusterName
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = ports[i]
			if n > 1 {
				o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			}
			if configure != nil {
				configure(i, o)
			}
		})
		if err != nil {
			c.Close()
			return nil, true, fmt.Errorf("embedded cluster: node %d of %d (route port %d): %w", i+1, n, ports[i], err)
		}
		c.Nodes = append(c.Nodes, srv)
		c.URLs = append(c.URLs, srv.URL)
		c.JetStream = srv.opts.JetStream
	}
	c.Conn = natsconn.Config{URL: strings.Join(c.URLs, ",")}
	if err := c.WaitReady(ClusterReadyTimeout); err != nil {
		c.Close()
		return nil, false, err
	}
	return c, false, nil
}

// freePorts returns n distinct free TCP ports of 127.0.0.1, free when
// asked: each is bound, then released.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Node returns node i (0-based).
func (c *Cluster) Node(i int) *Server { return c.Nodes[i] }

// NodeConn is Conn with the seed list starting at node i (see
// natsconn.Config.From): a client connects to node i while it answers,
// and fails over to the next nodes in turn. Giving each client its own i
// spreads clients over the nodes, so messages between them cross routes.
func (c *Cluster) NodeConn(i int) natsconn.Config { return c.Conn.From(i) }

// Running lists the nodes that are up (0-based).
func (c *Cluster) Running() []int {
	var up []int
	for i, s := range c.Nodes {
		if s.running() {
			up = append(up, i)
		}
	}
	return up
}

// WaitReady waits, at most timeout, until the running nodes form one
// cluster: each routed to every other running node and, with JetStream,
// a meta leader elected that counts every running node as a current peer.
// Call it after a node's Start to wait until it has rejoined. Its error
// says what was missing.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := c.notReady()
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded cluster of %d nodes not ready after %v: %s", len(c.Nodes), timeout, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notReady says what keeps the cluster from being ready, "" when nothing.
func (c *Cluster) notReady() string {
	up := c.Running()
	var names []string
	for _, i := range up {
		names = append(names, c.Nodes[i].server().Name())
	}
	var leader *server.Server
	for _, i := range up {
		s := c.Nodes[i].server()
		rz, err := s.Routez(nil)
		if err != nil {
			return fmt.Sprintf("node %s: routez: %v", s.Name(), err)
		}
		var routed []string
		for _, r := range rz.Routes {
			if !slices.Contains(routed, r.RemoteName) {
				routed = append(routed, r.RemoteName)
			}
		}
		for _, name := range names {
			if name != s.Name() && !slices.Contains(routed, name) {
				return fmt.Sprintf("node %s has no route to %s (routes to %v)", s.Name(), name, routed)
			}
		}
		if c.JetStream && s.JetStreamIsLeader() {
			leader = s
		}
	}
	if !c.JetStream || len(up) == 0 {
		return ""
	}
	if leader == nil {
		return "no JetStream meta leader"
	}
	if peers := leader.JetStreamClusterPeers(); len(peers) != len(up) {
		return fmt.Sprintf("JetStream meta leader %s sees peers %v, want %v", leader.Name(), peers, names)
	}
	for _, i := range up {
		if s := c.Nodes[i].server(); !s.JetStreamIsCurrent() {
			return fmt.Sprintf("node %s: JetStream not current with the meta leader", s.Name())
		}
	}
	return ""
}

// Close shuts every node down and removes their stores.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, s := range c.Nodes {
			wg.Go(s.Close)
		}
		wg.Wait()
	})
}
