// Package js is the JetStream transport: a run is one stream holding its
// stage subjects and its done subject (work-queue retention: a message
// leaves the stream once acknowledged), and each stage, and the sink, is one
// durable pull consumer filtering its subject, shared by the stage's
// members.
//
// A member pulls only when it has a free slot: it never has more than its
// ConsumeOptions.Limit deliveries in stage work or asked for, and asks the
// server for exactly as many messages as it has free slots, so a busy
// member is never handed work another member could start now. A slot
// frees when stage work on its delivery ends (the router says so, through
// the settler's WorkEnded, before it publishes the forward), not when the
// forward's PubAck and the ack have made their round trips: the next
// message is pulled at once.
//
// A pull's round trip (0.6-0.8 ms on a loaded 2-core machine) is time a
// member spends idle between two messages, which costs a 10 ms stage 7%
// of its throughput. So each member also keeps one lookahead request open:
// a request the server fills only from a backlog deep enough for every
// other slot of the stage (the consumer's overflow priority group,
// min_pending = the stage's concurrency - the member's Limit + 1). Its
// message waits at the member, queued behind its work, only while at least
// that many others wait in the stream for the other members, so no member
// goes idle for it; its next message is there when a slot frees, as core
// NATS's pushed messages are. Options.Strict turns lookahead off.
//
// Forwarding is at-least-once: a message is acknowledged only after its
// successor is stored (PubAck). The forward of a delivery whose stage work
// has ended is published in the background (Publish returns at once and
// the executor takes its next message); the delivery's Ack waits for the
// PubAck, and becomes a Nak, with a fault reported, if the forward fails.
// So a member holds, per slot, at most one delivery in work, and its
// forwards waiting for PubAcks, and one lookahead delivery; the consumer's
// MaxAckPending, three times the stage's total concurrency
// (transport.Run.Concurrency), bounds them: past it the server holds the
// member's pull back.
//
// Each publish carries Nats-Msg-Id = correlation ID + "." + the destination
// stage ("S2", ..., "done"), so when a member dies after forwarding and
// before acknowledging, the redelivered message's second forward is
// dropped by the server as a duplicate. A delivery unacknowledged for
// AckWait is delivered again, at most MaxDeliver times in all; a member
// that works longer than AckWait on a message tells the server so
// (InProgress) and keeps it. Malformed messages are terminated (Term), never
// delivered again.
package js

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
)

// Name is the JetStream transport's key.
const Name = "js"

// Defaults of Options.
const (
	// DefaultAckWait is how long the server waits for a delivery's
	// acknowledgement before delivering it again: how soon a dead member's
	// messages go to another.
	DefaultAckWait = 5 * time.Second
	// DefaultMaxDeliver bounds the deliveries of one message.
	DefaultMaxDeliver = 5
	// DefaultAPITimeout bounds one JetStream API call (stream and consumer
	// management, one publish attempt).
	DefaultAPITimeout = 5 * time.Second
	// DefaultPublishTimeout bounds a publish with its retries, e.g. while
	// the server restarts.
	DefaultPublishTimeout = 30 * time.Second
	// DefaultPullExpiry is how long one pull request waits at the server
	// for messages; a member then pulls again. It bounds how long a member
	// goes without noticing that the server lost its pull (a restart).
	DefaultPullExpiry = 2 * time.Second
	// MinDuplicates is the shortest deduplication window.
	MinDuplicates = 2 * time.Minute
	// PullGroup is the consumers' priority group: every pull request
	// names it, and a lookahead request's min_pending applies in it.
	PullGroup = "natspipe"
	// concurrencyKey, in a consumer's metadata, is its stage's total
	// concurrency, which sets a member's lookahead threshold.
	concurrencyKey = "natspipe.concurrency"
	// unboundedBatch is the most messages a member without a Limit (the
	// sink) asks for at once.
	unboundedBatch = 256
)

