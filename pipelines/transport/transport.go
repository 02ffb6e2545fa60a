// Package transport is the seam between natspipe's stage router and a
// message broker. The variants (pipelines/p1 .. p4) are about scheduling:
// one executor, an in-flight limit, a worker's concurrency. A transport is
// about delivery: how a stage's messages reach its members, what the broker
// keeps when a member dies, and when a message counts as handed on.
//
// # Who does what
//
// A run has N stages and a sink. Stage i's input is destination i; the
// sink's input is destination N (Run.Done). The process that starts a
// pipeline (P1/P2's Start, P3/P4's fleet) calls Conn.Setup once for the
// run, before any member consumes and before the source publishes, and
// Conn.Teardown after every member and the sink have stopped, on that
// same Conn before it is drained or closed. Every member
// of a stage (P1/P2: the one process; P3/P4: each worker process) opens its
// own Conn and calls Consume for its stage: it is one member of the stage's
// group, and the group's members share the stage's messages.
//
// # The router's contract (pipelines/router)
//
// For every Delivery it receives, the router settles it exactly once:
//
//   - It runs the stage's Step. On success it publishes the result to the
//     next destination (Publisher.Publish) and, only once Publish has
//     returned nil, calls Delivery.Ack. So a message is acknowledged only
//     after its successor is accepted by the broker (at-least-once for
//     acked transports; a crash between the two gives a redelivery, which
//     Outgoing.Key lets the broker deduplicate).
//   - If the message is malformed or at the wrong stage (Step.Process
//     fails), it reports it to the sink (pipelines.Sink.Reject) and calls
//     Delivery.Reject: the broker must never deliver it again.
//   - If Publish fails, it reports a fault (pipelines.Sink.Fault) and calls
//     Delivery.Release: the broker may deliver it again.
//   - If stage work is cancelled because the pipeline is stopping, it calls
//     Delivery.Release.
//
// The sink settles what it receives on Done with Ack after counting it;
// it keeps the first of each correlation ID and counts the rest as
// duplicates.
//
// # Concurrency: push and pull
//
// Consume's ConsumeOptions.Limit is the most messages this member works on
// at once (its executors). What a transport makes of it depends on how the
// broker hands out work:
//
//   - Push (core NATS): the broker sends every message to some member
//     whether it is busy or not; Limit does not bound delivery. The handler
//     gets messages as they arrive and the router queues them, stamped with
//     their arrival, until an executor is free. Nothing is ever dropped
//     (client-side pending limits are lifted).
//   - Pull or prefetch (JetStream, RabbitMQ): the member holds at most Limit
//     unsettled deliveries; the broker gives it another only when one is
//     settled. Run.Concurrency (the sum of the members' Limits) is the
//     stage's broker-side bound (JetStream's max ack pending).
//   - Partitions (Kafka): the stage's topic has as many partitions as the
//     stage has members; a member gets only its partitions' messages, and
//     Outgoing.Key (the correlation ID) picks the partition.
//
// Handlers run on the transport's goroutines, at most one at a time per
// Consumer. A handler may block (the worker's queue is bounded); a push
// transport then buffers what arrives, a pull transport fetches no more.
//
// # Stopping
//
// Consumer.Drain stops taking new messages, hands those already received
// to the handler and returns once the handler has returned for the last
// time, within a bounded wait. Conn.Drain drains what the Conn started and
// flushes what it published, within CloseTimeout; Conn.Close stops at once.
// Messages a member held unsettled when it stopped are, per transport, lost
// (core: at-most-once) or delivered again to another member.
package transport

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// Transport opens connections to one kind of broker. Implementations are
// stateless values, safe to share; each lives in a package of its own
// (pipelines/transport/core, ...), and pipelines/variants lists them.
type Transport interface {
	// Name is the transport's key in benchmark names, flags and
	// NATSPIPE_TRANSPORT: "core", "js".
	Name() string
	// AtLeastOnce reports whether the transport may deliver a message more
	// than once (a redelivery after a lost acknowledgement): then a
	// duplicate completion is expected, the sink keeps the first and counts
	// the rest, and duplicates do not make a run wrong.
	AtLeastOnce() bool
	// Open makes one process's connection to the broker. NATS transports
	// use env.NC; others dial their own broker.
	Open(ctx context.Context, env Env) (Conn, error)
}

// Environ is implemented by a transport whose worker processes need
// settings the harness holds: a broker's address found or started by the
// harness (a test's private RabbitMQ node). The fleet adds them to every
// worker's environment, never to its command line (they may hold
// credentials), and the worker's transport reads them at Open.
type Environ interface {
	// Environ returns "KEY=value" pairs; nil when there are none.
	Environ() []string
}

// Substitute is implemented by a transport that may be served by a stand-in
// rather than the broker its name says (Kafka by franz-go's in-process
// kfake): results and traces then carry the stand-in's name, so its
// timings are never read as the real broker's.
type Substitute interface {
	// Substitute names the stand-in ("kfake"); "" for the real broker.
	Substitute() string
}

// Env is what a transport is opened with.
type Env struct {
	// NC is the process's NATS connection (bus.Connect): the control plane
	// of every transport, and the data plane of NATS transports, which use
	// it rather than dial again. Its owner drains and closes it after the
	// Conn; Conn.Drain and Conn.Close stop only what the transport started
	// on it.
	NC *nats.Conn
	// NATS is how NC was made, for transports that dial on their own.
	NATS natsconn.Config
	// Name names this process to the broker (a worker's name, "p1").
	Name string
	// Faults receives asynchronous errors that break the run (a consumer
	// deleted, a broker connection lost). Never nil.
	Faults bus.Faulter
}

