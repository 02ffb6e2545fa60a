package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/rabbittest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

// quiet is how long a test waits for something that must not happen.
const quiet = 300 * time.Millisecond

// wait bounds every wait for something that must happen.
const wait = 10 * time.Second

// ctlWait bounds a rabbitmqctl command: each starts an Erlang VM, which
// takes seconds, and many more on a busy machine.
const ctlWait = time.Minute

// ctl runs rabbitmqctl args against node within ctlWait.
func ctl(t *testing.T, node *rabbittest.Node, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlWait)
	defer cancel()
	out, err := node.Ctl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// faults collects a Conn's asynchronous errors and counts redeliveries
// (a pipelines.RedeliverySink).
type faults struct {
	mu          sync.Mutex
	errs        []error
	redelivered map[string]int
}

func (f *faults) Fault(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *faults) Redelivered(stage string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.redelivered == nil {
		f.redelivered = map[string]int{}
	}
	f.redelivered[stage]++
}

func (f *faults) redeliveries(stage string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redelivered[stage]
}

func (f *faults) take() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := f.errs
	f.errs = nil
	return errs
}

// rig is a run set up on the shared broker, with the Conn that set it up.
type rig struct {
	t      testing.TB
	tr     amqp.Transport
	conn   transport.Conn
	run    transport.Run
	faults *faults
}

func newRig(t testing.TB, quorum bool) *rig {
	t.Helper()
	return newRigWith(t, amqp.Transport{Quorum: quorum})
}

// newRigWith is newRig with tr's options (its URL is the shared node's)
// for every Conn the rig opens.
func newRigWith(t testing.TB, tr amqp.Transport) *rig {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		benchkit.CheckLeaks(tt)
	}
	tr.URL = rabbittest.Shared(t)
	r := &rig{t: t, tr: tr, faults: &faults{}}
	r.run = transport.Run{Subjects: bus.NewSubjects(), Stages: 2}
	r.conn = r.open("setup", r.faults)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.conn.Setup(ctx, r.run); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := r.conn.Teardown(ctx, r.run); err != nil {
			t.Error(err)
		}
		for _, err := range r.faults.take() {
			t.Errorf("fault: %v", err)
		}
	})
	return r
}

// open opens a Conn named name, closed when the test ends.
func (r *rig) open(name string, f *faults) transport.Conn {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := r.tr.Open(ctx, transport.Env{Name: name, Faults: f})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		if err := c.Close(); err != nil {
			r.t.Error(err)
		}
	})
	return c
}

func (r *rig) publish(to int, data ...string) {
	r.t.Helper()
	p, err := r.conn.Publisher(r.run, to)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, d := range data {
		if err := p.Publish(ctx, transport.Outgoing{Data: []byte(d), Key: d}); err != nil {
			r.t.Fatal(err)
		}
	}
}

// member consumes destination stage on c with limit, handing deliveries
// to its channel.
type member struct {
	c  transport.Consumer
	ch chan transport.Delivery
}

func (r *rig) member(c transport.Conn, stage int, name string, limit int) *member {
	r.t.Helper()
	m := &member{ch: make(chan transport.Delivery, 100)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var err error
	m.c, err = c.Consume(ctx, r.run, stage, transport.ConsumeOptions{Member: name, Limit: limit, Shared: true}, func(d transport.Delivery) { m.ch <- d })
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = m.c.Stop() })
	return m
}

// next waits for the member's next delivery.
func (m *member) next(t *testing.T) transport.Delivery {
	t.Helper()
	select {
	case d := <-m.ch:
		return d
	case <-time.After(wait):
		t.Fatalf("no delivery within %v", wait)
	}
	return transport.Delivery{}
}

// none checks that the member gets nothing for a while.
func (m *member) none(t *testing.T, why string) {
	t.Helper()
	select {
	case d := <-m.ch:
		t.Fatalf("%s: got %q (attempt %d)", why, d.Data, d.Attempt)
	case <-time.After(quiet):
	}
}

