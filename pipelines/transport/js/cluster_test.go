package js_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// TestClusterR3: on a 3-node cluster with Replicas 3 the run's stream and
// every consumer have a replica on each node; a member on another node
// than the publisher gets every message, and keeps getting them after the
// node leading its consumer is shut down (two replicas of three are a
// quorum).
func TestClusterR3(t *testing.T) {
	benchkit.CheckLeaks(t)
	c := natstest.StartCluster(t)
	o := js.Options{Replicas: 3, AckWait: 2 * time.Second}
	r := newRigOn(t, c.NodeConn(1), o, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := r.js.Stream(ctx, js.StreamName(r.run.Subjects))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream: replicas %d, cluster %+v; want a leader and 2 replicas", info.Config.Replicas, info.Cluster)
	}
	for dest := range r.run.Stages + 1 {
		ci := r.consumerInfo(t, dest)
		if ci.Cluster == nil || len(ci.Cluster.Replicas) != 2 {
			t.Fatalf("consumer %s: cluster %+v; want a leader and 2 replicas", ci.Name, ci.Cluster)
		}
	}

	// The member on node 2, the publisher (r) on node 1.
	nc2, err := bus.Connect(c.NodeConn(2), "js-test-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	conn2, err := js.Transport{Options: o}.Open(ctx, transport.Env{NC: nc2, NATS: c.NodeConn(2), Name: "m2", Faults: r.faults})
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	h, ch := deliveries(32)
	m, err := conn2.Consume(ctx, r.run, 0, transport.ConsumeOptions{Member: "m2", Limit: 2}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()

	const n = 20
	seen := map[string]bool{}
	receive := func(k int) {
		t.Helper()
		for range k {
			d := next(t, ch, 30*time.Second)
			id, ok := js.EnvelopeID(d.Data)
			if !ok {
				t.Fatalf("delivery %q", d.Data)
			}
			seen[id] = true
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range n / 2 {
		r.publish(t, 0, fmt.Sprint("id", i), envelope(t, fmt.Sprint("id", i), uint64(i)))
	}
	receive(n / 2)

	leader := r.consumerInfo(t, 0).Cluster.Leader
	down := -1
	for i, node := range c.Nodes {
		if strings.EqualFold(node.Name(), leader) {
			down = i
		}
	}
	if down < 0 {
		t.Fatalf("consumer leader %q is none of the nodes", leader)
	}
	c.Node(down).Shutdown()
	t.Logf("shut down node %d (%s), the leader of the S1 consumer", down, leader)
	for i := n / 2; i < n; i++ {
		r.publish(t, 0, fmt.Sprint("id", i), envelope(t, fmt.Sprint("id", i), uint64(i)))
	}
	receive(n / 2)
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicasOnOneServer: a single server refuses a replicated stream,
// and Setup says so.
func TestReplicasOnOneServer(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.StartJetStream(t)
	nc, err := bus.Connect(srv.Conn, "js-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	conn, err := js.Transport{Options: js.Options{Replicas: 3}}.Open(ctx, transport.Env{NC: nc, NATS: srv.Conn, Name: "js-test", Faults: &faults{}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	run := transport.Run{Subjects: bus.NewSubjects(), Stages: 1, Concurrency: []int{1}}
	err = conn.Setup(ctx, run)
	if err == nil {
		_ = conn.Teardown(ctx, run)
		t.Fatal("Setup of an R3 stream on one server: no error")
	}
	t.Logf("error: %v", err)
}
