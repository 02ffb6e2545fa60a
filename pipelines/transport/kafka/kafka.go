// Package kafka is the Kafka transport, on franz-go (kgo, kadm): each
// destination of a run (every stage's input, and the sink's) is a topic of
// its own, and each stage's members are one consumer group on it.
//
// # Partitions per member
//
// A Kafka group hands out partitions, not messages: a member gets only the
// messages of the partitions assigned to it, and a stage with fewer
// partitions than members leaves some members idle. So a stage's topic has
// Partitions(run, i) partitions: the stage's total concurrency
// (transport.Run.Concurrency[i], the sum of its members' Limits) when it is
// known, else 1. A sync worker has concurrency 1, so that is one partition
// per worker; an async worker with concurrency N counts N partitions, so
// there are never fewer partitions than members. The sink's topic has one
// partition (one member). Outgoing.Key, the message's correlation ID, picks
// the partition (Kafka's murmur2 hash of the record key), which spreads a
// run's messages evenly over a stage's partitions.
//
// # What it promises
//
// At-least-once, as JetStream: a member gives its handler at most its
// ConsumeOptions.Limit unsettled records (it stops polling at the limit;
// the client's fetch buffer is its Pending), and a record counts as done
// only when it is acknowledged, which the router does only after the
// record's successor has been acknowledged by the brokers (commit after
// forward). Offsets are committed per partition for the contiguous prefix
// of done records only: a record acknowledged out of order is not
// committed past an unacknowledged one before it. Commits go out in the
// background (at most one per CommitInterval), when the member's
// partitions are revoked (after waiting, within RevokeWait, for the work
// in flight on them), and when it stops. A member that dies, or leaves,
// with records unacknowledged has them delivered again to the member that
// gets its partitions, from the last commit: those records, and the ones
// acknowledged after the gap, come again with Attempt 2 (each commit
// records, in its metadata, the highest offset handed out so far; a
// member that crashed between commits leaves that mark behind, and the
// records it held past it count as first deliveries).
//
// The producer is idempotent with acks=all (franz-go's default): the
// brokers drop its own retries of a record. That does not cover a
// redelivery after a crash: a member that forwarded a record and died
// before its commit forwards it again when it is redelivered, so a
// message can reach the sink twice. Every record carries its correlation
// ID as key and MsgIDHeader = key + "." + destination ("S2", "done"); the
// sink keeps the first of each correlation ID, which makes a run
// exactly-once at the sink.
//
// Reject counts the record as done (Kafka cannot delete one record): it is
// committed past and never delivered again. Release gives the record back
// for another delivery: it is not committed past, and the member hands it
// to its handler again (Attempt + 1) from the copy it holds, without a
// seek. A seek would fetch again every record after it, which the member
// has already handed out or finished and would have to skip, and franz-go
// advises seeking in a group only from the polling goroutine with
// rebalances blocked; the local redelivery keeps the same guarantee (the
// record stays uncommitted until it is settled again, so if the member
// dies the group delivers it again). A record released while the member
// drains or stops is not handed out again: it waits, uncommitted, for the
// partition's next owner.
//
// Figures measured on franz-go's in-process kfake cluster (the tests'
// broker when KAFKA_BROKERS is unset) are kfake's, not Kafka's: kfake
// neither writes to disk nor replicates. Benchmarks run only against a
// real cluster named by KAFKA_BROKERS.
package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// Name is the Kafka transport's key.
const Name = "kafka"

// EnvBrokers names the cluster when Transport.Brokers is nil: a
// comma-separated list of host:port seed brokers.
const EnvBrokers = "KAFKA_BROKERS"

// MsgIDHeader is the record header holding the message's ID at its
// destination: the correlation ID + "." + the destination ("S2", "done").
const MsgIDHeader = "natspipe-msg-id"