// Options configure the JetStream transport. The zero value is the
// defaults: file storage, DefaultAckWait, DefaultMaxDeliver.
type Options struct {
	// Memory stores the run's stream in memory instead of files: faster,
	// lost when the server restarts.
	Memory bool
	// AckWait: see DefaultAckWait; 0: default.
	AckWait time.Duration
	// MaxDeliver: see DefaultMaxDeliver; 0: default.
	MaxDeliver int
	// Duplicates is the deduplication window of Nats-Msg-Id; 0: the
	// larger of MinDuplicates and 2 x AckWait x MaxDeliver, so every
	// redelivery falls in it.
	Duplicates time.Duration
	// APITimeout: see DefaultAPITimeout; 0: default.
	APITimeout time.Duration
	// PublishTimeout: see DefaultPublishTimeout; 0: default.
	PublishTimeout time.Duration
	// PullExpiry: see DefaultPullExpiry; 0: default.
	PullExpiry time.Duration
	// Strict pulls only for free slots: no lookahead request (see the
	// package doc), so a member never holds a delivery it is not working
	// on, and each message costs a pull's round trip of idle time.
	Strict bool
	// Replicas is how many servers of a JetStream cluster hold the run's
	// stream (its consumers have as many: they inherit it); 0: 1. Set it
	// to 3 on a cluster of three nodes or more so that losing a node loses
	// nothing (R3: a quorum of two keeps the stream and its consumers
	// going); a single server refuses more than 1. The transport does not
	// guess it from the cluster's size: how many copies a run pays for is
	// the user's choice.
	Replicas int
}

func (o Options) withDefaults() Options {
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.Duplicates <= 0 {
		o.Duplicates = max(MinDuplicates, 2*o.AckWait*time.Duration(o.MaxDeliver))
	}
	if o.APITimeout <= 0 {
		o.APITimeout = DefaultAPITimeout
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.PullExpiry <= 0 {
		o.PullExpiry = DefaultPullExpiry
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	return o
}

// Transport is the JetStream transport.
type Transport struct {
	Options
}

// Name implements transport.Transport.
func (Transport) Name() string { return Name }

// AtLeastOnce implements transport.Transport: JetStream redelivers what was
// not acknowledged within AckWait, so a message can complete twice.
func (Transport) AtLeastOnce() bool { return true }

// Open implements transport.Transport: the Conn uses env.NC, after a
// bounded check (APITimeout) that the server offers JetStream to this
// account. A server without JetStream is an error naming the server.
// When env.Faults is also a pipelines.RedeliverySink, every redelivery a
// consumer of the Conn receives is counted there, by destination.
func (t Transport) Open(ctx context.Context, env transport.Env) (transport.Conn, error) {
	if env.NC == nil {
		return nil, errors.New("js transport: no NATS connection")
	}
	o := t.Options.withDefaults()
	server := natsconn.Mask(env.NATS.ServerURL())
	if u := env.NC.ConnectedUrl(); u != "" {
		server = natsconn.Mask(u)
	}
	js, err := jetstream.New(env.NC)
	if err != nil {
		return nil, fmt.Errorf("js transport on %s: %w", server, err)
	}
	if err := Check(ctx, js, server, o.APITimeout); err != nil {
		return nil, err
	}
	faults := env.Faults
	if faults == nil {
		faults = discard{}
	}
	bus.TolerateDisconnects(env.NC, faults, o.PublishTimeout, "js transport on "+server)
	stopping, stop := context.WithCancel(context.Background())
	return &Conn{nc: env.NC, js: js, opts: o, server: server, faults: faults,
		stopping: stopping, stop: stop}, nil
}

type discard struct{}

func (discard) Fault(error) {}

// Check asks the server, within timeout, for the account's JetStream
// information: an error names server (masked by the caller) and says
// whether JetStream is off or did not answer.
func Check(ctx context.Context, js jetstream.JetStream, server string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		switch {
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			return fmt.Errorf("js transport: the NATS server at %s does not offer JetStream (run nats-server -js, or use -transport core): %w", server, err)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("js transport: the NATS server at %s did not answer a JetStream request within %v (JetStream off or unavailable): %w", server, timeout, err)
		}
		return fmt.Errorf("js transport: JetStream account info from %s: %w", server, err)
	}
	return nil
}

// StreamName is the name of the stream of the run under subjects: the
// prefix with every character a stream name may not hold replaced by "_".
func StreamName(subjects bus.Subjects) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '.', r == '*', r == '>', r == '/', r == '\\', r <= ' ', r == 0x7f:
			return '_'
		}
		return r
	}, subjects.Prefix)
}