// Run describes one run's stages as the broker sees them.
type Run struct {
	// Subjects are the run's names; every broker object a transport
	// creates for the run is named under Subjects.Prefix, so runs sharing
	// a broker never meet.
	Subjects bus.Subjects
	// Stages is the number of stages, N.
	Stages int
	// Concurrency[i] is stage i's total concurrency: the sum over its
	// members of their ConsumeOptions.Limit (workers x concurrency). A pull
	// transport bounds the stage's unacknowledged messages with it
	// (JetStream: MaxAckPending). nil or 0: unbounded.
	Concurrency []int
}

// Done is the sink's destination: N.
func (r Run) Done() int { return r.Stages }

// Subject is destination i's subject: stage i's input, or the done
// subject for Done.
func (r Run) Subject(i int) string {
	if i >= r.Stages {
		return r.Subjects.Done()
	}
	return r.Subjects.Stage(i)
}

// Conn is one process's connection to the broker for one kind of
// transport. Its methods are safe for concurrent use.
type Conn interface {
	// Setup creates what run needs on the broker (JetStream: one stream
	// for the run's subjects and one durable consumer per stage and for the
	// sink); core: nothing. Called once per run, before any Consume or
	// Publish of the run. Setting up a run that exists with the same shape
	// is not an error.
	Setup(ctx context.Context, run Run) error
	// Teardown removes what Setup created, after the run's consumers have
	// stopped.
	Teardown(ctx context.Context, run Run) error
	// Publisher returns a publisher to destination to (0..run.Stages).
	Publisher(run Run, to int) (Publisher, error)
	// Consume joins this process to the group of destination stage (the
	// sink for run.Done()) as one member and calls h for every message the
	// broker gives it, until the Consumer is drained or stopped. It returns
	// once the broker has registered the member (a message published after
	// Consume returns reaches the group). ctx bounds that registration
	// only; the consumer lives until it is drained or stopped.
	Consume(ctx context.Context, run Run, stage int, opts ConsumeOptions, h Handler) (Consumer, error)
	// Drain stops every consumer of this Conn, lets their handlers finish,
	// and flushes what it published, within CloseTimeout.
	Drain() error
	// Close stops every consumer of this Conn at once.
	Close() error
}

// ConsumeOptions are one member's terms.
type ConsumeOptions struct {
	// Member names this member (a worker's name), for brokers that track
	// members.
	Member string
	// Limit is the most messages the member works on at once: 1 for a sync
	// worker, its concurrency for an async one, the in-flight limit or 1
	// for P2 and P1. 0: no limit. See the package doc for push and pull.
	Limit int
	// Shared says that other members (other processes) may join the
	// stage's group: P3/P4's workers. Core NATS then subscribes in the
	// stage's queue group; false, the member is the stage's only one (P1,
	// P2, the sink) and subscribes plainly.
	Shared bool
}

// Handler takes one delivery. It runs on the transport's goroutine; the
// delivery's Data is valid until it is settled.
type Handler func(d Delivery)

// Delivery is one message given to a member.
type Delivery struct {
	// Data is the message as published.
	Data []byte
	// Attempt is the delivery attempt: 1 the first, more for a
	// redelivery. At-most-once transports always give 1.
	Attempt int
	// Settler settles the delivery with the broker; nil when there is
	// nothing to settle (core NATS).
	Settler Settler
}

// Ack tells the broker the message is done with: its successor has been
// accepted (or the sink counted it).
func (d Delivery) Ack() error {
	if d.Settler == nil {
		return nil
	}
	return d.Settler.Ack()
}

// Reject tells the broker never to deliver the message again (JetStream:
// Term; RabbitMQ: reject without requeue), with the reason.
func (d Delivery) Reject(reason error) error {
	if d.Settler == nil {
		return nil
	}
	return d.Settler.Reject(reason)
}

// Release gives the message back unprocessed, for another delivery
// (JetStream: Nak; RabbitMQ: nack with requeue; Kafka: no commit).
func (d Delivery) Release() error {
	if d.Settler == nil {
		return nil
	}
	return d.Settler.Release()
}

// Settler settles one delivery with its broker. The router calls exactly
// one of its methods, once.
type Settler interface {
	Ack() error
	Reject(reason error) error
	Release() error
}

// Publisher publishes to one destination.
type Publisher interface {
	// Publish sends m and returns once the broker has accepted it as far
	// as the transport guarantees: core NATS, written to the connection
	// (at-most-once); JetStream, stored and acknowledged (PubAck), within
	// ctx. Only then may the caller acknowledge the delivery m came from.
	Publish(ctx context.Context, m Outgoing) error
}

// Outgoing is one message to publish.
type Outgoing struct {
	// Data is the message; the publisher does not keep it after Publish
	// returns.
	Data []byte
	// Key is the message's correlation ID ("" when unknown). A transport
	// that deduplicates derives the message's ID at this destination from
	// it (JetStream: Nats-Msg-Id = Key + "." + the destination's stage), so
	// a redelivered message that was already forwarded is stored once; a
	// partitioned broker partitions by it.
	Key string
}

// Consumer is one member's consumption of a destination.
type Consumer interface {
	// Pending is the number of messages the member has received from the
	// broker and not yet given to the handler.
	Pending() int
	// Drain stops taking new messages, gives those already received to the
	// handler and returns once the handler has returned for the last time,
	// or with an error after timeout.
	Drain(timeout time.Duration) error
	// Stop stops at once; what was received and not handled is not given
	// to the handler (and, per transport, lost or delivered again).
	Stop() error
}

// CloseTimeout bounds Conn.Drain.
const CloseTimeout = bus.CloseTimeout
