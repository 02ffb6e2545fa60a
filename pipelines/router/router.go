// Package router is natspipe's one stage router: a stage's receive ->
// Step.Process -> forward -> acknowledge, or reject, or fault, written once
// for every messaging variant and every transport (pipelines/transport).
//
// A variant says only how stage work is scheduled, as Options: Executors
// goroutines take received messages from one queue, in arrival order, and
// do their stage work.
//
//   - P1: one executor for every stage of the process, so while one stage
//     works every other waits, as in a single event loop (Executors 1).
//   - P2: an in-flight limit across the stages: Executors = inflight, a
//     fixed pool. A handler never waits for work (Block false).
//   - P3/P4: a worker serves one stage with its concurrency: 1 for a sync
//     worker, N for an async one; a full queue makes the transport wait
//     (Block true), never drops a message.
//
// The transport's handler only stamps the message's arrival and queues it;
// the stage records therefore show the time it waited for an executor.
package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transport"
)

// DefaultQueue is the queue's capacity when Options.Queue is 0: far above
// any window a run uses.
const DefaultQueue = 1 << 16

// Reporter is where the router reports: pipelines.Sink has these methods.
type Reporter interface {
	// Reject counts a message a stage refused (malformed, wrong stage).
	Reject(stage string, err error)
	// Fault reports an error that breaks the run (a result that cannot be
	// published, a queue that overflows).
	Fault(err error)
}

// Options configure a router.
type Options struct {
	// Name prefixes the router's errors, e.g. "p1" or a worker's name.
	Name string
	// Conn is the transport connection the router consumes and publishes on.
	Conn transport.Conn
	// Run is the run's stages on the broker.
	Run transport.Run
	// Steps are the stages this router serves (Step.Index says which), with
	// the worker name each stamps.
	Steps []pipelines.Step
	// Executors is the number of goroutines doing stage work: at most that
	// many messages are in stage work at once, over all of Steps. 0: 1.
	Executors int
	// Queue is the capacity of the queue between the transport and the
	// executors; 0: DefaultQueue.
	Queue int
	// Block says what a full queue does: true, the transport's handler
	// waits for room (the transport buffers, or stops fetching); false, the
	// message is given back (Delivery.Release) and a fault reported, so a
	// handler never waits for work.
	Block bool
	// Shared joins each stage's group as one of several members (P3/P4
	// workers); see transport.ConsumeOptions.
	Shared bool
	// Report receives rejections and faults.
	Report Reporter
	// Forwarding, when set, is called on the executor just before a result
	// is published, and Forwarded just after, with what Forwarding returned,
	// the message as the step left it (its record of the stage appended;
	// valid only during the call) and the publish's error: a worker counts
	// a message as handled before its result can reach the sink, and
	// uncounts it if the publish fails.
	Forwarding func() uint64
	Forwarded  func(n uint64, env *pipelines.Envelope, err error)
}

type task struct {
	slot    int // index into Options.Steps
	d       transport.Delivery
	arrived time.Time
}

// Router is a running stage router.
type Router struct {
	opts      Options
	pubs      []transport.Publisher // pubs[k]: where Steps[k]'s results go
	subs      []transport.Consumer
	queue     chan task
	ctx       context.Context // stage work; cancelled by Stop or a failed Drain
	cancel    context.CancelFunc
	executors sync.WaitGroup
	inWork    atomic.Int64
	stopOnce  sync.Once

	// The executors start as they are needed, up to Options.Executors:
	// another starts when a message is queued, none is idle and every
	// started executor is in stage work (one that is publishing takes the
	// message in a moment: starting more would only pile them onto the
	// connection's lock when stage work is short).
	idle     atomic.Int64 // executors waiting for a message
	running  atomic.Int64 // executors started
	working  atomic.Int64 // executors in stage work (Step.Process)
	full     atomic.Bool  // every executor has started, or the router is stopping
	growMu   sync.Mutex
	started  int  // executors started; under growMu
	stopping bool // no more executors start; under growMu
}

