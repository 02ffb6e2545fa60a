// Package amqp is the RabbitMQ transport (AMQP 0-9-1, with
// github.com/rabbitmq/amqp091-go): each destination of a run, stages
// S1..SN and the sink's done, is one durable queue named after the
// destination's subject (transport.Run.Subject: "<prefix>.s1", ...,
// "<prefix>.done"), a classic queue by default or a quorum queue
// (Transport.Quorum). Messages are published to the default exchange with
// the queue's name as routing key; a stage's members are consumers of its
// queue, each on a channel of its own.
//
// # What it promises
//
// At-least-once. A message is published persistent, with mandatory set, on
// a channel in confirm mode, and Publish returns only once the broker has
// confirmed it (basic.ack): stored in its queue. A message no queue takes
// (the run was not set up, or was torn down) comes back (basic.return) and
// fails its Publish; a nack or the end of ctx (or Transport.PublishTimeout)
// fails it too. A delivery is acknowledged only once its forward is
// confirmed, so a member that dies in between leaves the message
// unacknowledged, and RabbitMQ delivers it again (to another member) when
// the member's channel or connection closes. When the router tells the
// delivery its stage work has ended (the settler's WorkEnded, before it
// publishes the forward on the same Conn), the forward's Publish returns
// once sent and its confirm is awaited in the background: the delivery's
// Ack is held until the confirm, and turned into a requeue (and a fault of
// the run) if the forward fails. So a member's executor starts its next
// message while the forward is confirmed; Drain waits for those confirms. RabbitMQ has no publish-side
// deduplication: the second forward of such a message is a duplicate
// downstream, which the sink recognises by its correlation ID, keeps once
// and counts as a duplicate. Each message carries MessageId = correlation
// ID + "." + destination ("S2", ..., "done"), for inspection.
//
// # Dispatch
//
// A member's channel has prefetch (basic.qos) = its ConsumeOptions.Limit,
// the executors it works with: the broker hands it at most that many
// unacknowledged messages, and a message goes to a member with a free slot,
// never into a busy member's backlog while another could start it
// (work-conserving). Limit 0 (the sink) is unlimited prefetch. Deliveries
// that come back to a member carry the redelivered flag (and, on quorum
// queues, x-delivery-count), so Delivery.Attempt is 2 or more for them; they
// are counted by destination when the Conn's faults are a
// pipelines.RedeliverySink.
//
// A slot frees only when the broker has the ack, which waits for the
// forward's confirm: a member of several would idle that long (about 2 ms
// under a loaded P4) per message. So such a member also keeps a lookahead
// consumer, as JetStream's lookahead request: a second consumer of the
// queue on a channel of its own with prefetch 1 and a lower consumer
// priority (x-priority 0; main consumers have 10). RabbitMQ gives a
// lower-priority consumer a message only while every higher-priority one
// is blocked, so a message reaches a lookahead consumer only when every
// member's main consumer is full (all busy, or holding acks for their
// confirms), and then waits behind its member's work, to be started the
// moment that work ends. What it costs: that message may wait there when
// another member frees first (the queue had no other message for it), and
// while a member works on it, its main consumer may be free again (its
// last delivery acked), so a new message can go there while another member
// is idle. A stage's only member, with prefetch Limit+1, needs no lookahead
// consumer. Transport.Strict turns lookahead off. Classic and quorum
// queues both honour consumer priorities.
//
// # What a hop costs
//
// Two confirms' worth of waiting that the next stage sees: the forward's
// publish confirm (RabbitMQ confirms a persistent message once it has
// written and fsynced it) and, since a member's slot frees only when the
// broker has its ack, the ack travelling to the broker and the next
// delivery coming back (the ack itself has no reply). Measured on the
// project's 2-core VM with RabbitMQ 3.10 (BenchmarkHop: publish, deliver
// to a member of Limit 1, ack): about 0.45 ms per hop with the node's data
// on tmpfs, classic or quorum, and 1.1 to 1.3 ms on disk, almost all of it
// the confirm; a member with prefetch 1 idles that long between two
// messages (its next delivery comes after the ack, which waits for the
// confirm). A stage's only member, with prefetch Limit+1, has its next
// message in hand and, with the confirm in the background, starts it at
// once. Concurrent publishes on one Publisher wait for their confirms
// together: 16 publishing goroutines reach about 0.15 ms per message.
//
// # Connections
//
// A Conn is one AMQP connection, dialled with a bounded timeout
// (Transport.DialTimeout) and named to the broker after the process
// (transport.Env.Name). The URL is Transport.URL or, when that is empty,
// RABBITMQ_URL; it is printed only masked (Mask). Losing the connection
// after Open is a fault of the run (transport.Env.Faults); closing it is
// not.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// Name is the RabbitMQ transport's key.
const Name = "amqp"

