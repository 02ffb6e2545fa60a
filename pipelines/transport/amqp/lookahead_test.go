package amqp_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
)

// ackAll acknowledges ds.
func ackAll(t *testing.T, ds ...transport.Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDepth waits until destination i's queue holds want ready messages.
func (r *rig) waitDepth(t *testing.T, i, want int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n := r.depth(i)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %d holds %d ready, want %d", i, n, want)
		}
		time.Sleep(10 * time.Millisecond) // the broker has no event to wait on
	}
}

// TestLookaheadOnlyWhenAllBusy: two members of S2 of Limit 1, both busy
// with a message of their main consumer: of 3 more messages, each
// member's lookahead consumer gets exactly one and the third stays in the
// queue; once a member acks its main delivery, the third goes to its main
// consumer. On classic and quorum queues (x-priority holds on both).
func TestLookaheadOnlyWhenAllBusy(t *testing.T) {
	for _, quorum := range []bool{false, true} {
		t.Run("quorum="+strconv.FormatBool(quorum), func(t *testing.T) {
			r := newRig(t, quorum)
			a := r.member(r.open("a", r.faults), 1, "a", 1)
			b := r.member(r.open("b", r.faults), 1, "b", 1)
			r.publish(1, "1", "2", "3", "4", "5")
			var mains, aheads []transport.Delivery
			for _, m := range []*member{a, b} {
				d1, d2 := m.next(t), m.next(t)
				if amqp.ViaLookahead(d1) == amqp.ViaLookahead(d2) {
					t.Fatalf("a member's two deliveries %q, %q: lookahead %v, %v; want one each", d1.Data, d2.Data, amqp.ViaLookahead(d1), amqp.ViaLookahead(d2))
				}
				if amqp.ViaLookahead(d1) {
					d1, d2 = d2, d1
				}
				mains, aheads = append(mains, d1), append(aheads, d2)
			}
			// The first two went to the main consumers, before any
			// lookahead.
			if got := string(mains[0].Data) + string(mains[1].Data); got != "12" && got != "21" {
				t.Fatalf("main consumers got %q, want 1 and 2", got)
			}
			a.none(t, "a third delivery to a member with main and lookahead full")
			b.none(t, "a third delivery to a member with main and lookahead full")
			if n := r.depth(1); n != 1 {
				t.Fatalf("queue holds %d ready, want 1", n)
			}
			ackAll(t, mains[0])
			d := a.next(t)
			if string(d.Data) != "5" || amqp.ViaLookahead(d) {
				t.Fatalf("after its main's ack: %q (lookahead %v), want 5 on the main consumer", d.Data, amqp.ViaLookahead(d))
			}
			ackAll(t, d, mains[1], aheads[0], aheads[1])
		})
	}
}

// TestLookaheadNotWhileAMemberIsFree: with one member busy and the other
// free, each new message goes to the free member's main consumer, never
// to a lookahead consumer.
func TestLookaheadNotWhileAMemberIsFree(t *testing.T) {
	r := newRig(t, false)
	a := r.member(r.open("a", r.faults), 1, "a", 1)
	b := r.member(r.open("b", r.faults), 1, "b", 1)
	r.publish(1, "busy")
	var busy, free *member
	var held transport.Delivery
	select {
	case held = <-a.ch:
		busy, free = a, b
	case held = <-b.ch:
		busy, free = b, a
	case <-time.After(wait):
		t.Fatal("no member got the first message")
	}
	if amqp.ViaLookahead(held) {
		t.Fatal("the first message went to a lookahead consumer")
	}
	for i := range 5 {
		r.publish(1, "m"+strconv.Itoa(i))
		d := free.next(t)
		if amqp.ViaLookahead(d) {
			t.Fatalf("message %d went to the free member's lookahead consumer", i)
		}
		busy.none(t, "the busy member got a message while the other was free")
		ackAll(t, d)
	}
	ackAll(t, held)
}

