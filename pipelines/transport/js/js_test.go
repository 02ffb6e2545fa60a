package js_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// faults collects a Conn's asynchronous errors.
type faults struct {
	mu   sync.Mutex
	errs []error
}

func (f *faults) Fault(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *faults) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, err := range f.errs {
		t.Errorf("fault: %v", err)
	}
}

// rig is a run set up on a JetStream server, with the conn that set it up.
type rig struct {
	srv    *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	conn   transport.Conn
	run    transport.Run
	faults *faults
}

func newRig(t *testing.T, o js.Options, concurrency ...int) *rig {
	t.Helper()
	srv := natstest.StartJetStream(t)
	r := newRigOn(t, srv.Conn, o, concurrency...)
	r.srv = srv
	return r
}

// newRigOn is newRig on the server (or cluster) conn connects to.
func newRigOn(t *testing.T, conn natsconn.Config, o js.Options, concurrency ...int) *rig {
	t.Helper()
	nc, err := bus.Connect(conn, "js-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r := &rig{nc: nc, faults: &faults{}}
	r.js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.conn, err = js.Transport{Options: o}.Open(ctx, transport.Env{NC: nc, NATS: conn, Name: "js-test", Faults: r.faults})
	if err != nil {
		t.Fatal(err)
	}
	r.run = transport.Run{Subjects: bus.NewSubjects(), Stages: len(concurrency), Concurrency: concurrency}
	if err := r.conn.Setup(ctx, r.run); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.conn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := r.conn.Teardown(context.Background(), r.run); err != nil {
			t.Errorf("teardown: %v", err)
		}
		r.faults.check(t)
	})
	return r
}

func envelope(t *testing.T, id string, seq uint64) []byte {
	t.Helper()
	e := pipelines.Envelope{ID: id, Seq: seq, Sent: 1, Payload: []byte("p")}
	b, err := e.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *rig) publish(t *testing.T, to int, key string, data []byte) {
	t.Helper()
	p, err := r.conn.Publisher(r.run, to)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Publish(ctx, transport.Outgoing{Data: data, Key: key}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) consumerInfo(t *testing.T, stage int) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, js.StreamName(r.run.Subjects), js.DestName(r.run, stage))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// deliveries is a handler that passes every delivery to a channel.
func deliveries(n int) (transport.Handler, chan transport.Delivery) {
	ch := make(chan transport.Delivery, n)
	return func(d transport.Delivery) {
		d.Data = append([]byte(nil), d.Data...)
		ch <- d
	}, ch
}

// consume makes a member of stage's consumer whose deliveries (copied)
// come on the channel it returns, buffered n; it stops at t's end.
func (r *rig) consume(t *testing.T, stage int, opts transport.ConsumeOptions, n int) (transport.Consumer, chan transport.Delivery) {
	t.Helper()
	h, ch := deliveries(n)
	c, err := r.conn.Consume(context.Background(), r.run, stage, opts, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c, ch
}

func next(t *testing.T, ch <-chan transport.Delivery, within time.Duration) transport.Delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(within):
		t.Fatalf("no delivery within %v", within)
		return transport.Delivery{}
	}
}

func none(t *testing.T, ch <-chan transport.Delivery, during time.Duration) {
	t.Helper()
	select {
	case d := <-ch:
		t.Fatalf("unexpected delivery (attempt %d): %q", d.Attempt, d.Data)
	case <-time.After(during):
	}
}

