package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/core"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

// open opens a core Conn on a connection of its own to srv.
func open(t *testing.T, srv *natstest.Server, name string) transport.Conn {
	t.Helper()
	nc, err := bus.Connect(srv.Conn, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := core.Transport{}.Open(context.Background(), transport.Env{NC: nc, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSharedStageSplitsAndUnsharedSeesAll: members of a shared stage (a
// queue group) share its messages, each delivered to exactly one, with
// attempt 1 and nothing to settle; a plain member sees every message.
func TestSharedStageSplitsAndUnsharedSeesAll(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	run := transport.Run{Subjects: bus.NewSubjects(), Stages: 2}
	var mu sync.Mutex
	got := map[string]int{}
	all := make(chan struct{}, 100)
	member := func(name string, shared bool) transport.Consumer {
		c := open(t, srv, name)
		if err := c.Setup(context.Background(), run); err != nil {
			t.Fatal(err)
		}
		cons, err := c.Consume(context.Background(), run, 1, transport.ConsumeOptions{Member: name, Limit: 1, Shared: shared}, func(d transport.Delivery) {
			if d.Attempt != 1 || d.Settler != nil || d.Ack() != nil || d.Reject(nil) != nil || d.Release() != nil {
				t.Errorf("%s: delivery %+v: want attempt 1 and nothing to settle", name, d)
			}
			mu.Lock()
			got[name]++
			mu.Unlock()
			if !shared {
				all <- struct{}{}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Drain() })
		return cons
	}
	member("w1", true)
	member("w2", true)
	member("spy", false)
	pub, err := open(t, srv, "source").Publisher(run, 1)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for range n {
		if err := pub.Publish(context.Background(), transport.Outgoing{Data: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			t.Fatalf("spy saw %d of %d", i, n)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		shared, spy := got["w1"]+got["w2"], got["spy"]
		mu.Unlock()
		if shared == n && spy == n {
			break
		}
		if shared > n || time.Now().After(deadline) {
			t.Fatalf("workers got %d, spy %d, of %d: want each message once to the group and once to the spy", shared, spy, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDestinationsOutOfRange(t *testing.T) {
	srv := natstest.Start(t)
	c := open(t, srv, "x")
	run := transport.Run{Subjects: bus.NewSubjects(), Stages: 2}
	if _, err := c.Publisher(run, 3); err == nil {
		t.Error("publisher to destination 3 of a 2-stage run accepted")
	}
	if _, err := c.Consume(context.Background(), run, -1, transport.ConsumeOptions{}, func(transport.Delivery) {}); err == nil {
		t.Error("consumer of stage -1 accepted")
	}
	if got, want := run.Subject(run.Done()), run.Subjects.Done(); got != want {
		t.Errorf("done subject %q, want %q", got, want)
	}
}