// EnvURL is the variable that holds the broker's URL when Transport.URL is
// empty, e.g. amqp://guest:guest@127.0.0.1:5672/.
const EnvURL = "RABBITMQ_URL"

// Defaults of Transport's durations.
const (
	// DefaultDialTimeout bounds connecting: the TCP connection and the
	// AMQP handshake (authentication, virtual host).
	DefaultDialTimeout = 5 * time.Second
	// DefaultPublishTimeout bounds one Publish: sending the message and
	// the broker's confirm.
	DefaultPublishTimeout = 30 * time.Second
	// DefaultAPITimeout bounds one management call whose context has no
	// deadline: opening a channel, declaring or deleting a queue,
	// starting or cancelling a consumer.
	DefaultAPITimeout = 5 * time.Second
	// Heartbeat is the AMQP heartbeat interval asked for: a dead peer is
	// noticed within about two of them.
	Heartbeat = 10 * time.Second
)

// maxPrefetch is the largest prefetch count basic.qos carries.
const maxPrefetch = 1<<16 - 1

// Transport is the RabbitMQ transport. The zero value reads RABBITMQ_URL
// and uses classic queues and the default timeouts.
type Transport struct {
	// URL is the broker's AMQP URL (amqp://user:password@host:port/vhost);
	// "": the value of RABBITMQ_URL when Open is called.
	URL string
	// Quorum makes the run's queues quorum queues (x-queue-type quorum,
	// replicated by Raft, x-delivery-count on redeliveries) instead of
	// classic durable queues.
	Quorum bool
	// DialTimeout: see DefaultDialTimeout; 0: default.
	DialTimeout time.Duration
	// PublishTimeout: see DefaultPublishTimeout; 0: default.
	PublishTimeout time.Duration
	// Strict gives a member of several only its main consumer, no
	// lookahead consumer (see Dispatch in the package doc): a member
	// never holds a message it is not working on, and each message costs
	// its member the forward's confirm and an ack/deliver round trip of
	// idle time.
	Strict bool
}

// Name implements transport.Transport.
func (Transport) Name() string { return Name }

// AtLeastOnce implements transport.Transport: a message whose member died
// before acknowledging it is delivered again.
func (Transport) AtLeastOnce() bool { return true }

// Environ is the environment a process needs to open the same transport:
// RABBITMQ_URL=URL when URL is set, nil otherwise (the process then reads
// the RABBITMQ_URL it inherits). It goes into an environment, never onto a
// command line: the URL may hold a password.
func (t Transport) Environ() []string {
	if t.URL == "" {
		return nil
	}
	return []string{EnvURL + "=" + t.URL}
}

// url is the URL Open dials.
func (t Transport) url() (string, error) {
	if t.URL != "" {
		return t.URL, nil
	}
	if u := os.Getenv(EnvURL); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("transport amqp: no RabbitMQ URL: set %s (e.g. amqp://guest:guest@127.0.0.1:5672/)", EnvURL)
}

// Open implements transport.Transport: it dials the broker (see Dial)
// within DialTimeout and ctx, naming the connection env.Name. env.NC is
// not used. Losing the connection later is reported to env.Faults.
func (t Transport) Open(ctx context.Context, env transport.Env) (transport.Conn, error) {
	u, err := t.url()
	if err != nil {
		return nil, err
	}
	conn, err := Dial(ctx, u, env.Name, t.DialTimeout)
	if err != nil {
		return nil, err
	}
	faults := env.Faults
	if faults == nil {
		faults = discard{}
	}
	c := &Conn{
		conn:           conn,
		server:         Mask(u),
		name:           env.Name,
		quorum:         t.Quorum,
		strict:         t.Strict,
		publishTimeout: t.PublishTimeout,
		faults:         faults,
		idle:           make(chan struct{}, 1),
		stopping:       make(chan struct{}),
	}
	if c.publishTimeout <= 0 {
		c.publishTimeout = DefaultPublishTimeout
	}
	c.redeliveries, _ = faults.(pipelines.RedeliverySink)
	closes := conn.NotifyClose(make(chan *rmq.Error, 1))
	c.loops.Add(1)
	go c.watch(closes)
	return c, nil
}