// Defaults of Options.
const (
	// DefaultReplication is a topic's replication factor.
	DefaultReplication = 1
	// DefaultOpenTimeout bounds Open's check that the cluster answers.
	DefaultOpenTimeout = 5 * time.Second
	// DefaultAdminTimeout bounds Setup's and Teardown's requests, a
	// member's joining (Consume) and one offset commit.
	DefaultAdminTimeout = 10 * time.Second
	// DefaultPublishTimeout bounds a publish with its retries, e.g. while
	// a partition's leader moves.
	DefaultPublishTimeout = 30 * time.Second
	// DefaultSessionTimeout is how long the group waits for a member that
	// stopped heartbeating (it died) before it gives its partitions to
	// others. Kafka's group.min.session.timeout.ms is 6 s by default.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultHeartbeatInterval is how often a member heartbeats, which is
	// how soon it learns of a rebalance.
	DefaultHeartbeatInterval = time.Second
	// DefaultRebalanceTimeout is how long the group waits for its members
	// to rejoin when it rebalances.
	DefaultRebalanceTimeout = 30 * time.Second
	// DefaultRevokeWait bounds how long a member whose partitions are
	// revoked waits for the work in flight on them to be settled, before
	// it commits and lets them go.
	DefaultRevokeWait = 5 * time.Second
	// DefaultFetchMaxWait is how long a broker holds a member's fetch
	// when it has no records for it (Kafka's Java consumer's default):
	// a member whose assignment changes may wait that long before it
	// fetches its new partitions on a broker it is already waiting on.
	DefaultFetchMaxWait = 500 * time.Millisecond
	// DefaultCommitInterval is the shortest time between two background
	// commits of a member.
	DefaultCommitInterval = 100 * time.Millisecond
	// metadataMinAge is the shortest time between two metadata requests
	// of the Conn's client (franz-go: 5 s), which also answers
	// Setup's and Teardown's topic listings from its cache until then.
	metadataMinAge = 200 * time.Millisecond
	// unboundedBatch is the most records a member without a Limit (the
	// sink) polls at once.
	unboundedBatch = 256
	// maxTopicLen is Kafka's longest topic name.
	maxTopicLen = 249
)

// Options configure the Kafka transport. The zero value is the defaults.
type Options struct {
	// Replication is the replication factor of the topics Setup creates;
	// 0: DefaultReplication.
	Replication int16
	// OpenTimeout: see DefaultOpenTimeout; 0: default.
	OpenTimeout time.Duration
	// AdminTimeout: see DefaultAdminTimeout; 0: default.
	AdminTimeout time.Duration
	// PublishTimeout: see DefaultPublishTimeout; 0: default.
	PublishTimeout time.Duration
	// SessionTimeout: see DefaultSessionTimeout; 0: default. It must lie
	// within the brokers' group.min/max.session.timeout.ms.
	SessionTimeout time.Duration
	// HeartbeatInterval: see DefaultHeartbeatInterval; 0: default (at
	// most a third of SessionTimeout).
	HeartbeatInterval time.Duration
	// RebalanceTimeout: see DefaultRebalanceTimeout; 0: default.
	RebalanceTimeout time.Duration
	// RevokeWait: see DefaultRevokeWait; 0: default (at most half of
	// RebalanceTimeout).
	RevokeWait time.Duration
	// CommitInterval: see DefaultCommitInterval; 0: default.
	CommitInterval time.Duration
	// FetchMaxWait: see DefaultFetchMaxWait; 0: default (at least 10 ms).
	FetchMaxWait time.Duration
	// Linger is how long the producer holds a partition's records to
	// batch more with them; 0: none (franz-go's default is 10 ms, which
	// every forward would wait). Concurrent publishes are batched anyway
	// while a produce request is in flight.
	Linger time.Duration
}

