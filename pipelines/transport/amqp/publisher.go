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
//
// When m is the forward of a delivery of this Conn whose stage work has
// ended (Settler.WorkEnded, registered under that MessageId), Publish
// returns once the message is sent, and its confirm is awaited in the
// background, within PublishTimeout and until the Conn closes: the
// delivery's Ack is held back until the confirm has come, and if the
// publish fails the Ack becomes a requeue (the message is delivered
// again) and the failure goes to the Conn's faults. So the router's
// executor starts its next message while the forward is confirmed, and a
// message is still acknowledged only after its successor is stored.
func (p *publisher) Publish(ctx context.Context, m transport.Outgoing) error {
	key := m.Key
	if key == "" {
		key, _ = js.EnvelopeID(m.Data)
	}
	id := ""
	var s *settler
	data := m.Data
	if key != "" {
		id = key + p.suffix
		if s = p.c.forwarding(id); s != nil {
			data = append([]byte(nil), m.Data...) // the caller reuses its buffer
		}
	}
	tag, w, err := p.send(ctx, id, data)
	if err != nil {
		return err // s, if any, settles as it is told
	}
	if s == nil {
		defer p.c.unbusy()
		return p.await(ctx, tag, w)
	}
	s.inBackground()
	background := func() {
		defer p.c.unbusy()
		s.forwarded(p.await(context.Background(), tag, w))
	}
	if !p.c.goroutine(background) {
		background() // closing: the confirm fails at once
	}
	return nil
}

// send publishes data with MessageId id and registers the waiter of its
// confirm, under the confirm's delivery tag. The Conn is kept busy until
// the caller has awaited the confirm (await) and called unbusy; on an
// error nothing is registered or kept busy.
func (p *publisher) send(ctx context.Context, id string, data []byte) (uint64, *waiter, error) {
	w := p.pool.Get().(*waiter)
	w.id, w.returned = id, ""
	msg := rmq.Publishing{DeliveryMode: rmq.Persistent, MessageId: id, Body: data}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		p.pool.Put(w)
		return 0, nil, p.err
	}
	// The delivery tag the broker will confirm: tags count the channel's
	// publishes, which the lock keeps in this order.
	tag := p.ch.GetNextPublishSeqNo()
	p.waiting[tag] = w
	p.c.busy.Add(1)
	if err := p.ch.PublishWithContext(ctx, "", p.queue, true, false, msg); err != nil {
		delete(p.waiting, tag)
		p.c.unbusy()
		p.pool.Put(w)
		return 0, nil, fmt.Errorf("transport amqp: publish to %s on %s: %w", p.queue, p.c.server, err)
	}
	return tag, w, nil
}

// await waits for the confirm of the publish with delivery tag tag, within
// ctx and PublishTimeout, until the Conn closes.
func (p *publisher) await(ctx context.Context, tag uint64, w *waiter) error {
	if w.timer == nil {
		w.timer = time.NewTimer(p.c.publishTimeout)
	} else {
		w.timer.Reset(p.c.publishTimeout)
	}
	var err error
	select {
	case err := <-w.done:
		w.timer.Stop()
		p.pool.Put(w)
		return err
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-w.timer.C:
		err = fmt.Errorf("not confirmed within %v", p.c.publishTimeout)
	case <-p.c.stopping:
		err = fmt.Errorf("not confirmed: %w", rmq.ErrClosed)
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
	if g := p.c.confirmGate; g != nil {
		select {
		case <-g:
		case <-p.c.stopping:
		}
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