func TestPublishConsumeAck(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{}, 2)
	h, ch := deliveries(16)
	ctx := context.Background()
	c, err := r.conn.Consume(ctx, r.run, 0, transport.ConsumeOptions{Member: "m1", Limit: 2}, h)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		r.publish(t, 0, fmt.Sprint("id", i), envelope(t, fmt.Sprint("id", i), uint64(i)))
	}
	seen := map[string]bool{}
	for range n {
		d := next(t, ch, 10*time.Second)
		id, ok := js.EnvelopeID(d.Data)
		if !ok || d.Attempt != 1 {
			t.Fatalf("delivery %q attempt %d", d.Data, d.Attempt)
		}
		seen[id] = true
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(); err == nil {
			t.Fatal("second settle of one delivery: no error")
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}
	if err := c.Drain(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Work queue: acknowledged messages leave the stream.
	if err := r.nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info := r.consumerInfo(t, 0)
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer after acks: %d ack pending, %d pending", info.NumAckPending, info.NumPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A member pulls only for its free slots: with Limit 1 and nothing
// settled, the server keeps the rest, as long as they are no more than the
// stage's other three slots could take (lookahead: see TestLookahead).
func TestPullOnlyFreeSlots(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{}, 4)
	for i := range 4 {
		r.publish(t, 0, fmt.Sprint("id", i), envelope(t, fmt.Sprint("id", i), uint64(i)))
	}
	c, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, 16)
	d := next(t, ch, 10*time.Second)
	none(t, ch, 300*time.Millisecond)
	if info := r.consumerInfo(t, 0); info.NumAckPending != 1 || info.NumPending != 3 {
		t.Fatalf("holding one: server shows %d ack pending, %d pending; want 1, 3", info.NumAckPending, info.NumPending)
	}
	if p := c.Pending(); p != 0 {
		t.Fatalf("Pending %d, want 0", p)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	d = next(t, ch, 10*time.Second)
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

// When stage work on a delivery ends (WorkEnded, which the router calls
// before it publishes the forward), the member's slot frees and it pulls
// its next message, while the first stays unsettled until its ack; a
// second message in work takes the slot again, so a third waits (Strict:
// no lookahead).
func TestWorkEndedFreesSlot(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{Strict: true}, 1)
	if got := r.consumerInfo(t, 0).Config.MaxAckPending; got != 3 {
		t.Fatalf("MaxAckPending %d, want 3 (per slot one in work, one forwarded and one by lookahead)", got)
	}
	for i := range 3 {
		r.publish(t, 0, fmt.Sprint("id", i), envelope(t, fmt.Sprint("id", i), uint64(i)))
	}
	_, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, 16)
	first := next(t, ch, 10*time.Second)
	none(t, ch, 200*time.Millisecond)
	ender, ok := first.Settler.(interface{ WorkEnded() })
	if !ok {
		t.Fatalf("settler %T has no WorkEnded", first.Settler)
	}
	ender.WorkEnded()
	ender.WorkEnded() // a second call frees nothing more
	second := next(t, ch, 10*time.Second)
	none(t, ch, 300*time.Millisecond)
	if info := r.consumerInfo(t, 0); info.NumAckPending != 2 || info.NumPending != 1 {
		t.Fatalf("one forwarded, one in work: server shows %d ack pending, %d pending; want 2, 1", info.NumAckPending, info.NumPending)
	}
	if err := first.Ack(); err != nil {
		t.Fatal(err)
	}
	// The first's ack frees no slot: it was freed when its work ended.
	none(t, ch, 300*time.Millisecond)
	if err := second.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := next(t, ch, 10*time.Second).Ack(); err != nil {
		t.Fatal(err)
	}
}

// A member keeps one lookahead request open: the stage's only member gets
// one message beyond its free slots; a member that shares its stage gets
// one only from a backlog that leaves a message for every other slot, so a
// member that joins finds work at once. Strict turns lookahead off.
func TestLookahead(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{}, 1, 2)
	for i := range 3 {
		r.publish(t, 0, fmt.Sprint("a", i), envelope(t, fmt.Sprint("a", i), uint64(i)))
	}
	for i := range 2 {
		r.publish(t, 1, fmt.Sprint("b", i), envelope(t, fmt.Sprint("b", i), uint64(i)))
	}
	_, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, 16)
	held := []transport.Delivery{next(t, ch, 10*time.Second), next(t, ch, 10*time.Second)}
	none(t, ch, 300*time.Millisecond)

	// Stage 1 has two slots: with two messages waiting, its first member
	// takes one for its slot and leaves the other for the second slot.
	_, ch2 := r.consume(t, 1, transport.ConsumeOptions{Member: "m2", Limit: 1, Shared: true}, 16)
	held = append(held, next(t, ch2, 10*time.Second))
	none(t, ch2, 300*time.Millisecond)
	_, ch3 := r.consume(t, 1, transport.ConsumeOptions{Member: "m3", Limit: 1, Shared: true}, 16)
	held = append(held, next(t, ch3, 10*time.Second))
	// Both slots busy: one more waiting is not taken by lookahead (it
	// would leave nothing for a slot that frees), two are: one of them.
	r.publish(t, 1, "b2", envelope(t, "b2", 2))
	none(t, ch2, 300*time.Millisecond)
	none(t, ch3, 10*time.Millisecond)
	r.publish(t, 1, "b3", envelope(t, "b3", 3))
	select {
	case d := <-ch2:
		held = append(held, d)
	case d := <-ch3:
		held = append(held, d)
	case <-time.After(10 * time.Second):
		t.Fatal("stage 1: no lookahead delivery from a backlog of 2 with both slots busy")
	}
	none(t, ch2, 300*time.Millisecond)
	none(t, ch3, 10*time.Millisecond)
	for _, d := range held {
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := next(t, ch, 10*time.Second).Ack(); err != nil {
		t.Fatal(err)
	}
}

