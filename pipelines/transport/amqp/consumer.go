package amqp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// Prefetch is the prefetch of a member of destination stage with opts:
// opts.Limit (0: unlimited), one more for the destination's only member
// (opts.Shared false, or run.Concurrency[stage] == opts.Limit): see
// Consume.
func Prefetch(run transport.Run, stage int, opts transport.ConsumeOptions) int {
	if opts.Limit == 0 {
		return 0
	}
	alone := !opts.Shared || (stage < len(run.Concurrency) && run.Concurrency[stage] == opts.Limit)
	if alone {
		return opts.Limit + 1
	}
	return opts.Limit
}

// deliveryCountHeader is the header a quorum queue counts a message's
// earlier deliveries in.
const deliveryCountHeader = "x-delivery-count"

// Consumer priorities (the x-priority argument of basic.consume): the
// broker gives a message to a lookahead consumer only while every main
// consumer of the queue is blocked (its prefetch full).
const (
	priorityArg   = "x-priority"
	mainPriority  = 10
	aheadPriority = 0
	// aheadSuffix ends a lookahead consumer's tag: the member's tag +
	// "-ahead".
	aheadSuffix = "-ahead"
)

// Lookahead reports whether a member of destination stage with opts has
// a lookahead consumer as well as its main one: a member of several
// (Prefetch gives opts.Limit, not 0), unless strict (Transport.Strict).
func Lookahead(run transport.Run, stage int, opts transport.ConsumeOptions, strict bool) bool {
	return !strict && opts.Limit > 0 && Prefetch(run, stage, opts) == opts.Limit
}

// Consume implements transport.Conn: a channel of its own with prefetch
// Prefetch(run, stage, opts) (0: unlimited), and a consumer of the
// destination's queue on it, tagged opts.Member, acknowledging manually,
// with priority 10 (x-priority). A member of several (see Lookahead)
// also has a lookahead consumer of the queue, tagged opts.Member +
// "-ahead", on a second channel with prefetch 1 and priority 0. The
// deliveries of both are handed to h one at a time, on a goroutine of
// the consumer, each settled on the channel it came on. A queue that
// does not exist (the run is not set up) is an error. Every consumer of a
// queue shares its messages.
//
// A member's next message is in hand when its work on the last one ends
// only if the broker sent it before the ack: a member with prefetch =
// Limit idles for its forward's confirm (the ack waits for it, see
// settler.WorkEnded) and an ack/deliver round trip per message (0.4-0.5
// ms here, ~2 ms under a loaded P4). So the stage's only member (not
// Shared, or whose Limit is the stage's whole concurrency) takes one
// message more: nobody else could have started it. A member of several
// keeps prefetch = Limit on its main consumer, so a message goes to a
// member with a free slot whenever there is one; its lookahead consumer
// gets a message only when every member's main consumer is full (all
// busy, or holding acks for confirms), and that message waits behind its
// member's work, to be started the moment that work ends. The cost: a
// lookahead message may still wait there when another member frees first
// (the queue had no other message for it), and while a member works on
// its lookahead message its main consumer may be free again (the
// previous delivery acked), so a new message can go to it while another
// member is idle, to wait behind that work. Transport.Strict turns
// lookahead off.
func (c *Conn) Consume(ctx context.Context, run transport.Run, stage int, opts transport.ConsumeOptions, h transport.Handler) (transport.Consumer, error) {
	if err := checkDest(run, stage); err != nil {
		return nil, err
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("transport amqp: consume %s: limit %d < 0", destName(run, stage), opts.Limit)
	}
	k := &consumer{
		c:         c,
		name:      destName(run, stage),
		forwardTo: forwardTo(run, stage),
		queue:     QueueName(run, stage),
		tag:       opts.Member,
		h:         h,
		done:      make(chan struct{}),
	}
	if k.tag == "" {
		k.tag = c.name + "-" + k.name
	}
	prefetch := min(Prefetch(run, stage, opts), maxPrefetch)
	ahead := Lookahead(run, stage, opts, c.strict)
	err := c.bounded(ctx, fmt.Sprintf("consume queue %s as %s", k.queue, k.tag), func() error {
		main, err := c.lane(k.queue, k.tag, prefetch, mainPriority)
		if err != nil {
			return err
		}
		if !ahead {
			k.main = main
			return nil
		}
		la, err := c.lane(k.queue, k.tag+aheadSuffix, 1, aheadPriority)
		if err != nil {
			_ = main.ch.Close()
			return fmt.Errorf("lookahead: %w", err)
		}
		k.main, k.ahead = main, la
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("transport amqp: consume queue %s on %s: %w", k.queue, c.server, rmq.ErrClosed)
	}
	c.consumers = append(c.consumers, k)
	c.loops.Add(1)
	c.mu.Unlock()
	go k.loop()
	return k, nil
}

// lane opens a channel with prefetch and starts a consumer of queue on
// it, tagged tag, with priority.
func (c *Conn) lane(queue, tag string, prefetch, priority int) (*lane, error) {
	ch, err := c.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open a channel: %w", err)
	}
	l := &lane{ch: ch, tag: tag, ahead: priority == aheadPriority, closes: make(chan *rmq.Error, 1)}
	ch.NotifyClose(l.closes)
	if err := ch.Qos(prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("prefetch %d: %w", prefetch, err)
	}
	// A missing queue fails here: 404 NOT_FOUND, and the channel closes.
	l.deliveries, err = ch.Consume(queue, tag, false, false, false, false, rmq.Table{priorityArg: int32(priority)})
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return l, nil
}

