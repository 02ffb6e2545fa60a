package natsserver_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natsserver"
)

// TestEmbedCluster: three embedded nodes form one cluster: a message
// published on one node reaches a subscriber on another across a route,
// a stream with three replicas is placed on all three, NodeConn(i) connects
// to node i and fails over to the next node when i goes down, a node
// restarted rejoins, and Close removes every store.
func TestEmbedCluster(t *testing.T) {
	benchkit.CheckLeaks(t)
	c, err := natsserver.EmbedCluster(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.URLs) != 3 || c.Conn.URL != strings.Join(c.URLs, ",") || !c.JetStream {
		t.Fatalf("URLs %v, Conn %v, JetStream %v", c.URLs, c.Conn, c.JetStream)
	}
	conns := make([]*nats.Conn, 3)
	for i := range conns {
		nc, err := c.NodeConn(i).Connect("node-conn", nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if got := nc.ConnectedUrl(); got != c.URLs[i] {
			t.Fatalf("NodeConn(%d) connected to %s, want %s", i, got, c.URLs[i])
		}
		conns[i] = nc
	}

	// Across a route: published on node 2, received on node 0.
	sub, err := conns[0].SubscribeSync("cross")
	if err != nil {
		t.Fatal(err)
	}
	if err := conns[0].Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for { // the subscription's interest reaches node 2 through the route
		if err := conns[2].Publish("cross", []byte("hop")); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a message published on node 2 never reached node 0's subscriber")
		}
	}

	// R3 stream: a replica on every node.
	js, err := jetstream.New(conns[1])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r3.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 || info.State.Msgs != 1 {
		t.Fatalf("stream info %+v: want a leader and 2 replicas, 1 message", info.Cluster)
	}

	// Node 1 goes down: its client moves to node 2, the next of its list.
	c.Node(1).Shutdown()
	if up := c.Running(); !slices.Equal(up, []int{0, 2}) {
		t.Fatalf("running %v after node 1's shutdown", up)
	}
	for deadline := time.Now().Add(20 * time.Second); conns[1].ConnectedUrl() != c.URLs[2]; {
		if time.Now().After(deadline) {
			t.Fatalf("node 1's client on %q (status %v), want it reconnected to node 2 %s", conns[1].ConnectedUrl(), conns[1].Status(), c.URLs[2])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.WaitReady(natsserver.ClusterReadyTimeout); err != nil {
		t.Fatalf("two nodes of three: %v", err)
	}
	// Two of three replicas are a quorum: the stream still takes messages.
	if _, err := js.Publish(ctx, "r3.b", []byte("y")); err != nil {
		t.Fatalf("publish with a node down: %v", err)
	}
	if err := c.Node(1).Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(natsserver.ClusterReadyTimeout); err != nil {
		t.Fatalf("after node 1's restart: %v", err)
	}

	var stores []string
	for _, n := range c.Nodes {
		stores = append(stores, n.StoreDir)
	}
	for _, nc := range conns {
		nc.Close()
	}
	c.Close()
	for _, dir := range stores {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("store %s after Close: %v, want it gone", dir, err)
		}
	}
}