// With Strict, a member asks only for its free slots, even as its
// stage's only member.
func TestStrict(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{Strict: true}, 1)
	for i := range 3 {
		r.publish(t, 0, fmt.Sprint("a", i), envelope(t, fmt.Sprint("a", i), uint64(i)))
	}
	_, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, 16)
	first := next(t, ch, 10*time.Second)
	none(t, ch, 300*time.Millisecond)
	if err := first.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := next(t, ch, 10*time.Second).Ack(); err != nil {
		t.Fatal(err)
	}
}

// A forward published after WorkEnded goes on in the background: Publish
// and Ack return at once, the ack reaches the server after the forward is
// stored, and the caller may reuse its buffer as soon as Publish returns.
func TestForwardInBackground(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{}, 1, 1)
	want := envelope(t, "id0", 0)
	r.publish(t, 0, "id0", want)
	_, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, 4)
	d := next(t, ch, 10*time.Second)
	d.Settler.(interface{ WorkEnded() }).WorkEnded()
	pub, err := r.conn.Publisher(r.run, 1)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), want...)
	if err := pub.Publish(context.Background(), transport.Outgoing{Data: out, Key: "id0"}); err != nil {
		t.Fatal(err)
	}
	clear(out) // the publisher kept a copy
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, fwd := r.consumerInfo(t, 0), r.consumerInfo(t, 1)
		if in.NumAckPending == 0 && in.NumPending == 0 && fwd.NumPending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("S1: %d ack pending, %d pending; S2: %d pending; want 0, 0, 1", in.NumAckPending, in.NumPending, fwd.NumPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, ch2 := r.consume(t, 1, transport.ConsumeOptions{Member: "m2", Limit: 1}, 4)
	got := next(t, ch2, 10*time.Second)
	if string(got.Data) != string(want) {
		t.Errorf("forwarded %q, want %q", got.Data, want)
	}
	if err := got.Ack(); err != nil {
		t.Fatal(err)
	}
}

// A message published twice with one key is stored once.
func TestDeduplicatesByKey(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{}, 1)
	data := envelope(t, "dup", 1)
	r.publish(t, 0, "dup", data)
	r.publish(t, 0, "dup", data)
	r.publish(t, 0, "", data) // key from the envelope: the same ID
	r.publish(t, 0, "other", envelope(t, "other", 2))
	if n := r.stored(t, 0); n != 2 {
		t.Fatalf("stream holds %d messages for S1, want 2 (duplicates dropped)", n)
	}
	// The same key to another destination is another message.
	r.publish(t, 1, "dup", data)
	if n := r.stored(t, 1); n != 1 {
		t.Fatalf("done holds %d messages, want 1", n)
	}
}

// stored is how many messages the run's stream holds on destination to's
// subject: the stream's own count, current once a publish has its PubAck
// (a consumer's NumPending is updated after, asynchronously, and can lag).
func (r *rig) stored(t *testing.T, to int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, js.StreamName(r.run.Subjects))
	if err != nil {
		t.Fatal(err)
	}
	subject := r.run.Subject(to)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// A rejected message is terminated: never delivered again.