// DestName names destination i of run: the stage "S1".."SN", or "done".
func DestName(run transport.Run, i int) string {
	if i >= run.Stages {
		return "done"
	}
	return pipelines.StageName(i)
}

// MsgID is the Nats-Msg-Id of the message with correlation ID key
// published to destination to of run.
func MsgID(run transport.Run, to int, key string) string { return key + "." + DestName(run, to) }

// EnvelopeID reads the correlation ID of an encoded envelope without
// decoding the rest; ok is false when data is not an envelope.
func EnvelopeID(data []byte) (id string, ok bool) {
	const idLenAt = 20
	if len(data) <= idLenAt || data[0] != 'N' || data[1] != 'P' {
		return "", false
	}
	n := int(data[idLenAt])
	if n == 0 || len(data) < idLenAt+1+n {
		return "", false
	}
	return string(data[idLenAt+1 : idLenAt+1+n]), true
}

// Conn is a JetStream transport.Conn on one NATS connection.
type Conn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	opts   Options
	server string // masked
	faults bus.Faulter

	mu        sync.Mutex
	consumers []*consumer
	// forwards are the deliveries whose stage work has ended, by the
	// Nats-Msg-Id their forward will carry (see settler.WorkEnded).
	forwards transport.Forwards[*settler]

	background sync.WaitGroup  // forwards published in the background
	stopping   context.Context // cancelled by Close: background forwards give up
	stop       context.CancelFunc
}

func (c *Conn) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.APITimeout)
}

// StreamConfig is the configuration of run's stream under o.
func StreamConfig(run transport.Run, o Options) jetstream.StreamConfig {
	o = o.withDefaults()
	subjects := make([]string, run.Stages+1)
	for i := range subjects {
		subjects[i] = run.Subject(i)
	}
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        StreamName(run.Subjects),
		Description: "natspipe run " + run.Subjects.Prefix,
		// Only the data subjects: the control subjects under the same
		// prefix (ready, ctl.*) are request/reply and must not be
		// answered by the stream.
		Subjects:   subjects,
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    storage,
		Replicas:   o.Replicas,
		Duplicates: o.Duplicates,
		Discard:    jetstream.DiscardOld,
	}
}

// ConsumerConfig is the configuration of the durable consumer of
// destination i of run under o.
func ConsumerConfig(run transport.Run, i int, o Options) jetstream.ConsumerConfig {
	o = o.withDefaults()
	pending := -1 // unbounded
	if i < len(run.Concurrency) && run.Concurrency[i] > 0 {
		// Each slot holds at most one delivery in stage work and one whose
		// forward is being acknowledged, and each member one lookahead
		// delivery (see Consume); a member has at least one slot.
		pending = 3 * run.Concurrency[i]
	}
	var meta map[string]string
	if pending > 0 {
		meta = map[string]string{concurrencyKey: strconv.Itoa(run.Concurrency[i])}
	}
	return jetstream.ConsumerConfig{
		Metadata:      meta,
		Durable:       DestName(run, i),
		Description:   "natspipe " + DestName(run, i) + " of " + run.Subjects.Prefix,
		FilterSubject: run.Subject(i),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: pending,
		// Every free slot of every member may wait with a pull request,
		// and every member with a lookahead request.
		MaxWaiting:     max(512, pending),
		PriorityGroups: []string{PullGroup},
		PriorityPolicy: jetstream.PriorityPolicyOverflow,
	}
}