// Start subscribes the router to each of opts.Steps' stages through
// opts.Conn and starts its executors. It returns once the transport has
// registered every consumer.
func Start(ctx context.Context, opts Options) (*Router, error) {
	if opts.Conn == nil || opts.Report == nil || len(opts.Steps) == 0 {
		return nil, errors.New("router: needs a transport connection, a reporter and at least one step")
	}
	if opts.Executors < 0 || opts.Queue < 0 {
		return nil, fmt.Errorf("router %s: executors %d, queue %d: want >= 0", opts.Name, opts.Executors, opts.Queue)
	}
	if opts.Executors == 0 {
		opts.Executors = 1
	}
	if opts.Queue == 0 {
		opts.Queue = DefaultQueue
	}
	workCtx, cancel := context.WithCancel(context.Background())
	r := &Router{opts: opts, queue: make(chan task, opts.Queue), ctx: workCtx, cancel: cancel}
	for _, s := range opts.Steps {
		pub, err := opts.Conn.Publisher(opts.Run, s.Index+1)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("router %s: stage %s: %w", opts.Name, pipelines.StageName(s.Index), err)
		}
		r.pubs = append(r.pubs, pub)
	}
	for k, s := range opts.Steps {
		c, err := opts.Conn.Consume(ctx, opts.Run, s.Index, transport.ConsumeOptions{
			Member: s.Worker, Limit: opts.Executors, Shared: opts.Shared,
		}, r.receiver(k))
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("router %s: stage %s: consume: %w", opts.Name, pipelines.StageName(s.Index), err)
		}
		r.subs = append(r.subs, c)
	}
	r.grow()
	return r, nil
}

// grow starts another executor unless Executors have started or the
// router is stopping. At most Executors run, so at most that many messages
// are in stage work at once; starting them as they are needed (see
// needMore) keeps them from piling onto the connection's lock when the
// work is short.
func (r *Router) grow() {
	if r.full.Load() {
		return // the handlers' fast path: no lock once all have started
	}
	r.growMu.Lock()
	defer r.growMu.Unlock()
	if r.stopping || r.started >= r.opts.Executors {
		r.full.Store(true)
		return
	}
	r.started++
	r.running.Add(1)
	if r.started >= r.opts.Executors {
		r.full.Store(true)
	}
	r.executors.Add(1)
	go r.execute()
}

// needMore reports whether a queued message needs another executor: none
// is idle and every started one is in stage work, counting starting
// executors about to begin it.
func (r *Router) needMore(starting int64) bool {
	return !r.full.Load() && r.idle.Load() == 0 && r.working.Load()+starting >= r.running.Load()
}

// halt stops executors from starting, before the router waits for them.
func (r *Router) halt() {
	r.growMu.Lock()
	r.stopping = true
	r.growMu.Unlock()
}

// receiver is the transport's handler for Steps[slot]: stamp the arrival,
// queue the message.
func (r *Router) receiver(slot int) transport.Handler {
	if r.opts.Block {
		return func(d transport.Delivery) {
			select {
			case r.queue <- task{slot: slot, d: d, arrived: time.Now()}:
				if r.needMore(0) {
					r.grow()
				}
			case <-r.ctx.Done():
				r.settle(d.Release(), d)
			}
		}
	}
	name := pipelines.StageName(r.opts.Steps[slot].Index)
	return func(d transport.Delivery) {
		select {
		case r.queue <- task{slot: slot, d: d, arrived: time.Now()}:
			if r.needMore(0) {
				r.grow()
			}
		default:
			r.opts.Report.Fault(fmt.Errorf("%s: stage %s: executor queue full (%d messages)", r.opts.Name, name, cap(r.queue)))
			r.settle(d.Release(), d)
		}
	}
}

// execute is one executor: it takes queued messages until the queue is
// closed (Drain) or stage work is cancelled (Stop).
func (r *Router) execute() {
	defer r.executors.Done()
	var env pipelines.Envelope
	var out []byte
	for {
		var t task
		var ok bool
		r.idle.Add(1)
		select {
		case <-r.ctx.Done():
			r.idle.Add(-1)
			return
		case t, ok = <-r.queue:
			if !ok {
				r.idle.Add(-1)
				return
			}
		}
		// Messages left queued with no executor idle to take them: start
		// another, if the limit allows. (A sender that saw this executor
		// idle left the start to it.)
		if r.idle.Add(-1) == 0 && len(r.queue) > 0 && r.needMore(1) {
			r.grow()
		}
		r.inWork.Add(1)
		out = r.route(t, &env, out)
		r.inWork.Add(-1)
	}
}