// TestStrictNoLookahead: with Strict, two busy members of Limit 1 take
// nothing more; 3 messages stay in the queue.
func TestStrictNoLookahead(t *testing.T) {
	r := newRigWith(t, amqp.Transport{Strict: true})
	a := r.member(r.open("a", r.faults), 1, "a", 1)
	b := r.member(r.open("b", r.faults), 1, "b", 1)
	r.publish(1, "1", "2", "3", "4", "5")
	da, db := a.next(t), b.next(t)
	a.none(t, "a second delivery to a strict member of Limit 1")
	b.none(t, "a second delivery to a strict member of Limit 1")
	if n := r.depth(1); n != 3 {
		t.Fatalf("queue holds %d ready, want 3", n)
	}
	ackAll(t, da, db)
}

// TestStopRedeliversLookahead: a member stopped while holding a main and a
// lookahead delivery unacked has both delivered again to another member.
func TestStopRedeliversLookahead(t *testing.T) {
	r := newRig(t, false)
	a := r.member(r.open("a", r.faults), 1, "a", 1)
	r.publish(1, "x", "y")
	d1, d2 := a.next(t), a.next(t)
	if amqp.ViaLookahead(d1) == amqp.ViaLookahead(d2) {
		t.Fatalf("lookahead %v, %v: want one main and one lookahead delivery", amqp.ViaLookahead(d1), amqp.ViaLookahead(d2))
	}
	b := r.member(r.open("b", r.faults), 1, "b", 1)
	b.none(t, "a held message went to the other member")
	if err := a.c.Stop(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range 2 {
		d := b.next(t)
		if d.Attempt < 2 {
			t.Fatalf("other member got %q attempt %d, want a redelivery", d.Data, d.Attempt)
		}
		got[string(d.Data)]++
		defer ackAll(t, d)
	}
	if got["x"] != 1 || got["y"] != 1 {
		t.Fatalf("redelivered %v, want x and y once", got)
	}
	for _, d := range []transport.Delivery{d1, d2} {
		if err := d.Ack(); err == nil {
			t.Fatal("Ack after Stop: no error")
		}
	}
	if n := r.faults.redeliveries("S2"); n != 2 {
		t.Fatalf("%d redeliveries of S2, want 2", n)
	}
}

// TestDrainHandsOverLookahead: Drain, called while the handler is busy
// with the main delivery and the lookahead delivery waits in the library,
// hands the lookahead delivery over before it returns; the third message
// stays queued, and both are settled after Drain.
func TestDrainHandsOverLookahead(t *testing.T) {
	r := newRig(t, false)
	ch := make(chan transport.Delivery) // the handler blocks until taken
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := r.open("a", r.faults).Consume(ctx, r.run, 1, transport.ConsumeOptions{Member: "a", Limit: 1, Shared: true}, func(d transport.Delivery) {
		select {
		case ch <- d:
		case <-time.After(wait):
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	r.publish(1, "1", "2", "3")
	r.waitDepth(t, 1, 1) // two are with the member: one per consumer
	var first transport.Delivery
	select {
	case first = <-ch:
	case <-time.After(wait):
		t.Fatal("no delivery")
	}
	drained := make(chan error, 1)
	go func() { drained <- c.Drain(wait) }()
	var second transport.Delivery
	select {
	case second = <-ch:
	case err := <-drained:
		t.Fatalf("Drain returned (%v) before handing over the second delivery", err)
	case <-time.After(wait):
		t.Fatal("the second delivery was not handed over")
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Drain did not return")
	}
	if amqp.ViaLookahead(first) == amqp.ViaLookahead(second) {
		t.Fatalf("lookahead %v, %v: want one main and one lookahead delivery", amqp.ViaLookahead(first), amqp.ViaLookahead(second))
	}
	select {
	case d := <-ch:
		t.Fatalf("a delivery after Drain: %q", d.Data)
	case <-time.After(quiet):
	}
	ackAll(t, first, second)
	if n := r.depth(1); n != 1 {
		t.Fatalf("queue holds %d after Drain, want 1", n)
	}
}
