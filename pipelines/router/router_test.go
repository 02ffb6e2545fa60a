package router_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/core"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

// journal records, in order, what the router did with each delivery and
// each publish, over real core NATS: the router's contract seen from the
// transport's side.
type journal struct {
	mu      sync.Mutex
	events  []string
	failPub bool
	changed chan struct{}
}

func (j *journal) add(e string) {
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
	select {
	case j.changed <- struct{}{}:
	default:
	}
}

func (j *journal) snapshot() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

// wait waits until the journal holds n events, at most 10 s.
func (j *journal) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if ev := j.snapshot(); len(ev) >= n {
			return ev
		}
		select {
		case <-j.changed:
		case <-deadline:
			t.Fatalf("journal has %v, want %d events", j.snapshot(), n)
		}
	}
}

// settler records the settlement of one delivery.
type settler struct {
	j  *journal
	id int
}

func (s settler) Ack() error                { s.j.add(fmt.Sprintf("ack %d", s.id)); return nil }
func (s settler) Reject(reason error) error { s.j.add(fmt.Sprintf("reject %d", s.id)); return nil }
func (s settler) Release() error            { s.j.add(fmt.Sprintf("release %d", s.id)); return nil }

// conn is core NATS with recording settlers and publishers.
type conn struct {
	transport.Conn
	j *journal
	n int
}

func (c *conn) Consume(ctx context.Context, run transport.Run, stage int, opts transport.ConsumeOptions, h transport.Handler) (transport.Consumer, error) {
	return c.Conn.Consume(ctx, run, stage, opts, func(d transport.Delivery) {
		c.n++
		d.Settler = settler{j: c.j, id: c.n}
		d.Attempt = 1
		h(d)
	})
}

func (c *conn) Publisher(run transport.Run, to int) (transport.Publisher, error) {
	p, err := c.Conn.Publisher(run, to)
	return publisher{p, c.j}, err
}

type publisher struct {
	transport.Publisher
	j *journal
}

func (p publisher) Publish(ctx context.Context, m transport.Outgoing) error {
	p.j.mu.Lock()
	fail := p.j.failPub
	p.j.mu.Unlock()
	if fail {
		p.j.add("publish failed " + m.Key)
		return errors.New("broker refused")
	}
	err := p.Publisher.Publish(ctx, m)
	p.j.add("published " + m.Key)
	return err
}

type report struct {
	mu      sync.Mutex
	rejects []string
	faults  []error
}

func (r *report) Reject(stage string, err error) {
	r.mu.Lock()
	r.rejects = append(r.rejects, stage)
	r.mu.Unlock()
}

func (r *report) Fault(err error) {
	r.mu.Lock()
	r.faults = append(r.faults, err)
	r.mu.Unlock()
}

// coreConn is a connection to a test server and a core transport Conn on
// it, both closed at t's end.
func coreConn(t *testing.T) (*nats.Conn, transport.Conn) {
	t.Helper()
	srv := natstest.Start(t)
	nc, err := bus.Connect(srv.Conn, "router-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := core.Transport{}.Open(context.Background(), transport.Env{NC: nc, Name: "router-test"})
	if err != nil {
		t.Fatal(err)
	}
	return nc, c
}

func TestRouterSettlesEveryDeliveryOnce(t *testing.T) {
	benchkit.CheckLeaks(t)
	nc, c := coreConn(t)
	j := &journal{changed: make(chan struct{}, 1)}
	tc := &conn{Conn: c, j: j}
	spec := pipelines.Spec{Durations: []time.Duration{0, 0}, Work: pipelines.Sleep}
	run := transport.Run{Subjects: bus.NewSubjects(), Stages: 2}
	rep := &report{}
	r, err := router.Start(context.Background(), router.Options{
		Name: "test", Conn: tc, Run: run, Report: rep, Executors: 2, Block: true,
		Steps: pipelines.StepsFor(spec, func(i int) string { return "t-" + pipelines.StageName(i) })[:1],
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	env := pipelines.Envelope{ID: "corr0000000000000000001", Seq: 1, Sent: time.Now().UnixNano()}
	good, _ := env.Append(nil)

	// A good message: published to the next stage, then acknowledged.
	if err := nc.Publish(run.Subject(0), good); err != nil {
		t.Fatal(err)
	}
	if ev := j.wait(t, 2); ev[0] != "published corr0000000000000000001" || ev[1] != "ack 1" {
		t.Fatalf("good message: %v, want published then ack", ev)
	}
	// A malformed one: counted and rejected for good, nothing published.
	if err := nc.Publish(run.Subject(0), []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	if ev := j.wait(t, 3); ev[2] != "reject 2" {
		t.Fatalf("malformed message: %v, want reject 2", ev)
	}
	// A publish that fails: a fault, and the delivery released.
	j.mu.Lock()
	j.failPub = true
	j.mu.Unlock()
	if err := nc.Publish(run.Subject(0), good); err != nil {
		t.Fatal(err)
	}
	if ev := j.wait(t, 5); ev[3] != "publish failed corr0000000000000000001" || ev[4] != "release 3" {
		t.Fatalf("failed publish: %v, want publish failed then release 3", ev)
	}
	if err := r.Drain(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.rejects) != 1 || rep.rejects[0] != "S1" {
		t.Errorf("rejects %v, want one at S1", rep.rejects)
	}
	if len(rep.faults) != 1 || !strings.Contains(rep.faults[0].Error(), "broker refused") {
		t.Errorf("faults %v, want the failed publish", rep.faults)
	}
	if ev := j.snapshot(); len(ev) != 5 {
		t.Errorf("journal %v: want exactly 5 events", ev)
	}
}

// TestRouterUsesEveryExecutor: executors start as they are needed, and a
// message never waits for stage work while fewer than Executors are in
// stage work.
func TestRouterUsesEveryExecutor(t *testing.T) {
	benchkit.CheckLeaks(t)
	nc, c := coreConn(t)
	const executors, n = 4, 8
	spec := pipelines.Spec{Durations: []time.Duration{50 * time.Millisecond}, Work: pipelines.Sleep}
	run := transport.Run{Subjects: bus.NewSubjects(), Stages: 1}
	out := make(chan []byte, n)
	sub, err := nc.Subscribe(run.Subject(run.Done()), func(m *nats.Msg) { out <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	r, err := router.Start(context.Background(), router.Options{
		Name: "test", Conn: c, Run: run, Report: &report{}, Executors: executors,
		Steps: pipelines.StepsFor(spec, func(i int) string { return "t" }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for i := range n {
		env := pipelines.Envelope{ID: fmt.Sprintf("corr%019d", i), Seq: uint64(i), Sent: time.Now().UnixNano()}
		b, _ := env.Append(nil)
		if err := nc.Publish(run.Subject(0), b); err != nil {
			t.Fatal(err)
		}
	}
	var recs []pipelines.StageRecord
	for range n {
		select {
		case b := <-out:
			var env pipelines.Envelope
			if err := env.Decode(b); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, env.Stages...)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages came through", len(recs), n)
		}
	}
	if got := pipelines.PeakOverlap(recs); got != executors {
		t.Errorf("peak overlap %d, want %d (every executor, and no more)", got, executors)
	}
}
