// Package core is the core NATS transport: a stage is a subject
// (bus.Subjects.Stage) and, when its members are shared, a queue group
// (bus.Subjects.Queue); the server pushes each message to one member, busy
// or not; nothing is acknowledged and nothing is redelivered
// (at-most-once). What a member held when it died is lost.
//
// It is natspipe's behaviour before the transport seam, unchanged: the
// client-side pending limits are lifted (bus.Unlimit), and slow-consumer
// errors reach the run as faults through the connection bus.Connect made.
// A disconnect does too, when the connection is not back within
// Transport.Reconnect; a server restart is survived: every connection
// reconnects and resubscribes, and the messages the server held are lost,
// which the run reports (lost), as for any other loss.
package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
)

// Name is the core transport's key.
const Name = "core"

// DefaultReconnect is how long a connection may be away (reconnecting)
// before the run fails on it.
const DefaultReconnect = 10 * time.Second

// Transport is the core NATS transport. The zero value is ready to use.
type Transport struct {
	// Reconnect: see DefaultReconnect; 0: default.
	Reconnect time.Duration
}

// Name implements transport.Transport.
func (Transport) Name() string { return Name }

// AtLeastOnce implements transport.Transport: core NATS is at-most-once.
func (Transport) AtLeastOnce() bool { return false }

// Open implements transport.Transport: the Conn uses env.NC.
func (t Transport) Open(_ context.Context, env transport.Env) (transport.Conn, error) {
	if env.NC == nil {
		return nil, errors.New("core transport: no NATS connection")
	}
	within := t.Reconnect
	if within <= 0 {
		within = DefaultReconnect
	}
	server := natsconn.Mask(env.NATS.ServerURL())
	if u := env.NC.ConnectedUrl(); u != "" {
		server = natsconn.Mask(u)
	}
	bus.TolerateDisconnects(env.NC, env.Faults, within, "core transport on "+server)
	return &Conn{nc: env.NC}, nil
}

// Conn is a core NATS transport.Conn on one NATS connection.
type Conn struct {
	nc   *nats.Conn
	mu   sync.Mutex
	subs []*nats.Subscription
}

// Setup implements transport.Conn: core NATS needs nothing set up.
func (c *Conn) Setup(context.Context, transport.Run) error { return nil }

// Teardown implements transport.Conn: nothing to remove.
func (c *Conn) Teardown(context.Context, transport.Run) error { return nil }

// Publisher implements transport.Conn.
func (c *Conn) Publisher(run transport.Run, to int) (transport.Publisher, error) {
	if to < 0 || to > run.Stages {
		return nil, fmt.Errorf("core transport: destination %d out of range 0..%d", to, run.Stages)
	}
	return &publisher{nc: c.nc, subject: run.Subject(to)}, nil
}

type publisher struct {
	nc      *nats.Conn
	subject string
}

// Publish writes m to the connection: at-most-once, it waits for nothing.
func (p *publisher) Publish(_ context.Context, m transport.Outgoing) error {
	if err := p.nc.Publish(p.subject, m.Data); err != nil {
		return fmt.Errorf("publish to %s: %w", p.subject, err)
	}
	return nil
}

// Consume implements transport.Conn: a subscription to the destination's
// subject, in the stage's queue group when opts.Shared, with its pending
// limits lifted. opts.Limit does not bound what the server pushes.
func (c *Conn) Consume(ctx context.Context, run transport.Run, stage int, opts transport.ConsumeOptions, h transport.Handler) (transport.Consumer, error) {
	if stage < 0 || stage > run.Stages {
		return nil, fmt.Errorf("core transport: stage %d out of range 0..%d", stage, run.Stages)
	}
	queue := ""
	if opts.Shared && stage < run.Stages {
		queue = run.Subjects.Queue(stage)
	}
	sub, err := bus.Subscribe(c.nc, run.Subject(stage), queue, func(m *nats.Msg) {
		h(transport.Delivery{Data: m.Data, Attempt: 1})
	})
	if err != nil {
		return nil, err
	}
	timeout := bus.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := c.nc.FlushTimeout(timeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("register subscription %s: %w", sub.Subject, err)
	}
	c.mu.Lock()
	c.subs = append(c.subs, sub)
	c.mu.Unlock()
	return consumer{sub}, nil
}

// Drain implements transport.Conn: it drains every subscription Consume
// made and flushes the connection, within transport.CloseTimeout. As
// bus.Drain, a connection that is not connected (reconnecting, or lost
// while draining) has nothing it can drain: its subscriptions are dropped
// at once, and that is not an error, since the loss was already reported
// to the connection's Faulter.
func (c *Conn) Drain() error {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	deadline := time.Now().Add(transport.CloseTimeout)
	var errs []error
	for _, s := range subs {
		if !c.nc.IsConnected() {
			_ = s.Unsubscribe()
			continue
		}
		if err := drainWhileConnected(c.nc, s, time.Until(deadline)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.nc.IsConnected() {
		if err := c.nc.FlushTimeout(max(time.Until(deadline), time.Millisecond)); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close implements transport.Conn: it unsubscribes everything Consume made.
func (c *Conn) Close() error {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	return nil
}

type consumer struct{ sub *nats.Subscription }

// Pending is the number of messages received and not yet handled.
func (c consumer) Pending() int {
	n, _, err := c.sub.Pending()
	if err != nil {
		return 0
	}
	return n
}

// Drain implements transport.Consumer.
func (c consumer) Drain(timeout time.Duration) error { return drain(c.sub, timeout) }

// Stop implements transport.Consumer.
func (c consumer) Stop() error {
	err := c.sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		return nil
	}
	return err
}

// drainWhileConnected is drain, given up without an error when nc loses
// its connection meanwhile.
func drainWhileConnected(nc *nats.Conn, sub *nats.Subscription, timeout time.Duration) error {
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) || !nc.IsConnected() {
			return nil
		}
		return fmt.Errorf("drain %s: %w", sub.Subject, err)
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	t := time.NewTimer(max(timeout, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-closed:
			return nil
		case <-poll.C:
			if !nc.IsConnected() {
				_ = sub.Unsubscribe()
				return nil
			}
		case <-t.C:
			return fmt.Errorf("drain %s: not drained after %v", sub.Subject, timeout)
		}
	}
}

// drain drains sub and waits until its last callback has returned.
func drain(sub *nats.Subscription, timeout time.Duration) error {
	if !sub.IsValid() {
		return nil
	}
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			return nil
		}
		return fmt.Errorf("drain %s: %w", sub.Subject, err)
	}
	t := time.NewTimer(max(timeout, time.Millisecond))
	defer t.Stop()
	select {
	case <-closed:
		return nil
	case <-t.C:
		return fmt.Errorf("drain %s: not drained after %v", sub.Subject, timeout)
	}
}
