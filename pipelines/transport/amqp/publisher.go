package amqp

import (
	"context"
	"fmt"
	"sync"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// confirmBuffer is the capacity of a publisher's confirm channel: the
// library hands it confirms on the connection's reader goroutine.
const confirmBuffer = 128

// Publisher implements transport.Conn: a channel of its own in confirm
// mode, for destination to of run. Its Publish is safe for concurrent use;
// concurrent publishes wait for their confirms together (pipelined), not
// one after another.
func (c *Conn) Publisher(run transport.Run, to int) (transport.Publisher, error) {
	if err := checkDest(run, to); err != nil {
		return nil, err
	}
	p := &publisher{
		c:       c,
		queue:   QueueName(run, to),
		suffix:  "." + destName(run, to),
		waiting: make(map[uint64]*waiter),
	}
	p.pool.New = func() any { return &waiter{done: make(chan error, 1)} }
	returns := make(chan rmq.Return) // unbuffered: see loop
	confirms := make(chan rmq.Confirmation, confirmBuffer)
	closes := make(chan *rmq.Error, 1)
	err := c.bounded(context.Background(), "open a publisher channel to "+p.queue, func() error {
		ch, err := c.conn.Channel()
		if err != nil {
			return err
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return fmt.Errorf("confirm mode: %w", err)
		}
		ch.NotifyClose(closes)
		ch.NotifyReturn(returns)
		ch.NotifyPublish(confirms)
		p.ch = ch
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !c.goroutine(func() { p.loop(returns, confirms, closes) }) {
		_ = p.ch.Close()
		return nil, fmt.Errorf("transport amqp: publisher to %s on %s: %w", p.queue, c.server, rmq.ErrClosed)
	}
	return p, nil
}

// publisher publishes to one queue on a channel of its own.
type publisher struct {
	c      *Conn
	ch     *rmq.Channel
	queue  string
	suffix string // "." + the destination's name, for MessageId
	pool   sync.Pool

	mu      sync.Mutex
	waiting map[uint64]*waiter // by delivery tag: published, not confirmed
	err     error              // the channel closed: every Publish fails with it
}

// waiter is one publish waiting for its confirm.
type waiter struct {
	id       string      // the message's MessageId
	returned string      // why the broker returned it; under publisher.mu
	done     chan error  // its outcome
	timer    *time.Timer // bounds the wait; reused
}

// Publish sends m persistent and mandatory to the publisher's queue and
// returns once the broker has confirmed it: nil on basic.ack, an error if
// the broker returned it (no such queue), nacked it, or the channel
// closed, or when ctx ends or PublishTimeout passes first. Its MessageId
// is m.Key (or the envelope's correlation ID when Key is empty) + "." +
// the destination.
func (p *publisher) Publish(ctx context.Context, m transport.Outgoing) error {
	key := m.Key
	if key == "" {
		key, _ = js.EnvelopeID(m.Data)
	}
	id := ""
	if key != "" {
		id = key + p.suffix
	}
	w := p.pool.Get().(*waiter)
	w.id, w.returned = id, ""
	msg := rmq.Publishing{DeliveryMode: rmq.Persistent, MessageId: id, Body: m.Data}

	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		p.pool.Put(w)
		return err
	}
	// The delivery tag the broker will confirm: tags count the channel's
	// publishes, which the lock keeps in this order.
	tag := p.ch.GetNextPublishSeqNo()
	p.waiting[tag] = w
	p.c.busy.Add(1)
	err := p.ch.PublishWithContext(ctx, "", p.queue, true, false, msg)
	if err != nil {
		delete(p.waiting, tag)
		p.mu.Unlock()
		p.c.unbusy()
		p.pool.Put(w)
		return fmt.Errorf("transport amqp: publish to %s on %s: %w", p.queue, p.c.server, err)
	}
	p.mu.Unlock()
	defer p.c.unbusy()

	if w.timer == nil {
		w.timer = time.NewTimer(p.c.publishTimeout)
	} else {
		w.timer.Reset(p.c.publishTimeout)
	}
	select {
	case err := <-w.done:
		w.timer.Stop()
		p.pool.Put(w)
		return err
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-w.timer.C:
		err = fmt.Errorf("not confirmed within %v", p.c.publishTimeout)
	}
	w.timer.Stop()
	p.mu.Lock()
	_, mine := p.waiting[tag]
	delete(p.waiting, tag)
	p.mu.Unlock()
	if mine {
		p.pool.Put(w) // nothing will send on done any more
	}
	return fmt.Errorf("transport amqp: publish to %s on %s: %w", p.queue, p.c.server, err)
}

// loop takes the channel's returns and confirms until it closes.
//
// The library hands both over on the connection's reader goroutine, in
// the order the broker sent them, and the broker sends a message's return
// before its confirm. returns is unbuffered, so a return is taken here,
// and marked on its waiter, before the library goes on to hand over the
// confirm after it: a confirm always finds its message's return.
func (p *publisher) loop(returns <-chan rmq.Return, confirms <-chan rmq.Confirmation, closes <-chan *rmq.Error) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.returnedMsg(r)
		case cf, ok := <-confirms:
			if !ok {
				p.fail(closes)
				return
			}
			p.confirmed(cf)
		}
	}
}

// returnedMsg marks the oldest waiting publish with r's MessageId as
// returned (several publishes with one ID all go to the same queue).
func (p *publisher) returnedMsg(r rmq.Return) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var oldest uint64
	var w *waiter
	for tag, x := range p.waiting {
		if x.id == r.MessageId && x.returned == "" && (w == nil || tag < oldest) {
			oldest, w = tag, x
		}
	}
	if w != nil {
		w.returned = fmt.Sprintf("%d %s", r.ReplyCode, r.ReplyText)
	}
}

// confirmed ends the publish the broker confirmed.
func (p *publisher) confirmed(cf rmq.Confirmation) {
	p.mu.Lock()
	w := p.waiting[cf.DeliveryTag]
	delete(p.waiting, cf.DeliveryTag)
	p.mu.Unlock()
	if w == nil {
		return // its Publish gave up
	}
	var err error
	switch {
	case !cf.Ack:
		err = fmt.Errorf("transport amqp: publish to %s on %s: the broker refused the message (nack)", p.queue, p.c.server)
	case w.returned != "":
		err = fmt.Errorf("transport amqp: publish to %s on %s: returned unroutable (%s): no queue %s; is the run set up?", p.queue, p.c.server, w.returned, p.queue)
	}
	w.done <- err
}

// fail ends every waiting publish, and every later one, with the reason
// the channel closed.
func (p *publisher) fail(closes <-chan *rmq.Error) {
	reason := error(rmq.ErrClosed)
	if e, ok := <-closes; ok && e != nil { // closed by now: does not block
		reason = e
	}
	err := fmt.Errorf("transport amqp: publish to %s on %s: channel closed: %w", p.queue, p.c.server, reason)
	p.mu.Lock()
	p.err = err
	ws := p.waiting
	p.waiting = make(map[uint64]*waiter)
	p.mu.Unlock()
	for _, w := range ws {
		w.done <- err
	}
}