// depth is the number of ready messages in destination i's queue.
func (r *rig) depth(i int) int {
	r.t.Helper()
	conn, err := amqp.Dial(context.Background(), r.tr.URL, "inspect", wait)
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(amqp.QueueName(r.run, i), true, false, false, false, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return q.Messages
}

func TestPublishConsumeAck(t *testing.T) {
	r := newRig(t, false)
	m := r.member(r.conn, 0, "w1", 0)
	r.publish(0, "a", "b", "c")
	for _, want := range []string{"a", "b", "c"} {
		d := m.next(t)
		if string(d.Data) != want || d.Attempt != 1 {
			t.Fatalf("got %q attempt %d, want %q attempt 1", d.Data, d.Attempt, want)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(); err == nil {
			t.Fatal("a second Ack: no error")
		}
	}
	if err := m.c.Drain(wait); err != nil {
		t.Fatal(err)
	}
	if n := r.depth(0); n != 0 {
		t.Fatalf("queue holds %d after the acks", n)
	}
	if n := r.faults.redeliveries("S1"); n != 0 {
		t.Fatalf("%d redeliveries reported", n)
	}
}

// TestPrefetchBoundsUnsettled: a member with Limit 2 (Strict: no
// lookahead) holds exactly 2 of 5 queued messages, and gets the 3rd only
// once it acks one.
func TestPrefetchBoundsUnsettled(t *testing.T) {
	r := newRigWith(t, amqp.Transport{Strict: true})
	r.publish(0, "1", "2", "3", "4", "5")
	m := r.member(r.conn, 0, "w1", 2)
	d1, d2 := m.next(t), m.next(t)
	m.none(t, "a third delivery while 2 are unsettled")
	if err := d1.Ack(); err != nil {
		t.Fatal(err)
	}
	d3 := m.next(t)
	if got := string(d1.Data) + string(d2.Data) + string(d3.Data); got != "123" {
		t.Fatalf("got %q, want 123", got)
	}
	m.none(t, "a fourth delivery while 2 are unsettled")
	if n := r.depth(0); n != 2 {
		t.Fatalf("queue holds %d ready, want 2", n)
	}
	for _, d := range []transport.Delivery{d2, d3} {
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	m.next(t)
	m.next(t)
}

// TestSharedMembersWorkConserving: with two members of Limit 1 (Strict:
// no lookahead), a busy member gets nothing while the other is free, and
// nothing waits behind a busy member.
func TestSharedMembersWorkConserving(t *testing.T) {
	r := newRigWith(t, amqp.Transport{Strict: true})
	a := r.member(r.open("a", r.faults), 1, "a", 1)
	b := r.member(r.open("b", r.faults), 1, "b", 1)
	r.publish(1, "first")
	var busy, free *member
	select {
	case d := <-a.ch:
		busy, free = a, b
		defer func() { _ = d.Ack() }()
	case d := <-b.ch:
		busy, free = b, a
		defer func() { _ = d.Ack() }()
	case <-time.After(wait):
		t.Fatal("no member got the first message")
	}
	r.publish(1, "second")
	d := free.next(t)
	if string(d.Data) != "second" {
		t.Fatalf("the free member got %q", d.Data)
	}
	busy.none(t, "the busy member got a message")
	r.publish(1, "third")
	busy.none(t, "a member at its limit got a message")
	free.none(t, "a member at its limit got a message")
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	if d := free.next(t); string(d.Data) != "third" {
		t.Fatalf("the freed member got %q", d.Data)
	} else {
		_ = d.Ack()
	}
}

func TestRejectNeverRedelivered(t *testing.T) {
	r := newRig(t, false)
	m := r.member(r.conn, 0, "w1", 1)
	r.publish(0, "bad")
	d := m.next(t)
	if err := d.Reject(errors.New("malformed")); err != nil {
		t.Fatal(err)
	}
	m.none(t, "a rejected message came back")
	if n := r.depth(0); n != 0 {
		t.Fatalf("queue holds %d after the reject", n)
	}
}

func TestReleaseRedelivered(t *testing.T) {
	for _, quorum := range []bool{false, true} {
		t.Run("quorum="+strconv.FormatBool(quorum), func(t *testing.T) {
			r := newRig(t, quorum)
			m := r.member(r.conn, 1, "w1", 1)
			r.publish(1, "m")
			d := m.next(t)
			if d.Attempt != 1 {
				t.Fatalf("first delivery: attempt %d", d.Attempt)
			}
			if err := d.Release(); err != nil {
				t.Fatal(err)
			}
			d = m.next(t)
			if string(d.Data) != "m" || d.Attempt != 2 {
				t.Fatalf("redelivery: %q attempt %d, want m attempt 2", d.Data, d.Attempt)
			}
			if n := r.faults.redeliveries("S2"); n != 1 {
				t.Fatalf("%d redeliveries of S2 reported, want 1", n)
			}
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStopRedeliversToAnotherMember: what a stopped member held unacked
// goes to another member, and settling it afterwards is an error.
func TestStopRedeliversToAnotherMember(t *testing.T) {
	r := newRig(t, false)
	a := r.member(r.open("a", r.faults), 0, "a", 1)
	r.publish(0, "held")
	d := a.next(t)
	b := r.member(r.open("b", r.faults), 0, "b", 1)
	b.none(t, "a held message went to the other member")
	if err := a.c.Stop(); err != nil {
		t.Fatal(err)
	}
	got := b.next(t)
	if string(got.Data) != "held" || got.Attempt < 2 {
		t.Fatalf("other member got %q attempt %d, want held attempt >= 2", got.Data, got.Attempt)
	}
	if err := d.Ack(); err == nil {
		t.Fatal("Ack after Stop: no error")
	}
	if err := got.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Stop(); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
}

// TestDrainHandsOverWhatArrived: Drain stops the consumer, gives the
// handler every delivery already received, and the deliveries can still
// be settled afterwards.
func TestDrainHandsOverWhatArrived(t *testing.T) {
	r := newRig(t, false)
	const n = 20
	data := make([]string, n)
	for i := range data {
		data[i] = strconv.Itoa(i)
	}
	r.publish(0, data...)
	m := r.member(r.conn, 0, "w1", 5)
	first := m.next(t)
	if err := m.c.Drain(wait); err != nil {
		t.Fatal(err)
	}
	held := []transport.Delivery{first}
	for len(m.ch) > 0 {
		held = append(held, <-m.ch)
	}
	if len(held) != 6 {
		t.Fatalf("%d deliveries handed over, want the prefetch, 5, and the lookahead's 1", len(held))
	}
	m.none(t, "a delivery after Drain")
	for _, d := range held {
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.depth(0); got != n-6 {
		t.Fatalf("queue holds %d, want %d", got, n-6)
	}
}

// TestPublishWaitsForConfirm: with the broker blocking publishers (a
// memory alarm), Publish does not return nil: it waits for a confirm that
// does not come, until its context ends; once the alarm clears it
// succeeds. And a confirmed message is in its queue when Publish returns.
func TestPublishWaitsForConfirm(t *testing.T) {
	r := newRig(t, false)
	p, err := r.conn.Publisher(r.run, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := p.Publish(ctx, transport.Outgoing{Data: []byte("x"), Key: "k1"}); err != nil {
		t.Fatal(err)
	}
	if n := r.depth(0); n != 1 {
		t.Fatalf("queue holds %d right after a confirmed publish, want 1", n)
	}
	node := rabbittest.SharedNode(t)
	if node == nil {
		t.Skip("the broker is RABBITMQ_URL's: cannot raise its memory alarm")
	}
	ctl(t, node, "set_vm_memory_high_watermark", "0.000001")
	restored := false
	restore := func() {
		if !restored {
			restored = true
			ctl(t, node, "set_vm_memory_high_watermark", "0.4")
		}
	}
	defer restore()
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	start := time.Now()
	err = p.Publish(short, transport.Outgoing{Data: []byte("y"), Key: "k2"})
	if err == nil {
		t.Fatal("Publish returned nil while the broker blocks publishers")
	}
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("Publish during the alarm: %v after %v, want the context's deadline", err, time.Since(start))
	}
	restore()
	after, cancelAfter := context.WithTimeout(context.Background(), wait)
	defer cancelAfter()
	if err := p.Publish(after, transport.Outgoing{Data: []byte("z"), Key: "k3"}); err != nil {
		t.Fatal(err)
	}
}

func TestPublishToMissingQueue(t *testing.T) {
	r := newRig(t, false)
	other := transport.Run{Subjects: bus.NewSubjects(), Stages: 2} // not set up
	p, err := r.conn.Publisher(other, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range 3 {
		err = p.Publish(ctx, transport.Outgoing{Data: []byte("lost"), Key: "k"})
		if err == nil || !strings.Contains(err.Error(), "unroutable") || !strings.Contains(err.Error(), amqp.QueueName(other, 1)) {
			t.Fatalf("publish to a missing queue: %v", err)
		}
	}
	// The publisher still works for queues that exist.
	good, err := r.conn.Publisher(r.run, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Publish(ctx, transport.Outgoing{Data: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
}

func TestConsumeMissingQueue(t *testing.T) {
	r := newRig(t, false)
	other := transport.Run{Subjects: bus.NewSubjects(), Stages: 2}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := r.conn.Consume(ctx, other, 0, transport.ConsumeOptions{Member: "w", Limit: 1}, func(transport.Delivery) {})
	if err == nil || !strings.Contains(err.Error(), "NOT_FOUND") || !strings.Contains(err.Error(), amqp.QueueName(other, 0)) {
		t.Fatalf("consume of a missing queue: %v", err)
	}
	// The Conn goes on working.
	r.member(r.conn, 0, "w", 1)
}

func TestTeardownDeletesQueues(t *testing.T) {
	r := newRig(t, false)
	r.publish(0, "left over")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.conn.Teardown(ctx, r.run); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(ctx, r.tr.URL, "inspect", wait)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	for i := 0; i <= r.run.Stages; i++ {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(amqp.QueueName(r.run, i), true, false, false, false, nil)
		var ae *rmq.Error
		if !errors.As(err, &ae) || ae.Code != rmq.NotFound {
			t.Fatalf("queue %s after Teardown: %v, want 404", amqp.QueueName(r.run, i), err)
		}
	}
	// Tearing down again (the rig's cleanup does) is not an error.
}

func TestSetupIdempotentAndTypeChecked(t *testing.T) {
	r := newRig(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.conn.Setup(ctx, r.run); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	q := amqp.Transport{URL: r.tr.URL, Quorum: true}
	c, err := q.Open(ctx, transport.Env{Name: "quorum", Faults: r.faults})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Setup(ctx, r.run); err == nil || !strings.Contains(err.Error(), "declare queue") {
		t.Fatalf("quorum Setup over classic queues: %v", err)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

func TestUnreachable(t *testing.T) {
	benchkit.CheckLeaks(t)
	const secret = "s3cret-Pw"
	url := fmt.Sprintf("amqp://guest:%s@127.0.0.1:%d/", secret, closedPort(t))
	tr := amqp.Transport{URL: url, DialTimeout: 2 * time.Second}
	start := time.Now()
	_, err := tr.Open(context.Background(), transport.Env{Name: "w", Faults: &faults{}})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Open of a closed port: no error")
	}
	msg := err.Error()
	if strings.Contains(msg, secret) || !strings.Contains(msg, amqp.Mask(url)) || !strings.Contains(msg, "refused") {
		t.Fatalf("error %q: want the masked URL and the reason, without the password", msg)
	}
	if took > 3*time.Second {
		t.Fatalf("took %v, bound 2s", took)
	}
}

func TestWrongPassword(t *testing.T) {
	benchkit.CheckLeaks(t)
	good := rabbittest.Shared(t)
	const secret = "wr0ng-Pw"
	i := strings.LastIndexByte(good, '@')
	if i < 0 {
		t.Skip("RABBITMQ_URL has no user info")
	}
	url := "amqp://guest:" + secret + good[i:]
	tr := amqp.Transport{URL: url, DialTimeout: 5 * time.Second}
	start := time.Now()
	_, err := tr.Open(context.Background(), transport.Env{Name: "w", Faults: &faults{}})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Open with a wrong password: no error")
	}
	msg := err.Error()
	if strings.Contains(msg, secret) || !strings.Contains(msg, amqp.Mask(url)) || !strings.Contains(msg, "password") {
		t.Fatalf("error %q: want the masked URL and the reason, without the password", msg)
	}
	if took > 6*time.Second {
		t.Fatalf("took %v, bound 5s", took)
	}
}

func TestNoURL(t *testing.T) {
	t.Setenv(amqp.EnvURL, "")
	_, err := amqp.Transport{}.Open(context.Background(), transport.Env{Name: "w", Faults: &faults{}})
	if err == nil || !strings.Contains(err.Error(), amqp.EnvURL) {
		t.Fatalf("Open without a URL: %v", err)
	}
}

func TestURLFromEnvironment(t *testing.T) {
	benchkit.CheckLeaks(t)
	t.Setenv(amqp.EnvURL, rabbittest.Shared(t))
	c, err := amqp.Transport{}.Open(context.Background(), transport.Env{Name: "w", Faults: &faults{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEnviron(t *testing.T) {
	if env := (amqp.Transport{}).Environ(); env != nil {
		t.Fatalf("Environ without a URL: %q", env)
	}
	u := "amqp://u:p@h:5672/"
	if env := (amqp.Transport{URL: u}).Environ(); len(env) != 1 || env[0] != "RABBITMQ_URL="+u {
		t.Fatalf("Environ: %q", env)
	}
	var tr transport.Transport = amqp.Transport{}
	if tr.Name() != "amqp" || !tr.AtLeastOnce() {
		t.Fatalf("Name %q, AtLeastOnce %v", tr.Name(), tr.AtLeastOnce())
	}
}

// TestConnectionLossIsFault: the broker closing the connection is a fault
// of the run, naming the connection; the Conn closing it is not.
func TestConnectionLossIsFault(t *testing.T) {
	r := newRig(t, false)
	node := rabbittest.SharedNode(t)
	if node == nil {
		t.Skip("the broker is RABBITMQ_URL's: cannot close its connections")
	}
	f := &faults{}
	victim := r.open("victim", f)
	r.member(victim, 0, "v", 1)
	out := ctl(t, node, "list_connections", "--quiet", "--no-table-headers", "pid", "client_properties")
	pid := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"victim"`) {
			pid, _, _ = strings.Cut(strings.TrimSpace(line), "\t")
		}
	}
	if pid == "" {
		t.Fatalf("no connection named victim in:\n%s", out)
	}
	ctl(t, node, "close_connection", pid, "test closes it")
	deadline := time.Now().Add(wait)
	var errs []error
	for len(errs) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // faults has no event to wait on
		errs = f.take()
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `"victim"`) || !strings.Contains(errs[0].Error(), "lost") {
		t.Fatalf("faults after the broker closed the connection: %v", errs)
	}
	if errs := f.take(); len(errs) != 0 {
		t.Fatalf("more faults: %v", errs)
	}
}

func TestOutOfRange(t *testing.T) {
	r := newRig(t, false)
	if _, err := r.conn.Publisher(r.run, r.run.Stages+1); err == nil {
		t.Fatal("Publisher past the sink: no error")
	}
	if _, err := r.conn.Consume(context.Background(), r.run, -1, transport.ConsumeOptions{}, func(transport.Delivery) {}); err == nil {
		t.Fatal("Consume of stage -1: no error")
	}
}

// TestQueueDeletedIsFault: a consumer whose queue is deleted under it
// (the broker cancels it) is a fault of the run.
func TestQueueDeletedIsFault(t *testing.T) {
	r := newRig(t, false)
	f := &faults{}
	c := r.open("victim", f)
	r.member(c, 0, "v", 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.conn.Teardown(ctx, r.run); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	var errs []error
	for len(errs) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // faults has no event to wait on
		errs = f.take()
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "cancelled the consumer") || !strings.Contains(errs[0].Error(), amqp.QueueName(r.run, 0)) {
		t.Fatalf("faults after the queue was deleted: %v", errs)
	}
}

// TestMessageProperties: a published message is persistent and carries
// MessageId = key + "." + destination; without a key, the envelope's
// correlation ID's; neither, MessageId stays empty.
func TestMessageProperties(t *testing.T) {
	r := newRig(t, false)
	p, err := r.conn.Publisher(r.run, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := p.Publish(ctx, transport.Outgoing{Data: []byte("x"), Key: "corr-1"}); err != nil {
		t.Fatal(err)
	}
	env := pipelines.Envelope{ID: "corr-2"}
	data, err := env.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range [][]byte{data, []byte("not an envelope")} {
		if err := p.Publish(ctx, transport.Outgoing{Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := amqp.Dial(ctx, r.tr.URL, "inspect", wait)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"corr-1.S2", "corr-2.S2", ""} {
		d, ok, err := ch.Get(amqp.QueueName(r.run, 1), true)
		if err != nil || !ok {
			t.Fatalf("get: %v, %v", ok, err)
		}
		if d.MessageId != want || d.DeliveryMode != rmq.Persistent {
			t.Fatalf("MessageId %q, delivery mode %d; want %q, persistent", d.MessageId, d.DeliveryMode, want)
		}
	}
}

// TestPrefetch checks who takes a message more than it works on: only a
// destination's sole member, where no other member could have started it.
func TestPrefetch(t *testing.T) {
	run := transport.Run{Stages: 4, Concurrency: []int{1, 4, 2, 1}}
	for _, c := range []struct {
		stage int
		opts  transport.ConsumeOptions
		want  int
	}{
		{0, transport.ConsumeOptions{Limit: 1, Shared: true}, 2},  // S1's only worker
		{1, transport.ConsumeOptions{Limit: 1, Shared: true}, 1},  // one of S2's four
		{2, transport.ConsumeOptions{Limit: 2, Shared: true}, 3},  // S3's only async worker
		{2, transport.ConsumeOptions{Limit: 1, Shared: true}, 1},  // one of S3's two
		{1, transport.ConsumeOptions{Limit: 8, Shared: false}, 9}, // P2: the process is the stage
		{4, transport.ConsumeOptions{Limit: 1}, 2},                // the sink
		{1, transport.ConsumeOptions{Limit: 0, Shared: false}, 0}, // unlimited
	} {
		if got := amqp.Prefetch(run, c.stage, c.opts); got != c.want {
			t.Errorf("stage %d %+v: prefetch %d, want %d", c.stage, c.opts, got, c.want)
		}
		// A lookahead consumer for the members of several only.
		ahead := c.want == c.opts.Limit && c.want > 0
		if got := amqp.Lookahead(run, c.stage, c.opts, false); got != ahead {
			t.Errorf("stage %d %+v: lookahead %v, want %v", c.stage, c.opts, got, ahead)
		}
		if amqp.Lookahead(run, c.stage, c.opts, true) {
			t.Errorf("stage %d %+v: lookahead when strict", c.stage, c.opts)
		}
	}
	if got := amqp.Prefetch(transport.Run{Stages: 4}, 1, transport.ConsumeOptions{Limit: 1, Shared: true}); got != 1 {
		t.Errorf("a shared member of a run of unknown concurrency: prefetch %d, want 1", got)
	}
}