func (o Options) withDefaults() Options {
	if o.Replication <= 0 {
		o.Replication = DefaultReplication
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.AdminTimeout <= 0 {
		o.AdminTimeout = DefaultAdminTimeout
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = min(DefaultHeartbeatInterval, o.SessionTimeout/3)
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if o.RevokeWait <= 0 {
		o.RevokeWait = min(DefaultRevokeWait, o.RebalanceTimeout/2)
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = DefaultCommitInterval
	}
	if o.FetchMaxWait <= 0 {
		o.FetchMaxWait = DefaultFetchMaxWait
	}
	o.FetchMaxWait = max(o.FetchMaxWait, 10*time.Millisecond)
	return o
}

// Transport is the Kafka transport.
type Transport struct {
	// Brokers are the cluster's seed brokers (host:port); nil: the
	// comma-separated list in EnvBrokers, read at Open.
	Brokers []string
	// StandIn names what serves Brokers when it is not Kafka ("kfake",
	// franz-go's in-process fake, which internal/kafkatest starts for
	// tests): results then carry it, so its timings are never read as
	// Kafka's. "": a real Kafka cluster.
	StandIn string
	Options
}

// Substitute implements transport.Substitute: the stand-in, if any.
func (t Transport) Substitute() string { return t.StandIn }

// Name implements transport.Transport.
func (Transport) Name() string { return Name }

// AtLeastOnce implements transport.Transport: records a member held
// unacknowledged when it stopped are delivered again to another.
func (Transport) AtLeastOnce() bool { return true }

// Environ is the environment that gives a worker process this
// transport's cluster: EnvBrokers=a,b when Brokers is set; nil when the
// process's own EnvBrokers (which the workers inherit) names it.
func (t Transport) Environ() []string {
	if t.Brokers == nil {
		return nil
	}
	return []string{EnvBrokers + "=" + strings.Join(t.Brokers, ",")}
}

// brokers returns the seed brokers, from Brokers or EnvBrokers, and how
// to show them (user info masked).
func (t Transport) brokers() (seeds []string, shown string, err error) {
	list, from := t.Brokers, "Transport.Brokers"
	if list == nil {
		list, from = strings.Split(os.Getenv(EnvBrokers), ","), EnvBrokers
	}
	var raw []string
	for _, b := range list {
		if b = strings.TrimSpace(b); b != "" {
			raw = append(raw, b)
		}
	}
	shown = natsconn.Mask(strings.Join(raw, ","))
	if len(raw) == 0 {
		return nil, "", fmt.Errorf("kafka transport: no brokers: set %s (host:port,...) to a Kafka cluster", EnvBrokers)
	}
	for _, b := range raw {
		if i := strings.Index(b, "://"); i >= 0 {
			b = b[i+3:]
		}
		if strings.Contains(b, "@") {
			return nil, "", fmt.Errorf("kafka transport: brokers %s (from %s): credentials in a broker address are not supported (no SASL)", shown, from)
		}
		seeds = append(seeds, strings.TrimSuffix(b, "/"))
	}
	return seeds, shown, nil
}

// Open implements transport.Transport: it checks, within OpenTimeout,
// that a broker of the cluster answers; an error names the brokers (user
// info masked) and the reason. The Conn's producer and admin client share
// one franz-go client; every member Consume makes has its own. When
// env.Faults is also a pipelines.RedeliverySink, every redelivery a member
// of the Conn hands out is counted there, by destination.
func (t Transport) Open(ctx context.Context, env transport.Env) (transport.Conn, error) {
	seeds, shown, err := t.brokers()
	if err != nil {
		return nil, err
	}
	o := t.Options.withDefaults()
	name := clientID(env.Name)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID(name),
		kgo.DisableClientMetrics(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(o.PublishTimeout),
		kgo.ProducerLinger(o.Linger),
		kgo.MetadataMinAge(metadataMinAge),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka transport: client for %s: %w", shown, err)
	}
	pctx, cancel := context.WithTimeout(ctx, o.OpenTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		if pctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("kafka transport: no broker of %s answered within %v: %w", shown, o.OpenTimeout, err)
		}
		return nil, fmt.Errorf("kafka transport: no broker of %s answered: %w", shown, err)
	}
	faults := env.Faults
	if faults == nil {
		faults = discard{}
	}
	return &Conn{opts: o, seeds: seeds, shown: shown, name: name, faults: faults,
		cl: cl, adm: kadm.NewClient(cl), changed: make(chan struct{})}, nil
}

type discard struct{}

func (discard) Fault(error) {}

// clientID is the Kafka client ID for a process called name.
func clientID(name string) string {
	if name == "" {
		return "natspipe"
	}
	return "natspipe-" + name
}

// Topic is the topic of destination i of run (its Subject, with every
// character a topic name may not hold replaced by "_"; a name longer than
// Kafka allows is cut and ends with a hash of the whole).
func Topic(run transport.Run, i int) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, run.Subject(i))
	if name == "." || name == ".." {
		name = "_" + name
	}
	if len(name) > maxTopicLen {
		sum := sha256.Sum256([]byte(run.Subject(i)))
		h := hex.EncodeToString(sum[:8])
		name = name[:maxTopicLen-len(h)-1] + "-" + h
	}
	return name
}