func TestRejectTerminates(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{AckWait: 200 * time.Millisecond}, 1)
	_, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, 4)
	r.publish(t, 0, "", []byte("not an envelope"))
	d := next(t, ch, 10*time.Second)
	if err := d.Reject(fmt.Errorf("not an envelope")); err != nil {
		t.Fatal(err)
	}
	none(t, ch, 1200*time.Millisecond) // six AckWaits
	if info := r.consumerInfo(t, 0); info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("after Term: %d ack pending, %d redelivered", info.NumAckPending, info.NumRedelivered)
	}
}

// A delivery nobody settles comes again after AckWait, with its attempt
// counted; Release gives it back at once.
func TestRedeliveryAfterAckWait(t *testing.T) {
	benchkit.CheckLeaks(t)
	// keepAlive extends deliveries held past AckWait/3 while the member
	// runs; a member that dies sends nothing. Stop the first member
	// without settling, as a dead one would leave it.
	r := newRig(t, js.Options{AckWait: 300 * time.Millisecond}, 1)
	h, ch := deliveries(4)
	c1, err := r.conn.Consume(context.Background(), r.run, 0, transport.ConsumeOptions{Member: "m1", Limit: 1}, h)
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, 0, "x", envelope(t, "x", 1))
	d := next(t, ch, 10*time.Second)
	if d.Attempt != 1 {
		t.Fatalf("first delivery: attempt %d", d.Attempt)
	}
	if err := c1.Stop(); err != nil {
		t.Fatal(err)
	}
	// A second member, in another connection, gets it after AckWait.
	nc2, err := bus.Connect(r.srv.Conn, "js-test-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	conn2, err := js.Transport{}.Open(context.Background(), transport.Env{NC: nc2, NATS: r.srv.Conn, Name: "m2", Faults: r.faults})
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	c2, err := conn2.Consume(context.Background(), r.run, 0, transport.ConsumeOptions{Member: "m2", Limit: 1}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	d = next(t, ch, 10*time.Second)
	if d.Attempt != 2 {
		t.Fatalf("redelivery: attempt %d, want 2", d.Attempt)
	}
	if err := d.Release(); err != nil {
		t.Fatal(err)
	}
	d = next(t, ch, 10*time.Second)
	if d.Attempt != 3 {
		t.Fatalf("after Release: attempt %d, want 3", d.Attempt)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	none(t, ch, 900*time.Millisecond)
}

// A member working longer than AckWait keeps its delivery: no redelivery
// while it works.
func TestLongWorkNotRedelivered(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{AckWait: 300 * time.Millisecond}, 2)
	_, ch := r.consume(t, 0, transport.ConsumeOptions{Member: "m1", Limit: 2}, 4)
	r.publish(t, 0, "x", envelope(t, "x", 1))
	d := next(t, ch, 10*time.Second)
	none(t, ch, 1500*time.Millisecond) // five AckWaits of "work"
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

// Without JetStream, Open fails at once, naming the server.
func TestNoJetStream(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.StartWith(t, func(o *server.Options) { o.JetStream = false })
	nc, err := bus.Connect(srv.Conn, "js-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, err = js.Transport{}.Open(context.Background(), transport.Env{NC: nc, NATS: srv.Conn, Name: "t", Faults: &faults{}})
	if err == nil {
		t.Fatal("Open on a server without JetStream: no error")
	}
	if !strings.Contains(err.Error(), "does not offer JetStream") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("error %q does not name the server and the reason", err)
	}
	t.Logf("%v", err)
}

// Consuming a run that was never set up names the consumer and the server.
func TestConsumeWithoutSetup(t *testing.T) {
	benchkit.CheckLeaks(t)
	r := newRig(t, js.Options{}, 1)
	other := transport.Run{Subjects: bus.NewSubjects(), Stages: 1}
	_, err := r.conn.Consume(context.Background(), other, 0, transport.ConsumeOptions{Limit: 1}, func(transport.Delivery) {})
	if err == nil || !strings.Contains(err.Error(), "S1") || !strings.Contains(err.Error(), r.srv.URL) {
		t.Fatalf("error %v does not name the consumer and server", err)
	}
}

func TestStreamName(t *testing.T) {
	if got := js.StreamName(bus.Subjects{Prefix: "natspipe.ab C*>/x"}); got != "natspipe_ab_C___x" {
		t.Fatalf("StreamName: %q", got)
	}
}