type discard struct{}

func (discard) Fault(error) {}

// Dial connects to the broker at rawURL as name (the connection_name the
// broker shows), within timeout (0: DefaultDialTimeout) and ctx: the TCP
// connection and the AMQP handshake both. An error names the URL masked,
// says why (refused, no answer, credentials refused, no access to the
// virtual host) and holds no password.
func Dial(ctx context.Context, rawURL, name string, timeout time.Duration) (*rmq.Connection, error) {
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	masked := Mask(rawURL)
	if _, err := rmq.ParseURI(rawURL); err != nil {
		return nil, fmt.Errorf("transport amqp: URL %s: %w", masked, scrub(err, rawURL))
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	var mu sync.Mutex
	var raw net.Conn
	props := rmq.NewConnectionProperties()
	if name != "" {
		props.SetClientConnectionName(name)
	}
	cfg := rmq.Config{
		Heartbeat:  Heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Deadline: deadline}
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake too: the library clears the deadline once the
			// connection is open.
			if err := nc.SetDeadline(deadline); err != nil {
				_ = nc.Close()
				return nil, err
			}
			mu.Lock()
			raw = nc
			mu.Unlock()
			return nc, nil
		},
	}
	// ctx ends the handshake as the deadline does.
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			_ = raw.SetDeadline(time.Unix(1, 0))
		}
	})
	conn, err := rmq.DialConfig(rawURL, cfg)
	stop()
	if err != nil {
		mu.Lock()
		if raw != nil {
			_ = raw.Close() // the library's reader ends with it
		}
		mu.Unlock()
		return nil, fmt.Errorf("transport amqp: connect to %s as %q: %s: %w", masked, name, dialReason(ctx, err, timeout), scrub(err, rawURL))
	}
	return conn, nil
}

// dialReason says in words why a dial failed.
func dialReason(ctx context.Context, err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, rmq.ErrCredentials):
		return "the broker refused the user name or password"
	case errors.Is(err, rmq.ErrVhost):
		return "the user has no access to the virtual host"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (no broker listening there)"
	case ctx.Err() != nil:
		return "cancelled"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("no answer within %v", timeout)
	}
	return "failed"
}

// Mask returns an AMQP URL (or a comma-separated list of them) with the
// password of its user info replaced by natsconn.Masked, for errors and
// output: amqp://guest:***@host:5672/.
func Mask(rawURL string) string { return natsconn.Mask(rawURL) }

// scrub returns err with every occurrence of rawURL's password (as written
// and percent-decoded) and of rawURL itself in its text masked; errors.Is
// and errors.As still see err.
func scrub(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	var secrets []string
	if rawURL != Mask(rawURL) {
		secrets = append(secrets, rawURL)
	}
	if pw := password(rawURL); pw != "" {
		secrets = append(secrets, pw)
		if dec, derr := url.PathUnescape(pw); derr == nil && dec != pw {
			secrets = append(secrets, dec)
		}
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		repl := natsconn.Masked
		if s == rawURL {
			repl = Mask(rawURL)
		}
		clean = strings.ReplaceAll(clean, s, repl)
	}
	if clean == msg {
		return err
	}
	return scrubbed{msg: clean, err: err}
}

// password is the password in rawURL's user info, as written; "" if none.
func password(rawURL string) string {
	rest := rawURL
	if j := strings.Index(rest, "://"); j >= 0 {
		rest = rest[j+3:]
	}
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		// The user info ends at the last @ before the path; a password
		// may hold / only percent-encoded.
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			rest = rest[:at]
		} else if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = rest[:at]
		} else {
			return ""
		}
	} else if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[:at]
	} else {
		return ""
	}
	if k := strings.IndexByte(rest, ':'); k >= 0 {
		return rest[k+1:]
	}
	return ""
}

// scrubbed is an error whose text has secrets masked.
type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }

// QueueName is the queue of destination i of run: its subject.
func QueueName(run transport.Run, i int) string { return run.Subject(i) }