// Group is the consumer group of destination i of run: its topic's name.
func Group(run transport.Run, i int) string { return Topic(run, i) }

// Partitions is the number of partitions of destination i's topic: the
// stage's total concurrency (run.Concurrency[i]) when it is known (> 0),
// else 1; the sink's topic (run.Done()) has 1. A sync worker has
// concurrency 1, so that is one partition per worker, and a stage never
// has fewer partitions than members.
func Partitions(run transport.Run, i int) int {
	if i >= run.Done() || i < 0 || i >= len(run.Concurrency) || run.Concurrency[i] <= 0 {
		return 1
	}
	return run.Concurrency[i]
}

// Conn is a Kafka transport.Conn: one franz-go client that produces and
// administers, and one more per member Consume makes.
type Conn struct {
	opts   Options
	seeds  []string
	shown  string // the brokers, masked
	name   string // client ID
	faults bus.Faulter
	cl     *kgo.Client
	adm    *kadm.Client

	closeOnce sync.Once // of cl

	mu        sync.Mutex
	consumers []*consumer
	// changed is closed, and replaced, whenever a member's assignment
	// changes (for tests that wait for a group to settle).
	changed chan struct{}
}

func (c *Conn) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.AdminTimeout)
}

// assignmentChanged is closed at the next change of a member's
// assignment.
func (c *Conn) assignmentChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Conn) notifyAssignment() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Setup implements transport.Conn: it creates one topic per destination
// (Partitions, Replication), a topic that exists already being fine, and
// waits, within AdminTimeout, until the cluster's metadata shows every
// partition with a leader.
func (c *Conn) Setup(ctx context.Context, run transport.Run) error {
	actx, cancel := c.bounded(ctx)
	defer cancel()
	topics := make([]string, 0, run.Stages+1)
	for i := 0; i <= run.Stages; i++ {
		topic := Topic(run, i)
		topics = append(topics, topic)
		resp, err := c.adm.CreateTopic(actx, int32(Partitions(run, i)), c.opts.Replication, nil, topic)
		if err == nil {
			err = resp.Err
			if err != nil && resp.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka transport: create topic %s (%d partitions) on %s: %w", topic, Partitions(run, i), c.shown, err)
		}
	}
	return c.waitTopics(actx, topics)
}

