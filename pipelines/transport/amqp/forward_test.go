package amqp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
)

// workEnder is the router's optional Settler interface (router.go).
type workEnder interface{ WorkEnded() }

// envelope is an encoded envelope with correlation ID id.
func envelope(t *testing.T, id string) []byte {
	t.Helper()
	env := pipelines.Envelope{ID: id}
	data, err := env.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// forwardRig is a member of S1 (prefetch 1, Strict: no lookahead) on a Conn of its own whose
// confirms wait for gate, and that Conn's publisher to S2.
type forwardRig struct {
	*rig
	f    *faults
	c    transport.Conn
	m    *member
	p    transport.Publisher
	gate chan struct{}
}

func newForwardRig(t *testing.T) *forwardRig {
	r := &forwardRig{rig: newRigWith(t, amqp.Transport{Strict: true}), f: &faults{}, gate: make(chan struct{})}
	r.c = r.open("fwd", r.f)
	amqp.HoldConfirms(r.c, r.gate)
	r.m = r.member(r.c, 0, "w", 1)
	var err error
	if r.p, err = r.c.Publisher(r.run, 1); err != nil {
		t.Fatal(err)
	}
	return r
}

// take gets the member's next delivery, ends its work and returns it.
func (r *forwardRig) take(t *testing.T) transport.Delivery {
	t.Helper()
	d := r.m.next(t)
	w, ok := d.Settler.(workEnder)
	if !ok {
		t.Fatalf("the settler %T has no WorkEnded", d.Settler)
	}
	w.WorkEnded()
	return d
}

// forward publishes data as d's forward and checks that Publish returns
// without the confirm (held by the gate) and that d's Ack succeeds.
func (r *forwardRig) forward(t *testing.T, d transport.Delivery) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	buf := append([]byte(nil), d.Data...)
	if err := r.p.Publish(ctx, transport.Outgoing{Data: buf}); err != nil {
		t.Fatalf("forward: %v", err)
	}
	clear(buf) // the caller reuses its buffer: the forward holds a copy
	if err := d.Ack(); err != nil {
		t.Fatalf("ack: %v", err)
	}
}

// TestForwardConfirmInBackground: after WorkEnded, the forward's Publish
// returns while its confirm is held back, the forward is in S2's queue,
// and the delivery's Ack reaches the broker only once the confirm came:
// until then the member (prefetch 1) gets no next message.
func TestForwardConfirmInBackground(t *testing.T) {
	r := newForwardRig(t)
	data := envelope(t, "corr-bg")
	r.publish(0, string(data), string(envelope(t, "corr-next")))
	d := r.take(t)
	r.forward(t, d)
	if n := r.depth(1); n != 1 {
		t.Fatalf("S2's queue holds %d before the confirm, want the forward", n)
	}
	r.m.none(t, "the ack went out before the forward's confirm")
	close(r.gate)
	if next := r.m.next(t); string(next.Data) != string(envelope(t, "corr-next")) || next.Attempt != 1 {
		t.Fatalf("after the confirm: %q attempt %d, want the next message", next.Data, next.Attempt)
	} else if err := next.Ack(); err != nil {
		t.Fatal(err)
	}
	r.m.none(t, "the acknowledged message came back")
	got := r.member(r.conn, 1, "s2", 1).next(t)
	if string(got.Data) != string(data) {
		t.Fatalf("the forward holds %q, want %q (not the caller's reused buffer)", got.Data, data)
	}
	if err := got.Ack(); err != nil {
		t.Fatal(err)
	}
	if errs := r.f.take(); len(errs) != 0 {
		t.Fatalf("faults: %v", errs)
	}
}

// TestForwardWithoutWorkEndedWaits: a forward whose delivery did not end
// its work through WorkEnded, or settled before publishing (no forward
// came: the registration goes), waits for its confirm as before.
func TestForwardWithoutWorkEndedWaits(t *testing.T) {
	r := newForwardRig(t)
	data := envelope(t, "corr-sync")
	r.publish(0, string(data))
	d := r.take(t)
	if err := d.Release(); err != nil { // no forward: unregistered
		t.Fatal(err)
	}
	d = r.m.next(t) // the same message again, no WorkEnded this time
	short, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	err := r.p.Publish(short, transport.Outgoing{Data: data})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish without WorkEnded while confirms are held: %v, want the context's deadline", err)
	}
	close(r.gate)
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

// TestForwardFailureRequeues: a forward the broker cannot route (its
// queue is gone) fails in the background; the delivery's held Ack becomes
// a requeue, so the message comes again, and the failure is a fault.
func TestForwardFailureRequeues(t *testing.T) {
	r := newForwardRig(t)
	close(r.gate)
	// A run not set up: its S2 forward carries the MessageId the delivery
	// expects, and no queue takes it.
	other := transport.Run{Subjects: bus.NewSubjects(), Stages: 2}
	lost, err := r.c.Publisher(other, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := envelope(t, "corr-lost")
	r.publish(0, string(data))
	d := r.take(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := lost.Publish(ctx, transport.Outgoing{Data: data}); err != nil {
		t.Fatalf("forward in the background: %v, want nil (the failure comes later)", err)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	again := r.m.next(t)
	if string(again.Data) != string(data) || again.Attempt < 2 {
		t.Fatalf("after the failed forward: %q attempt %d, want the message again", again.Data, again.Attempt)
	}
	// The fault is reported before the requeue is sent.
	errs := r.f.take()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "unroutable") || !strings.Contains(errs[0].Error(), amqp.QueueName(other, 1)) {
		t.Fatalf("faults: %v, want the unroutable forward", errs)
	}
	if err := again.Reject(errors.New("done")); err != nil {
		t.Fatal(err)
	}
}

// TestDrainWaitsForForwardConfirms: Conn.Drain returns only once the
// forwards' confirms have come and the held Acks are sent.
func TestDrainWaitsForForwardConfirms(t *testing.T) {
	r := newForwardRig(t)
	r.publish(0, string(envelope(t, "corr-drain")))
	r.forward(t, r.take(t))
	drained := make(chan error, 1)
	go func() { drained <- r.c.Drain() }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) before the forward's confirm", err)
	case <-time.After(quiet):
	}
	close(r.gate)
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatalf("Drain did not return within %v of the confirm", wait)
	}
	if n := r.depth(0); n != 0 {
		t.Fatalf("S1's queue holds %d after Drain, want 0 (acknowledged)", n)
	}
	if n := r.depth(1); n != 1 {
		t.Fatalf("S2's queue holds %d after Drain, want the forward", n)
	}
	if errs := r.f.take(); len(errs) != 0 {
		t.Fatalf("faults: %v", errs)
	}
}

// TestCloseGivesUpForwardConfirms: Conn.Close does not wait for a held
// confirm; the delivery, never acknowledged, is delivered again, and the
// Conn's closing is no fault.
func TestCloseGivesUpForwardConfirms(t *testing.T) {
	r := newForwardRig(t)
	data := envelope(t, "corr-close")
	r.publish(0, string(data))
	r.forward(t, r.take(t))
	if err := r.c.Close(); err != nil {
		t.Fatal(err)
	}
	again := r.member(r.conn, 0, "w2", 1).next(t)
	if string(again.Data) != string(data) || again.Attempt < 2 {
		t.Fatalf("after Close: %q attempt %d, want the message again", again.Data, again.Attempt)
	}
	if err := again.Reject(errors.New("done")); err != nil {
		t.Fatal(err)
	}
	if errs := r.f.take(); len(errs) != 0 {
		t.Fatalf("faults: %v", errs)
	}
}