// Conn is a RabbitMQ transport.Conn: one AMQP connection, with a channel
// per consumer and per publisher.
type Conn struct {
	conn           *rmq.Connection
	server         string // masked URL
	name           string
	quorum         bool
	strict         bool // no lookahead consumers
	publishTimeout time.Duration
	faults         bus.Faulter
	redeliveries   pipelines.RedeliverySink // nil when faults is not one

	closing atomic.Bool // we close the connection: its loss is no fault
	// busy counts deliveries handed out and not settled, and publishes
	// waiting for their confirms; Drain waits for it to reach 0.
	busy     atomic.Int64
	draining atomic.Bool
	idle     chan struct{} // signalled when busy reaches 0 while draining
	stopping chan struct{} // closed when the Conn closes: confirms awaited give up

	// confirmGate, when not nil, holds every confirm of the Conn's
	// publishers back until it is closed (tests only: set before the
	// first Publisher).
	confirmGate <-chan struct{}

	mu        sync.Mutex
	closed    bool // under mu: no goroutine starts any more
	consumers []*consumer
	// forwards are the deliveries whose stage work has ended, by the
	// MessageId their forward will carry (see settler.WorkEnded).
	forwards  transport.Forwards[*settler]
	loops     sync.WaitGroup // every goroutine of the Conn
	closeOnce sync.Once
	closeErr  error
}

// watch reports the loss of the connection as a fault, unless the Conn
// closed it.
func (c *Conn) watch(closes <-chan *rmq.Error) {
	defer c.loops.Done()
	err, ok := <-closes
	if ok && err != nil && !c.closing.Load() {
		c.faults.Fault(fmt.Errorf("transport amqp: connection %q to %s lost: %w", c.name, c.server, err))
	}
}

// goroutine runs f on a goroutine of the Conn, unless the Conn is closed.
func (c *Conn) goroutine(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		f()
	}()
	return true
}

// bounded runs the broker call f and waits for it within ctx, or
// DefaultAPITimeout when ctx has no deadline. Past that it returns an
// error; f goes on until the broker answers or the connection closes.
func (c *Conn) bounded(ctx context.Context, what string, f func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultAPITimeout)
		defer cancel()
	}
	done := make(chan error, 1)
	if !c.goroutine(func() { done <- f() }) {
		return fmt.Errorf("transport amqp: %s on %s: %w", what, c.server, rmq.ErrClosed)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("transport amqp: %s on %s: %w", what, c.server, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("transport amqp: %s on %s: no answer: %w", what, c.server, context.Cause(ctx))
	}
}

// unbusy ends one delivery's or publish's hold on Drain.
func (c *Conn) unbusy() {
	if c.busy.Add(-1) == 0 && c.draining.Load() {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
}

// queueArgs are the arguments every queue of the run is declared with.
func (c *Conn) queueArgs() rmq.Table {
	if c.quorum {
		return rmq.Table{rmq.QueueTypeArg: rmq.QueueTypeQuorum}
	}
	return nil
}

// withChannel runs f on a channel opened for it, within ctx (see bounded),
// and closes the channel.
func (c *Conn) withChannel(ctx context.Context, what string, f func(ch *rmq.Channel) error) error {
	return c.bounded(ctx, what, func() error {
		ch, err := c.conn.Channel()
		if err != nil {
			return fmt.Errorf("open a channel: %w", err)
		}
		defer func() { _ = ch.Close() }()
		return f(ch)
	})
}

// Setup implements transport.Conn: it declares one durable queue per stage
// and for the sink (classic, or quorum with Transport.Quorum). Declaring
// queues that exist with the same arguments is not an error; with other
// arguments (a classic queue where a quorum one is asked for) it is.
func (c *Conn) Setup(ctx context.Context, run transport.Run) error {
	args := c.queueArgs()
	return c.withChannel(ctx, "set up run "+run.Subjects.Prefix, func(ch *rmq.Channel) error {
		for i := 0; i <= run.Stages; i++ {
			q := QueueName(run, i)
			if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
				return fmt.Errorf("declare queue %s: %w", q, err)
			}
		}
		return nil
	})
}