// forwardTo names the destination the deliveries of destination stage
// are forwarded to; "" for the sink's.
func forwardTo(run transport.Run, stage int) string {
	if stage < run.Stages {
		return destName(run, stage+1)
	}
	return ""
}

// consumer is one member's consumption of a queue: its main consumer
// and, for a member of several, its lookahead consumer.
type consumer struct {
	c         *Conn
	name      string // the destination: "S1", ..., "done"
	forwardTo string // the destination its deliveries go on to; "" for done
	queue     string
	tag       string
	h         transport.Handler
	main      *lane
	ahead     *lane // nil: no lookahead

	inHand  atomic.Int32 // a delivery taken from the library, not yet handed over
	halt    atomic.Bool  // hand nothing more to the handler
	ended   atomic.Bool  // drained, stopped or closed by us: the end is no fault
	faulted bool         // the loop reported the consumer's end (loop only)
	done    chan struct{}
	once    sync.Once
	result  error
}

// lane is one broker consumer of a member: its channel (deliveries are
// settled on it) and its deliveries.
type lane struct {
	ch         *rmq.Channel
	tag        string
	ahead      bool // the lookahead consumer
	deliveries <-chan rmq.Delivery
	closes     chan *rmq.Error
}

// lanes are k's broker consumers.
func (k *consumer) lanes() []*lane {
	if k.ahead == nil {
		return []*lane{k.main}
	}
	return []*lane{k.main, k.ahead}
}

// loop hands the deliveries of k's consumers to the handler, one at a
// time, until both are cancelled or their channels closed.
func (k *consumer) loop() {
	defer k.c.loops.Done()
	defer close(k.done)
	main := k.main.deliveries
	var ahead <-chan rmq.Delivery
	if k.ahead != nil {
		ahead = k.ahead.deliveries
	}
	for main != nil || ahead != nil {
		var d rmq.Delivery
		var ok bool
		var from *lane
		select {
		case d, ok = <-main:
			if from = k.main; !ok {
				main = nil
			}
		case d, ok = <-ahead:
			if from = k.ahead; !ok {
				ahead = nil
			}
		}
		if !ok {
			k.laneEnded(from)
			continue
		}
		k.deliver(from, d)
	}
}

// deliver hands d, which came on l, to the handler.
func (k *consumer) deliver(l *lane, d rmq.Delivery) {
	if k.halt.Load() {
		return // stopped: the broker takes it back when the channel closes
	}
	k.inHand.Store(1)
	attempt := 1
	if d.Redelivered {
		attempt = 2
	}
	if n, ok := deliveryCount(d.Headers); ok {
		attempt = max(attempt, n+1)
	}
	if attempt > 1 && k.c.redeliveries != nil {
		k.c.redeliveries.Redelivered(k.name)
	}
	k.c.busy.Add(1)
	s := &settler{k: k, l: l, tag: d.DeliveryTag, body: d.Body, msgID: d.MessageId}
	k.inHand.Store(0)
	k.h(transport.Delivery{Data: d.Body, Attempt: attempt, Settler: s})
}