// route does one message's stage: process, forward, settle. It returns
// the output buffer for reuse.
func (r *Router) route(t task, env *pipelines.Envelope, out []byte) []byte {
	ctx := r.ctx
	step := r.opts.Steps[t.slot]
	var err error
	r.working.Add(1)
	out, err = step.Process(ctx, t.d.Data, t.arrived, env, out)
	r.working.Add(-1)
	if err != nil {
		if ctx.Err() != nil {
			r.settle(t.d.Release(), t.d) // stopping: the work was cancelled
			return out
		}
		r.opts.Report.Reject(pipelines.StageName(step.Index), err)
		r.settle(t.d.Reject(err), t.d)
		return out
	}
	if w, ok := t.d.Settler.(workEnder); ok {
		w.WorkEnded()
	}
	var n uint64
	if r.opts.Forwarding != nil {
		n = r.opts.Forwarding()
	}
	err = r.pubs[t.slot].Publish(ctx, transport.Outgoing{Data: out, Key: env.ID})
	if r.opts.Forwarded != nil {
		r.opts.Forwarded(n, env, err)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.opts.Report.Fault(fmt.Errorf("%s: stage %s: seq %d: %w", r.opts.Name, pipelines.StageName(step.Index), env.Seq, err))
		}
		r.settle(t.d.Release(), t.d)
		return out
	}
	r.settle(t.d.Ack(), t.d)
	return out
}

// workEnder is a Settler that wants to know when stage work on its
// delivery has ended, before the forward is published and the delivery
// settled: a pull transport (pipelines/transport/js) then frees the
// member's slot and pulls its next message while the forward is
// acknowledged. The delivery is still settled exactly once afterwards.
type workEnder interface{ WorkEnded() }

// settle reports a failure to settle a delivery, unless the router is
// stopping (then the broker delivers it again, or, for core, there was
// nothing to settle).
func (r *Router) settle(err error, d transport.Delivery) {
	if err != nil && r.ctx.Err() == nil {
		r.opts.Report.Fault(fmt.Errorf("%s: settle a delivery (attempt %d): %w", r.opts.Name, d.Attempt, err))
	}
}

// Held is the number of messages the router holds: received by its
// consumers and not yet queued, queued, and in stage work.
func (r *Router) Held() int {
	n := len(r.queue) + int(r.inWork.Load())
	for _, c := range r.subs {
		n += c.Pending()
	}
	return n
}

// Stop stops the router at once: consumers stop, stage work in progress is
// cancelled (its deliveries released), and Stop waits for the executors.
// Queued messages are not worked on. Safe to call more than once.
func (r *Router) Stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		for _, c := range r.subs {
			_ = c.Stop()
		}
		r.halt()
		r.executors.Wait()
	})
}

// Drain stops taking new messages, lets every message the router holds
// through its stage and forwards the results, within timeout; past it,
// stage work is cancelled and Drain returns an error once the executors
// have returned.
func (r *Router) Drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, c := range r.subs {
		if err := c.Drain(time.Until(deadline)); err != nil {
			r.Stop()
			return fmt.Errorf("%s: %w", r.opts.Name, err)
		}
	}
	// Every handler has returned: nothing more goes into the queue.
	r.stopOnce.Do(func() {
		r.halt()
		close(r.queue)
		done := make(chan struct{})
		go func() { r.executors.Wait(); close(done) }()
		t := time.NewTimer(max(time.Until(deadline), time.Millisecond))
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			r.cancel()
			<-done
		}
	})
	if r.ctx.Err() != nil {
		return fmt.Errorf("%s: stage work not finished %v after the stop", r.opts.Name, timeout)
	}
	r.cancel()
	return nil
}