// Teardown implements transport.Conn: it deletes the run's queues, with
// whatever they still hold. A queue already gone is not an error.
func (c *Conn) Teardown(ctx context.Context, run transport.Run) error {
	return c.bounded(ctx, "tear down run "+run.Subjects.Prefix, func() error {
		var ch *rmq.Channel
		defer func() {
			if ch != nil {
				_ = ch.Close()
			}
		}()
		for i := 0; i <= run.Stages; i++ {
			q := QueueName(run, i)
			if ch == nil || ch.IsClosed() {
				var err error
				if ch, err = c.conn.Channel(); err != nil {
					return fmt.Errorf("open a channel: %w", err)
				}
			}
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				var ae *rmq.Error
				if errors.As(err, &ae) && ae.Code == rmq.NotFound {
					continue // gone; the channel is closed, the next opens another
				}
				return fmt.Errorf("delete queue %s: %w", q, err)
			}
		}
		return nil
	})
}

// Drain implements transport.Conn: it drains every consumer of c, waits
// until every delivery they handed out is settled and every publish
// confirmed, and closes the connection, within transport.CloseTimeout.
func (c *Conn) Drain() error {
	deadline := time.Now().Add(transport.CloseTimeout)
	c.mu.Lock()
	cs := append([]*consumer(nil), c.consumers...)
	c.mu.Unlock()
	var errs []error
	for _, k := range cs {
		if err := k.Drain(max(time.Until(deadline), time.Millisecond)); err != nil {
			errs = append(errs, err)
		}
	}
	c.draining.Store(true)
	if !c.waitIdle(deadline) {
		errs = append(errs, fmt.Errorf("transport amqp: %d deliveries unsettled or publishes unconfirmed on %s after %v", c.busy.Load(), c.server, transport.CloseTimeout))
	}
	if err := c.close(deadline); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitIdle waits until nothing holds the Conn busy, or deadline: false
// then.
func (c *Conn) waitIdle(deadline time.Time) bool {
	if c.busy.Load() <= 0 {
		return true
	}
	t := time.NewTimer(max(time.Until(deadline), time.Millisecond))
	defer t.Stop()
	for c.busy.Load() > 0 {
		select {
		case <-c.idle:
		case <-t.C:
			return c.busy.Load() <= 0
		}
	}
	return true
}

// Close implements transport.Conn: it stops every consumer at once (the
// broker takes back what they held unacknowledged, for another delivery)
// and closes the connection, within transport.CloseTimeout.
func (c *Conn) Close() error { return c.close(time.Now().Add(transport.CloseTimeout)) }

// close closes the connection, by deadline, and waits for the Conn's
// goroutines.
func (c *Conn) close(deadline time.Time) error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		close(c.stopping)
		c.mu.Lock()
		c.closed = true
		cs := c.consumers
		c.consumers = nil
		c.mu.Unlock()
		for _, k := range cs {
			k.halt.Store(true)
			k.ended.Store(true)
		}
		var errs []error
		if err := c.conn.CloseDeadline(deadline); err != nil && !errors.Is(err, rmq.ErrClosed) && !c.conn.IsClosed() {
			errs = append(errs, fmt.Errorf("transport amqp: close the connection to %s: %w", c.server, err))
		}
		done := make(chan struct{})
		go func() { c.loops.Wait(); close(done) }()
		t := time.NewTimer(max(time.Until(deadline), time.Millisecond))
		select {
		case <-done:
		case <-t.C:
			errs = append(errs, fmt.Errorf("transport amqp: connection to %s: handlers still busy after %v", c.server, transport.CloseTimeout))
		}
		t.Stop()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// forwarding takes the delivery registered for the forward with
// MessageId id, if any.
func (c *Conn) forwarding(id string) *settler {
	s, _ := c.forwards.Take(id)
	return s
}

// expectForward registers s as the delivery whose forward will carry
// MessageId id; false if another delivery of this Conn is registered for
// it (a redelivery of a message still being forwarded here).
func (c *Conn) expectForward(id string, s *settler) bool {
	return c.forwards.Expect(id, s)
}

// unexpectForward drops s's registration under id, if it is still there.
func (c *Conn) unexpectForward(id string, s *settler) {
	c.forwards.Drop(id, s)
}

// destName names destination i of run: the stage "S1".."SN", or "done".
func destName(run transport.Run, i int) string { return js.DestName(run, i) }

// checkDest reports a destination out of run's range.
func checkDest(run transport.Run, i int) error {
	if i < 0 || i > run.Stages {
		return fmt.Errorf("transport amqp: destination %d out of range 0..%d", i, run.Stages)
	}
	return nil
}