// laneEnded reports the end of l's deliveries as a fault of the run
// (once per member) unless we ended it or the connection was lost.
func (k *consumer) laneEnded(l *lane) {
	if k.faulted || k.ended.Load() || k.c.closing.Load() || k.c.conn.IsClosed() {
		return // ours, or the connection's loss, which watch reports
	}
	k.faulted = true
	reason := "the broker cancelled the consumer (queue deleted?)"
	select {
	case e, ok := <-l.closes:
		if ok && e != nil {
			reason = "channel closed: " + e.Error()
		}
	default:
	}
	k.c.faults.Fault(fmt.Errorf("transport amqp: consumer %s of queue %s on %s stopped: %s", l.tag, k.queue, k.c.server, reason))
}

// deliveryCount reads a quorum queue's x-delivery-count header.
func deliveryCount(h rmq.Table) (int, bool) {
	if h == nil {
		return 0, false
	}
	switch v := h[deliveryCountHeader].(type) {
	case int64:
		return int(v), true
	case int32:
		return int(v), true
	case int16:
		return int(v), true
	case int8:
		return int(v), true
	case int:
		return v, true
	case uint64:
		return int(v), true
	case uint32:
		return int(v), true
	case uint16:
		return int(v), true
	case uint8:
		return int(v), true
	}
	return 0, false
}

// Pending implements transport.Consumer: the delivery the consumer has
// taken from the client library and not yet handed to the handler (0 or
// 1). Deliveries the library holds beyond it (at most the prefetch,
// Limit, and the lookahead's one, less those unsettled) are not seen.
func (k *consumer) Pending() int { return int(k.inHand.Load()) }

// Drain implements transport.Consumer: it cancels the member's consumers
// at the broker (basic.cancel: main and lookahead), hands the handler what
// had already arrived on either, and returns once the handler has
// returned for the last time. The channels stay open, so the deliveries
// handed out can still be settled; they close with the Conn.
func (k *consumer) Drain(timeout time.Duration) error { return k.end(false, timeout) }

// Stop implements transport.Consumer: it closes the member's channels
// (main and lookahead) at once; the broker takes back every delivery the
// member held unacknowledged, and delivers it again, to this member or
// another. Stop returns once the handler is no longer running, within
// transport.CloseTimeout; settling a delivery after Stop is an error.
func (k *consumer) Stop() error { return k.end(true, transport.CloseTimeout) }

func (k *consumer) end(halt bool, timeout time.Duration) error {
	k.once.Do(func() {
		k.ended.Store(true)
		deadline := time.Now().Add(max(timeout, time.Millisecond))
		if halt {
			k.halt.Store(true)
		}
		for _, l := range k.lanes() {
			if halt {
				k.c.goroutine(func() { _ = l.ch.Close() })
			} else {
				// On cancel-ok the library closes the deliveries once it
				// has handed over what arrived before.
				k.c.goroutine(func() { _ = l.ch.Cancel(l.tag, false) })
			}
		}
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-k.done:
		case <-t.C:
			k.halt.Store(true)
			what := "drain"
			if halt {
				what = "stop"
			}
			k.result = fmt.Errorf("transport amqp: %s consumer %s of queue %s: handler still busy after %v", what, k.tag, k.queue, timeout)
		}
	})
	return k.result
}

// settler settles one delivery; only its first call counts.
type settler struct {
	k     *consumer
	l     *lane // the consumer it came from: it is settled on its channel
	tag   uint64
	body  []byte // the delivery's, for its correlation ID
	msgID string // the delivery's MessageId
	done  atomic.Bool
	// id is the MessageId of its forward while it is registered with the
	// Conn for it (WorkEnded); used by the router's executor only.
	id string

	fmu        sync.Mutex
	background bool       // its forward's confirm is awaited in the background
	fwdDone    bool       // ... and has come, or failed: fwdErr
	fwdErr     error      //
	held       settlement // decided while the forward was unconfirmed
	holding    bool       // held is set
}