// waitTopics waits until the metadata shows every partition of topics with
// a leader: a topic just created takes a moment to be everywhere.
func (c *Conn) waitTopics(ctx context.Context, topics []string) error {
	backoff := 10 * time.Millisecond
	for {
		details, err := c.adm.ListTopics(ctx, topics...)
		missing := ""
		if err == nil {
			for _, topic := range topics {
				d, ok := details[topic]
				if !ok || d.Err != nil || len(d.Partitions) == 0 {
					missing = topic
					break
				}
				for _, p := range d.Partitions {
					if p.Leader < 0 || p.Err != nil {
						missing = topic
					}
				}
			}
			if missing == "" {
				return nil
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = fmt.Errorf("topic %s has no leader for some partition", missing)
			}
			return fmt.Errorf("kafka transport: wait for topics on %s: %w (%w)", c.shown, ctx.Err(), err)
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// Teardown implements transport.Conn: it deletes the run's topics and its
// consumer groups (their committed offsets). A topic or group already gone
// is not an error.
func (c *Conn) Teardown(ctx context.Context, run transport.Run) error {
	actx, cancel := c.bounded(ctx)
	defer cancel()
	topics, groups := make([]string, 0, run.Stages+1), make([]string, 0, run.Stages+1)
	for i := 0; i <= run.Stages; i++ {
		topics, groups = append(topics, Topic(run, i)), append(groups, Group(run, i))
	}
	var errs []error
	dresp, err := c.adm.DeleteTopics(actx, topics...)
	if err != nil {
		return fmt.Errorf("kafka transport: delete topics %s on %s: %w", strings.Join(topics, ", "), c.shown, err)
	}
	for _, topic := range topics {
		if r, ok := dresp[topic]; ok && r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("kafka transport: delete topic %s on %s: %w", topic, c.shown, r.Err))
		}
	}
	gresp, err := c.adm.DeleteGroups(actx, groups...)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("kafka transport: delete groups %s on %s: %w", strings.Join(groups, ", "), c.shown, err))...)
	}
	for _, g := range groups {
		if r, ok := gresp[g]; ok && r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			errs = append(errs, fmt.Errorf("kafka transport: delete group %s on %s: %w", g, c.shown, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Publisher implements transport.Conn.
func (c *Conn) Publisher(run transport.Run, to int) (transport.Publisher, error) {
	if to < 0 || to > run.Stages {
		return nil, fmt.Errorf("kafka transport: destination %d out of range 0..%d", to, run.Stages)
	}
	return &publisher{c: c, topic: Topic(run, to), dest: js.DestName(run, to)}, nil
}

type publisher struct {
	c     *Conn
	topic string
	dest  string // "S2", "done"
}

// Publish produces m to the destination's topic and returns once the
// brokers have acknowledged it (acks=all), within PublishTimeout and ctx.
// Its key is m.Key, or the envelope's correlation ID when Key is empty,
// and MsgIDHeader carries key + "." + the destination. Safe for
// concurrent use: concurrent publishes share the client's batches.
func (p *publisher) Publish(ctx context.Context, m transport.Outgoing) error {
	key := m.Key
	if key == "" {
		key, _ = js.EnvelopeID(m.Data)
	}
	// A copy: the caller reuses its buffer once Publish returns, and a
	// publish that gives up on ctx may still be in the client's batch.
	rec := &kgo.Record{Topic: p.topic, Value: append([]byte(nil), m.Data...)}
	if key != "" {
		rec.Key = []byte(key)
		rec.Headers = []kgo.RecordHeader{{Key: MsgIDHeader, Value: []byte(key + "." + p.dest)}}
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.opts.PublishTimeout)
	defer cancel()
	done := make(chan error, 1)
	p.c.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka transport: publish to %s on %s: %w", p.topic, p.c.shown, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka transport: publish to %s on %s: %w", p.topic, p.c.shown, context.Cause(ctx))
	}
}

// Drain implements transport.Conn: it drains every member of c (see
// Consumer.Drain), waits for the records they handed out to be settled,
// commits and leaves the groups, then flushes what c published, all within
// transport.CloseTimeout.
func (c *Conn) Drain() error {
	c.mu.Lock()
	ks := c.consumers
	c.consumers = nil
	c.mu.Unlock()
	deadline := time.Now().Add(transport.CloseTimeout)
	left := func() time.Duration { return max(time.Until(deadline), time.Millisecond) }
	var errs []error
	for _, k := range ks {
		if err := k.Drain(left()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range ks {
		if err := k.finish(left()); err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), left())
	defer cancel()
	if err := c.cl.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kafka transport: flush to %s: %w", c.shown, err))
	}
	c.closeOnce.Do(c.cl.Close)
	return errors.Join(errs...)
}

// Close implements transport.Conn: it stops every member of c (each
// commits what it finished and leaves its group) and closes the producer;
// a publish still waiting fails.
func (c *Conn) Close() error {
	c.mu.Lock()
	ks := c.consumers
	c.consumers = nil
	c.mu.Unlock()
	var errs []error
	for _, k := range ks {
		if err := k.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	c.closeOnce.Do(c.cl.Close)
	return errors.Join(errs...)
}