// Setup implements transport.Conn: it creates (or updates) the run's
// stream and one durable pull consumer per stage and for the sink.
func (c *Conn) Setup(ctx context.Context, run transport.Run) error {
	cfg := StreamConfig(run, c.opts)
	actx, cancel := c.bounded(ctx)
	defer cancel()
	// Create, and update only a stream whose configuration differs (one a
	// worker created at fewer replicas): the server answers the create of
	// an identical stream as it is, where an update rewrites the store's
	// configuration under the consumers that workers may be creating at
	// that moment (nats-server 2.15.2's fileStore.UpdateConfig against
	// ConsumerStore, a data race under -race).
	s, err := c.js.CreateStream(actx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = c.js.UpdateStream(actx, cfg)
	}
	if err != nil {
		if cfg.Replicas > 1 {
			return fmt.Errorf("js transport: create stream %s with %d replicas on %s (a cluster of at least %d JetStream servers?): %w", cfg.Name, cfg.Replicas, c.server, cfg.Replicas, err)
		}
		return fmt.Errorf("js transport: create stream %s on %s: %w", cfg.Name, c.server, err)
	}
	if cfg.Replicas > 1 {
		if err := settleReplicas(ctx, s, cfg.Replicas, c.opts.APITimeout); err != nil {
			return fmt.Errorf("js transport: stream %s on %s: %w", cfg.Name, c.server, err)
		}
	}
	for i := 0; i <= run.Stages; i++ {
		cc := ConsumerConfig(run, i, c.opts)
		actx, cancel := c.bounded(ctx)
		_, err := s.CreateOrUpdateConsumer(actx, cc)
		cancel()
		if err != nil {
			return fmt.Errorf("js transport: create consumer %s of stream %s on %s: %w", cc.Durable, cfg.Name, c.server, err)
		}
	}
	return nil
}

// ReplicaTimeout bounds Setup's wait for a replicated stream to settle:
// a leader and every follower current, none of them moving (a stream
// created, or raised from fewer replicas, on a cluster).
const ReplicaTimeout = 20 * time.Second

// settleReplicas waits, within ReplicaTimeout and ctx, until stream s has
// a leader and n-1 current followers, so that a run starts on a settled
// stream and the loss of a node loses nothing.
func settleReplicas(ctx context.Context, s jetstream.Stream, n int, apiTimeout time.Duration) error {
	deadline := time.Now().Add(ReplicaTimeout)
	for {
		wait, cancel := context.WithTimeout(ctx, apiTimeout)
		info, err := s.Info(wait)
		cancel()
		state := "no answer"
		if err == nil {
			if state = replicaState(info.Cluster, n); state == "" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not at %d current replicas after %v: %w", n, ReplicaTimeout, errors.Join(errors.New(state), err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d current replicas: %w", n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// replicaState says what keeps a stream's cluster from n settled
// replicas; "" when it has them.
func replicaState(c *jetstream.ClusterInfo, n int) string {
	switch {
	case c == nil:
		return "no cluster information"
	case c.Leader == "":
		return "no leader"
	case c.Desired != nil:
		return "its peers are moving"
	case len(c.Replicas) != n-1:
		return fmt.Sprintf("%d followers", len(c.Replicas))
	}
	for _, p := range c.Replicas {
		if !p.Current {
			return "follower " + p.Name + " not current"
		}
	}
	return ""
}

// Teardown implements transport.Conn: it deletes the run's stream and
// with it its consumers. A stream already gone is not an error.
func (c *Conn) Teardown(ctx context.Context, run transport.Run) error {
	name := StreamName(run.Subjects)
	actx, cancel := c.bounded(ctx)
	defer cancel()
	if err := c.js.DeleteStream(actx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("js transport: delete stream %s on %s: %w", name, c.server, err)
	}
	return nil
}

// Publisher implements transport.Conn.
func (c *Conn) Publisher(run transport.Run, to int) (transport.Publisher, error) {
	if to < 0 || to > run.Stages {
		return nil, fmt.Errorf("js transport: destination %d out of range 0..%d", to, run.Stages)
	}
	return &publisher{c: c, run: run, to: to, subject: run.Subject(to)}, nil
}

type publisher struct {
	c       *Conn
	run     transport.Run
	to      int
	subject string
}

// Publish stores m in the run's stream and waits for the PubAck, retrying
// while the server does not answer (a restart), within PublishTimeout and
// ctx. Its Nats-Msg-Id is MsgID of m.Key, or of the envelope's correlation
// ID when Key is empty; a duplicate the server drops is a success.
//
// When m is the forward of a delivery of this Conn whose stage work has
// ended (Settler.WorkEnded), Publish returns at once and the publish goes
// on in the background: the delivery's Ack is held back until the PubAck
// has come, and if the publish fails the delivery is given back (Nak) and
// the failure reported to the Conn's faults. So the router's executor
// starts its next message while the forward is acknowledged, and a
// message is still acknowledged only after its successor is stored.
func (p *publisher) Publish(ctx context.Context, m transport.Outgoing) error {
	key := m.Key
	if key == "" {
		key, _ = EnvelopeID(m.Data)
	}
	msg := &nats.Msg{Subject: p.subject, Data: m.Data}
	var s *settler
	if key != "" {
		id := MsgID(p.run, p.to, key)
		msg.Header = nats.Header{jetstream.MsgIDHeader: []string{id}}
		s = p.c.forwarding(id)
	}
	if s == nil {
		return p.publish(ctx, msg)
	}
	s.inBackground()
	msg.Data = append([]byte(nil), m.Data...) // the caller reuses its buffer
	p.c.background.Add(1)
	go func() {
		defer p.c.background.Done()
		s.forwarded(p.publish(p.c.stopping, msg))
	}()
	return nil
}

func (p *publisher) publish(ctx context.Context, msg *nats.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, p.c.opts.PublishTimeout)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		actx, acancel := p.c.bounded(ctx)
		_, err := p.c.js.PublishMsg(actx, msg)
		acancel()
		if err == nil {
			return nil
		}
		if !transient(err) || ctx.Err() != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (last attempt: %w)", context.Cause(ctx), err)
			}
			return fmt.Errorf("js transport: publish to %s on %s: %w", p.subject, p.c.server, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, time.Second)
	}
}