// How a delivery is settled.
type settlement int

const (
	ack settlement = iota
	reject
	release
)

var settlementNames = [...]string{ack: "ack", reject: "reject", release: "release"}

// WorkEnded tells the consumer that stage work on the delivery has ended
// and the router is about to publish its forward: the delivery registers
// with the Conn under the forward's MessageId (its correlation ID + "." +
// the next destination), so that Publish, on the same Conn, sends the
// forward and returns without waiting for its confirm, which then holds
// the delivery's Ack back (see publisher.Publish). A delivery of the sink,
// or whose correlation ID is unknown, or whose forward another delivery of
// the Conn is expecting (a redelivery), is forwarded as before.
func (s *settler) WorkEnded() {
	if s.k.forwardTo == "" || s.done.Load() {
		return
	}
	key, ok := js.EnvelopeID(s.body)
	if !ok {
		// Not an envelope: the key it was published with.
		key, ok = strings.CutSuffix(s.msgID, "."+s.k.name)
		if !ok || key == "" {
			return
		}
	}
	id := key + "." + s.k.forwardTo
	if s.k.c.expectForward(id, s) {
		s.id = id
	}
}

// inBackground marks s's forward as sent, its confirm awaited in the
// background.
func (s *settler) inBackground() {
	s.fmu.Lock()
	s.background = true
	s.fmu.Unlock()
}

// forwarded is the outcome of s's forward, whose confirm was awaited in
// the background: the settlement decided meanwhile is sent now, an Ack
// turned into a requeue if the forward failed (the message is delivered
// again, and forwarded again). The failure is a fault of the run unless
// the Conn is closing.
func (s *settler) forwarded(err error) {
	s.fmu.Lock()
	s.fwdDone, s.fwdErr = true, err
	how, holding := s.held, s.holding
	s.fmu.Unlock()
	c := s.k.c
	if err != nil && !c.closing.Load() {
		c.faults.Fault(fmt.Errorf("transport amqp: delivery %d of %s: forward failed, the delivery goes back to its queue: %w", s.tag, s.k.queue, err))
	}
	if !holding {
		return // not decided yet: settle sends it
	}
	if err != nil && how == ack {
		how = release
	}
	if err := s.send(how); err != nil && !c.closing.Load() && !s.k.halt.Load() {
		c.faults.Fault(err)
	}
}

func (s *settler) settle(how settlement) error {
	if !s.done.CompareAndSwap(false, true) {
		return fmt.Errorf("transport amqp: %s delivery %d of %s: already settled", settlementNames[how], s.tag, s.k.queue)
	}
	if s.id != "" {
		s.k.c.unexpectForward(s.id, s) // in case no forward came
	}
	s.fmu.Lock()
	if s.background && !s.fwdDone {
		s.held, s.holding = how, true // forwarded sends it
		s.fmu.Unlock()
		return nil
	}
	if s.background && s.fwdErr != nil && how == ack {
		how = release
	}
	s.fmu.Unlock()
	return s.send(how)
}

// send settles s with the broker.
func (s *settler) send(how settlement) error {
	var err error
	switch how {
	case ack:
		err = s.l.ch.Ack(s.tag, false)
	case reject:
		err = s.l.ch.Nack(s.tag, false, false)
	case release:
		err = s.l.ch.Nack(s.tag, false, true)
	}
	s.k.c.unbusy()
	if err != nil {
		return fmt.Errorf("transport amqp: %s delivery %d of %s on %s: %w", settlementNames[how], s.tag, s.k.queue, s.k.c.server, err)
	}
	return nil
}

// Ack implements transport.Settler: basic.ack; while the delivery's
// forward is unconfirmed (see WorkEnded), once its confirm has come, or a
// requeue (basic.nack with requeue) if the forward failed.
func (s *settler) Ack() error { return s.settle(ack) }

// Reject implements transport.Settler: basic.nack without requeue, so the
// broker drops the message (RabbitMQ keeps no reason).
func (s *settler) Reject(error) error { return s.settle(reject) }

// Release implements transport.Settler: basic.nack with requeue, for
// another delivery now (after its forward's confirm, if one is awaited).
func (s *settler) Release() error { return s.settle(release) }
