package amqp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/natspipe/natspipe/pipelines/transport"
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

// Consume implements transport.Conn: a channel of its own with prefetch
// Prefetch(run, stage, opts) (0: unlimited), and a consumer of the
// destination's queue on it, tagged opts.Member, acknowledging manually.
// Its deliveries are handed to h one at a time, on a goroutine of the
// consumer. A queue that does not exist (the run is not set up) is an
// error. Every consumer of a queue shares its messages.
//
// A member's next message is in hand when its work on the last one ends
// only if the broker sent it before the ack: a member with prefetch =
// Limit idles for its forward's confirm and an ack/deliver round trip per
// message (0.4-0.5 ms here). So the stage's only member (not Shared, or
// whose Limit is the stage's whole concurrency) takes one message more:
// nobody else could have started it. A member of several keeps prefetch =
// Limit, so no message waits behind a busy member while another is free.
func (c *Conn) Consume(ctx context.Context, run transport.Run, stage int, opts transport.ConsumeOptions, h transport.Handler) (transport.Consumer, error) {
	if err := checkDest(run, stage); err != nil {
		return nil, err
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("transport amqp: consume %s: limit %d < 0", destName(run, stage), opts.Limit)
	}
	k := &consumer{
		c:      c,
		name:   destName(run, stage),
		queue:  QueueName(run, stage),
		tag:    opts.Member,
		h:      h,
		closes: make(chan *rmq.Error, 1),
		done:   make(chan struct{}),
	}
	if k.tag == "" {
		k.tag = c.name + "-" + k.name
	}
	prefetch := min(Prefetch(run, stage, opts), maxPrefetch)
	err := c.bounded(ctx, fmt.Sprintf("consume queue %s as %s", k.queue, k.tag), func() error {
		ch, err := c.conn.Channel()
		if err != nil {
			return fmt.Errorf("open a channel: %w", err)
		}
		ch.NotifyClose(k.closes)
		if err := ch.Qos(prefetch, 0, false); err != nil {
			_ = ch.Close()
			return fmt.Errorf("prefetch %d: %w", prefetch, err)
		}
		// A missing queue fails here: 404 NOT_FOUND, and the channel
		// closes.
		deliveries, err := ch.Consume(k.queue, k.tag, false, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			return err
		}
		k.ch, k.deliveries = ch, deliveries
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

// consumer is one member's consumption of a queue.
type consumer struct {
	c          *Conn
	name       string // the destination: "S1", ..., "done"
	queue      string
	tag        string
	h          transport.Handler
	ch         *rmq.Channel
	deliveries <-chan rmq.Delivery
	closes     chan *rmq.Error

	inHand atomic.Int32 // a delivery taken from the library, not yet handed over
	halt   atomic.Bool  // hand nothing more to the handler
	ended  atomic.Bool  // drained, stopped or closed by us: the end is no fault
	done   chan struct{}
	once   sync.Once
	result error
}

// loop hands the deliveries to the handler until the consumer is
// cancelled or its channel closes.
func (k *consumer) loop() {
	defer k.c.loops.Done()
	defer close(k.done)
	rs := k.c.redeliveries
	for d := range k.deliveries {
		if k.halt.Load() {
			continue // stopped: the broker takes it back when the channel closes
		}
		k.inHand.Store(1)
		attempt := 1
		if d.Redelivered {
			attempt = 2
		}
		if n, ok := deliveryCount(d.Headers); ok {
			attempt = max(attempt, n+1)
		}
		if attempt > 1 && rs != nil {
			rs.Redelivered(k.name)
		}
		k.c.busy.Add(1)
		s := &settler{k: k, tag: d.DeliveryTag}
		k.inHand.Store(0)
		k.h(transport.Delivery{Data: d.Body, Attempt: attempt, Settler: s})
	}
	if k.ended.Load() || k.c.closing.Load() || k.c.conn.IsClosed() {
		return // ours, or the connection's loss, which watch reports
	}
	reason := "the broker cancelled the consumer (queue deleted?)"
	select {
	case e, ok := <-k.closes:
		if ok && e != nil {
			reason = "channel closed: " + e.Error()
		}
	default:
	}
	k.c.faults.Fault(fmt.Errorf("transport amqp: consumer %s of queue %s on %s stopped: %s", k.tag, k.queue, k.c.server, reason))
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
// 1). Deliveries the library holds beyond it (at most the prefetch, Limit,
// less those unsettled) are not seen.
func (k *consumer) Pending() int { return int(k.inHand.Load()) }

// Drain implements transport.Consumer: it cancels the consumer at the
// broker (basic.cancel), hands the handler what had already arrived, and
// returns once the handler has returned for the last time. The channel
// stays open, so the deliveries handed out can still be settled; it
// closes with the Conn.
func (k *consumer) Drain(timeout time.Duration) error { return k.end(false, timeout) }

// Stop implements transport.Consumer: it closes the consumer's channel at
// once; the broker takes back every delivery the consumer held
// unacknowledged, and delivers it again, to this member or another. Stop
// returns once the handler is no longer running, within
// transport.CloseTimeout; settling a delivery after Stop is an error.
func (k *consumer) Stop() error { return k.end(true, transport.CloseTimeout) }

func (k *consumer) end(halt bool, timeout time.Duration) error {
	k.once.Do(func() {
		k.ended.Store(true)
		deadline := time.Now().Add(max(timeout, time.Millisecond))
		if halt {
			k.halt.Store(true)
			k.c.goroutine(func() { _ = k.ch.Close() })
		} else {
			// On cancel-ok the library closes the deliveries once it has
			// handed over what arrived before.
			k.c.goroutine(func() { _ = k.ch.Cancel(k.tag, false) })
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
	k    *consumer
	tag  uint64
	done atomic.Bool
}

// How a delivery is settled.
type settlement int

const (
	ack settlement = iota
	reject
	release
)

var settlementNames = [...]string{ack: "ack", reject: "reject", release: "release"}

func (s *settler) settle(how settlement) error {
	if !s.done.CompareAndSwap(false, true) {
		return fmt.Errorf("transport amqp: %s delivery %d of %s: already settled", settlementNames[how], s.tag, s.k.queue)
	}
	var err error
	switch how {
	case ack:
		err = s.k.ch.Ack(s.tag, false)
	case reject:
		err = s.k.ch.Nack(s.tag, false, false)
	case release:
		err = s.k.ch.Nack(s.tag, false, true)
	}
	s.k.c.unbusy()
	if err != nil {
		return fmt.Errorf("transport amqp: %s delivery %d of %s on %s: %w", settlementNames[how], s.tag, s.k.queue, s.k.c.server, err)
	}
	return nil
}

// Ack implements transport.Settler: basic.ack.
func (s *settler) Ack() error { return s.settle(ack) }

// Reject implements transport.Settler: basic.nack without requeue, so the
// broker drops the message (RabbitMQ keeps no reason).
func (s *settler) Reject(error) error { return s.settle(reject) }

// Release implements transport.Settler: basic.nack with requeue, for
// another delivery now.
func (s *settler) Release() error { return s.settle(release) }