// forwarding takes the delivery registered for the forward with
// Nats-Msg-Id id, if any.
func (c *Conn) forwarding(id string) *settler {
	s, _ := c.forwards.Take(id)
	return s
}

// expectForward registers s as the delivery whose forward will carry
// Nats-Msg-Id id; false if another delivery of this Conn is registered
// for it (a redelivery of a message still forwarding here).
func (c *Conn) expectForward(id string, s *settler) bool {
	return c.forwards.Expect(id, s)
}

// unexpectForward drops s's registration under id, if it is still there.
func (c *Conn) unexpectForward(id string, s *settler) {
	c.forwards.Drop(id, s)
}

// transient reports whether a publish may succeed if tried again: the
// server did not answer, or the connection is away.
func transient(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Drain implements transport.Conn: it drains every consumer of c and
// flushes the connection, within transport.CloseTimeout.
func (c *Conn) Drain() error {
	c.mu.Lock()
	cs := c.consumers
	c.consumers = nil
	c.mu.Unlock()
	deadline := time.Now().Add(transport.CloseTimeout)
	var errs []error
	for _, k := range cs {
		if err := k.Drain(max(time.Until(deadline), time.Millisecond)); err != nil {
			errs = append(errs, err)
		}
	}
	if !c.waitBackground(time.Until(deadline)) {
		c.stop()
		c.background.Wait()
		errs = append(errs, fmt.Errorf("js transport: forwards still unacknowledged after %v", transport.CloseTimeout))
	}
	c.stop()
	if c.nc.IsConnected() {
		if err := c.nc.FlushTimeout(max(time.Until(deadline), time.Millisecond)); err != nil {
			errs = append(errs, fmt.Errorf("js transport: flush: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close implements transport.Conn: it stops every consumer of c.
func (c *Conn) Close() error {
	c.mu.Lock()
	cs := c.consumers
	c.consumers = nil
	c.mu.Unlock()
	var errs []error
	for _, k := range cs {
		if err := k.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	c.stop()
	c.background.Wait()
	return errors.Join(errs...)
}

// waitBackground waits, up to timeout, for the forwards published in the
// background; false if some are still going.
func (c *Conn) waitBackground(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { c.background.Wait(); close(done) }()
	t := time.NewTimer(max(timeout, time.Millisecond))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
