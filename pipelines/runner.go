package pipelines

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
)

// Sender injects an encoded envelope into a pipeline's first stage.
type Sender interface {
	Send(ctx context.Context, msg []byte) error
}

// Sink receives what a running pipeline reports. Variants call it from any
// goroutine.
type Sink interface {
	// Complete takes a message that passed every stage, as received at time recv.
	Complete(msg []byte, recv time.Time)
	// Reject counts a message a stage refused (malformed, wrong stage); the
	// pipeline goes on.
	Reject(stage string, err error)
	// Fault reports an error that breaks the run (slow consumer, lost
	// connection, a stage that cannot publish). The run fails with it.
	Fault(err error)
}

// Arrivals is how an open-loop source spaces its messages.
type Arrivals string

const (
	// Fixed sends at exact 1/rate intervals.
	Fixed Arrivals = "fixed"
	// Poisson draws exponential intervals with mean 1/rate.
	Poisson Arrivals = "poisson"
)

// RunConfig configures a Runner.
type RunConfig struct {
	Spec    Spec
	Variant string // e.g. "p2", recorded in results and traces
	// Transport names the broker transport the run's messages went over
	// ("core", "js", "amqp", "kafka"), recorded in results and traces; ""
	// when there is none (P0).
	Transport string
	// Broker names what served the transport when it is not the broker its
	// name says: "kfake" for franz-go's in-process Kafka fake, whose timings
	// are not Kafka's. "" for the real broker.
	Broker string
	// Bound is the configuration's theoretical throughput in msgs/s, the
	// denominator of efficiency. +Inf or 0 when unknown.
	Bound float64
	// Window is the closed-loop window: messages in flight at most. 0: DefaultWindow.
	Window int
	// Rate, when > 0, makes the source open-loop: it sends at Rate msgs/s
	// with Arrivals spacing, whatever is in flight, and latency is measured
	// from each message's intended send time.
	Rate     float64
	Arrivals Arrivals
	Seed     uint64 // for Poisson arrivals
	// Timeout bounds a whole run. 0: derived from the bound and message count.
	Timeout time.Duration
	// AtLeastOnce says the transport may deliver a message more than once
	// (transport.Transport.AtLeastOnce): duplicate completions are then
	// counted and listed but do not make the run wrong.
	AtLeastOnce bool
	// LossTimeout declares a message lost when it has not come back this long
	// after it was sent (core NATS is at-most-once). 0: derived.
	LossTimeout time.Duration
	// Drain bounds how long a run its caller stops (Run's context done:
	// Ctrl-C) waits for the messages in flight to come back or be declared
	// lost, once its source has stopped. 0: the loss timeout, at most
	// DefaultDrain.
	Drain time.Duration
	// Progress, when set, is called with the run's progress every
	// ProgressInterval while it lasts, and once more as it ends with the
	// final counts (Progress.Done), the Result's own. The calls come from
	// one goroutine at a time, never after Run returns, and should return
	// quickly. The counts are sampled by a ticker of the run's own, so
	// sends and completions do no more work for it.
	Progress func(Progress)
}

// ProgressInterval is how often a run calls RunConfig.Progress.
const ProgressInterval = 200 * time.Millisecond

// DefaultDrain is the longest a run stopped by its caller waits, by
// default, for the messages in flight (RunConfig.Drain).
const DefaultDrain = 5 * time.Second

// ErrInterrupted is what the error of a run its caller stopped wraps (with
// the context's cause): the Result is partial, its Account.Interrupted.
var ErrInterrupted = errors.New("run interrupted")

// Runner drives messages through a pipeline and accounts for each one. It is
// the pipeline's Sink; one Runner serves many runs of the same pipeline, one
// at a time.
type Runner struct {
	cfg     RunConfig
	payload []byte

	mu  sync.Mutex
	run *runState // nil between runs
}

// Config is the runner's configuration.
func (r *Runner) Config() RunConfig { return r.cfg }

// Progress is how far the run in progress has got.
type Progress struct {
	N         int           // messages to send
	Sent      int           // handed to the sender
	Completed int           // came back (late ones included)
	Lost      int           // declared lost and not back (yet)
	Elapsed   time.Duration // since the first send
	// Done marks RunConfig.Progress's last call of a run: the counts are
	// the Result's (Completed, len(Lost)) and Elapsed its Elapsed.
	Done bool
}

// Progress reports the run in progress; the zero Progress between runs.
// It is safe to call from any goroutine while Run runs (a progress bar, a
// test waiting for a point in the run).
func (r *Runner) Progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run == nil {
		return Progress{}
	}
	return r.run.progress()
}

// progress is the run's Progress now; under the runner's lock.
func (st *runState) progress() Progress {
	p := Progress{N: st.n, Sent: st.sent, Completed: st.completed, Lost: st.lost}
	if !st.start.IsZero() {
		p.Elapsed = time.Since(st.start)
	}
	return p
}

// msgState is where one message of a run stands.
type msgState uint8

const (
	pending   msgState = iota // not sent, or sent and not back
	completed                 // came back within the loss timeout
	lost                      // declared lost, not back (yet)
	late                      // declared lost, then came back
)

type runState struct {
	n int
	// records[seq] holds the message's ID, seq and send time from its send
	// on, and all of it once it completes.
	records    []Record
	sentMono   []time.Time
	state      []msgState
	sent       int // messages handed to the sender
	completed  int // completed or late
	lost       int // in state lost
	late       int // in state late
	duplicates []uint64
	strays     []Stray
	nStrays    int
	// nDuplicates counts every duplicate; duplicates lists the first MaxListed.
	nDuplicates int
	rejected    int
	rejectErrs  []string
	redelivered map[string]int
	violations  []string
	incidents   []Incident
	recvMono    []time.Duration // completion times since start, in completion order
	start       time.Time
	slots       chan struct{}
	allDone     chan struct{}
	faulted     chan struct{}
	fault       error
	// drained, made when the caller stops the run (its source stopped, sent
	// final), closes once every message sent has settled.
	drained     chan struct{}
	drainedShut bool
}

// NewRunner checks cfg and fills in its defaults.
func NewRunner(cfg RunConfig) (*Runner, error) {
	if err := cfg.Spec.Validate(); err != nil {
		return nil, err
	}
	if cfg.Bound == 0 {
		cfg.Bound = math.Inf(1)
	}
	if cfg.Window < 0 {
		return nil, fmt.Errorf("runner: window %d < 0", cfg.Window)
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow(cfg.Spec, cfg.Bound)
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("runner: rate %v: want a finite rate >= 0", cfg.Rate)
	}
	switch cfg.Arrivals {
	case "":
		cfg.Arrivals = Fixed
	case Fixed, Poisson:
	default:
		return nil, fmt.Errorf("runner: arrivals %q: want %q or %q", cfg.Arrivals, Fixed, Poisson)
	}
	if cfg.LossTimeout == 0 {
		queue := time.Duration(0)
		if !math.IsInf(cfg.Bound, 1) {
			queue = time.Duration(float64(cfg.Window) / cfg.Bound * float64(time.Second))
		}
		cfg.LossTimeout = max(5*time.Second, 20*(cfg.Spec.Sum()+queue))
	}
	if cfg.Drain < 0 {
		return nil, fmt.Errorf("runner: drain %v < 0", cfg.Drain)
	}
	if cfg.Drain == 0 {
		cfg.Drain = min(cfg.LossTimeout, DefaultDrain)
	}
	payload := make([]byte, cfg.Spec.PayloadSize)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	return &Runner{cfg: cfg, payload: payload}, nil
}

// Run sends n messages through the pipeline via s and waits, within the
// timeout, until every one has completed or been declared lost. The result
// is returned even with an error, which says what went wrong: a fault, lost
// or duplicated messages, a stage that finished too soon, or the timeout.
//
// When ctx is done before that (the caller stops the run: Ctrl-C), the
// source stops (a send under way completes; no more start), the run waits
// at most RunConfig.Drain for the messages in flight to come back or be
// declared lost, and returns the partial result: its EndedBy says
// "interrupted: ...", the messages sent and not back are listed as in
// flight at the interrupt (Account.Unaccounted), those never sent are
// counted (Unsent), and the error wraps ErrInterrupted and ctx's cause.
// A ctx done after every message settled changes nothing.
func (r *Runner) Run(ctx context.Context, s Sender, n int) (*Result, error) {
	if n <= 0 {
		return nil, fmt.Errorf("run: %d messages: want at least 1", n)
	}
	timeout := r.cfg.Timeout
	if timeout == 0 {
		exp := expectedRun(r.cfg.Spec, r.cfg.Bound, n)
		if r.cfg.Rate > 0 {
			exp = max(exp, time.Duration(float64(n)/r.cfg.Rate*float64(time.Second)))
		}
		timeout = 3*exp + r.cfg.LossTimeout + 30*time.Second
	}
	// runCtx is the run's own bound, which the caller stopping the run does
	// not end: the messages in flight are still waited for (and the sends
	// under way completed) on it. srcCtx stops the source: at the bound, or
	// when the caller stops the run.
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	srcCtx, stopSource := context.WithCancel(runCtx)
	defer stopSource()
	unwatch := context.AfterFunc(ctx, stopSource)
	defer unwatch()

	st := &runState{
		n:        n,
		records:  make([]Record, n),
		sentMono: make([]time.Time, n),
		state:    make([]msgState, n),
		recvMono: make([]time.Duration, 0, n),
		slots:    make(chan struct{}, r.cfg.Window),
		allDone:  make(chan struct{}),
		faulted:  make(chan struct{}),
	}
	r.mu.Lock()
	if r.run != nil {
		r.mu.Unlock()
		return nil, errors.New("run: another run is in progress on this runner")
	}
	r.run = st
	st.start = time.Now() // under the lock: Progress reads it
	r.mu.Unlock()

	lossDone := make(chan struct{})
	lossCtx, stopLoss := context.WithCancel(runCtx)
	go func() {
		defer close(lossDone)
		r.detectLoss(lossCtx, st)
	}()
	defer func() { stopLoss(); <-lossDone }()
	stopProgress := r.reportProgress(st)
	defer stopProgress()

	sendErr := r.send(ctx, srcCtx, runCtx, s, st)
	var waitErr error
	stopped := false // by the caller
	if sendErr == nil {
		select {
		case <-st.allDone:
		case <-st.faulted:
		case <-runCtx.Done():
			waitErr = runCtx.Err()
		case <-ctx.Done():
			stopped = true
		}
	}
	if stopped {
		waitErr = r.drain(runCtx, st)
	}
	stopLoss()
	<-lossDone
	stopProgress()
	end := time.Now()

	r.mu.Lock()
	// Nothing reaches st, whose records the result shares, after this.
	r.run = nil
	interrupted := stopped && st.settled() < st.n
	res := r.result(st, end)
	final := Progress{N: st.n, Sent: st.sent, Completed: st.completed, Lost: st.lost, Elapsed: res.Elapsed, Done: true}
	r.mu.Unlock()
	if r.cfg.Progress != nil {
		r.cfg.Progress(final)
	}
	var cause error
	switch {
	case st.fault != nil:
		cause, res.EndedBy = st.fault, "fault: "+st.fault.Error()
	case sendErr != nil:
		cause, res.EndedBy = sendErr, "send failed: "+sendErr.Error()
	case waitErr != nil:
		cause, res.EndedBy = waitErr, fmt.Sprintf("timeout: gave up after %v", timeout)
	case interrupted:
		why := context.Cause(ctx)
		cause = fmt.Errorf("%w: %w", ErrInterrupted, why)
		res.EndedBy = fmt.Sprintf("%s: %v; the source stopped after %d of %d messages, and the messages in flight had %v to come back",
			endedInterrupted, why, st.sent, st.n, r.cfg.Drain)
	}
	err := res.Err()
	if cause != nil {
		err = &endError{err: err, cause: cause}
	}
	return res, err
}

// drain waits, once the caller has stopped the run and its source, until
// every message sent has come back or been declared lost, at most the
// drain bound; or until a fault, or the run's own bound (its error).
func (r *Runner) drain(ctx context.Context, st *runState) error {
	r.mu.Lock()
	st.drained = make(chan struct{})
	st.checkDrainedLocked()
	r.mu.Unlock()
	t := time.NewTimer(r.cfg.Drain)
	defer t.Stop()
	select {
	case <-st.drained:
	case <-st.faulted:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// checkDrainedLocked closes drained, when the run drains, once every
// message sent has settled.
func (st *runState) checkDrainedLocked() {
	if st.drained != nil && !st.drainedShut && st.settled() >= st.sent {
		close(st.drained)
		st.drainedShut = true
	}
}

// reportProgress calls RunConfig.Progress every ProgressInterval from a
// goroutine of its own until the returned stop (idempotent) is called, which
// returns once that goroutine has.
func (r *Runner) reportProgress(st *runState) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			r.mu.Lock()
			p := st.progress()
			r.mu.Unlock()
			r.cfg.Progress(p)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// endError is the error of a run that ended early: its message is the
// result's whole account, and it wraps the cause (a fault, a context error).
type endError struct{ err, cause error }

func (e *endError) Error() string { return e.err.Error() }
func (e *endError) Unwrap() error { return e.cause }

// send sends the run's messages: each when a window slot is free (closed
// loop) or at its intended time (open loop), until all are sent, the run
// faults, or src is done. src is done when run is (the run's bound) or
// caller is (the caller stopping the source: send returns nil); caller is
// checked too before each message, as src follows it a moment later. Each
// send itself goes on run, so one under way completes.
func (r *Runner) send(caller, src, run context.Context, s Sender, st *runState) error {
	// stopped is nil when the caller stopped the source, else err.
	stopped := func(err error) error {
		if run.Err() == nil {
			return nil
		}
		return err
	}
	var rng *rand.Rand
	if r.cfg.Arrivals == Poisson {
		rng = rand.New(rand.NewPCG(r.cfg.Seed, r.cfg.Seed^0x9e3779b97f4a7c15))
	}
	env := Envelope{Payload: r.payload}
	var buf []byte
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var offset time.Duration
	for i := 0; i < st.n; i++ {
		if err := cmp.Or(caller.Err(), src.Err()); err != nil {
			return stopped(fmt.Errorf("source at message %d of %d: %w", i, st.n, err))
		}
		var intended time.Time
		if r.cfg.Rate > 0 {
			if i > 0 {
				mean := float64(time.Second) / r.cfg.Rate
				if rng != nil {
					offset += time.Duration(rng.ExpFloat64() * mean)
				} else {
					offset = time.Duration(float64(i) * mean)
				}
			}
			intended = st.start.Add(offset)
			if err := r.pace(src, st, intended, &timer); err != nil {
				return stopped(fmt.Errorf("open-loop source at message %d of %d: %w", i, st.n, err))
			}
			if st.isFaulted() {
				return nil
			}
		} else {
			select {
			case st.slots <- struct{}{}:
			case <-st.faulted:
				return nil
			case <-src.Done():
				return stopped(fmt.Errorf("source waiting for a window slot at message %d of %d: %w", i, st.n, src.Err()))
			}
		}
		env.ID, env.Seq = nuid.Next(), uint64(i)
		now := time.Now()
		if r.cfg.Rate == 0 {
			intended = now // closed loop: meant to go as soon as a slot was free
		}
		env.Sent = Stamp(now)
		r.mu.Lock()
		st.sentMono[i] = now
		st.records[i] = Record{Envelope: Envelope{ID: env.ID, Seq: env.Seq, Sent: env.Sent}, Intended: Stamp(intended)}
		st.sent = i + 1
		r.mu.Unlock()
		var err error
		if buf, err = env.Append(buf[:0]); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if err := s.Send(run, buf); err != nil {
			return fmt.Errorf("source: send seq %d: %w", i, err)
		}
	}
	return nil
}

// pace waits until intended: on a Go timer until preciseTail before it, then
// with the precise sleep stage work uses (about 0.1 ms late, holding no
// CPU). Go timers alone wake 0.3 to 1 ms late here, which would clump short
// Poisson intervals together and add queueing the formulas don't have.
func (r *Runner) pace(ctx context.Context, st *runState, intended time.Time, timer **time.Timer) error {
	if wait := time.Until(intended) - preciseTail; wait > 0 {
		if *timer == nil {
			*timer = time.NewTimer(wait)
		} else {
			(*timer).Reset(wait)
		}
		select {
		case <-(*timer).C:
		case <-st.faulted:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	preciseSleepUntil(intended, 0)
	return nil
}

func (st *runState) isFaulted() bool {
	select {
	case <-st.faulted:
		return true
	default:
		return false
	}
}

// detectLoss declares lost the messages that have been out longer than the
// loss timeout, freeing their window slots.
func (r *Runner) detectLoss(ctx context.Context, st *runState) {
	tick := time.NewTicker(max(r.cfg.LossTimeout/10, 10*time.Millisecond))
	defer tick.Stop()
	oldest := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		for ; oldest < st.n; oldest++ {
			if st.state[oldest] != pending {
				continue
			}
			sent := st.sentMono[oldest]
			if sent.IsZero() || time.Since(sent) < r.cfg.LossTimeout {
				break
			}
			st.state[oldest] = lost
			st.lost++
			r.accountLocked(st)
		}
		r.mu.Unlock()
	}
}

// settled counts the messages completed (late included) or declared lost.
func (st *runState) settled() int { return st.completed + st.lost }

// accountLocked follows one message settling, completed or lost.
func (r *Runner) accountLocked(st *runState) {
	if r.cfg.Rate == 0 {
		select {
		case <-st.slots:
		default:
		}
	}
	if st.settled() == st.n {
		close(st.allDone)
	}
	st.checkDrainedLocked()
}

// Complete implements Sink.
func (r *Runner) Complete(msg []byte, recv time.Time) {
	var env Envelope
	decodeErr := env.Decode(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.run
	if st == nil {
		return // no run is waiting for it
	}
	if decodeErr != nil {
		st.rejected++
		r.noteReject(st, fmt.Sprintf("sink: decode: %v", decodeErr))
		return
	}
	if env.Seq >= uint64(st.n) || env.ID == "" || st.records[env.Seq].ID != env.ID {
		st.nStrays++
		if len(st.strays) < MaxListed {
			st.strays = append(st.strays, Stray{ID: env.ID, Seq: env.Seq})
		}
		return
	}
	seq := env.Seq
	switch st.state[seq] {
	case completed, late:
		st.nDuplicates++
		if len(st.duplicates) < MaxListed {
			st.duplicates = append(st.duplicates, seq)
		}
		return
	case lost:
		// Declared lost, then came back: late, not lost. Its window slot
		// was freed when it was declared lost, and it stays settled.
		st.state[seq] = late
		st.lost--
		st.late++
	default:
		st.state[seq] = completed
	}
	st.completed++
	env.Payload = nil
	rec := &st.records[seq]
	rec.Envelope = env
	rec.Received = Stamp(recv)
	st.recvMono = append(st.recvMono, recv.Sub(st.start))
	r.check(st, &env)
	if st.state[seq] == completed {
		r.accountLocked(st)
	}
}

// check records what is wrong with a completed message.
func (r *Runner) check(st *runState, env *Envelope) {
	const maxViolations = 20
	add := func(format string, args ...any) {
		if len(st.violations) < maxViolations {
			st.violations = append(st.violations, fmt.Sprintf(format, args...))
		} else if len(st.violations) == maxViolations {
			st.violations = append(st.violations, "more violations not shown")
		}
	}
	want := r.cfg.Spec.Stages()
	if len(env.Stages) != want {
		add("seq %d (%s): %d stage records, want %d", env.Seq, env.ID, len(env.Stages), want)
		return
	}
	for i, rec := range env.Stages {
		if d, least := time.Duration(rec.Finished-rec.Started), r.cfg.Spec.MinWork(i, time.Duration(rec.Drawn)); d < least {
			add("seq %d (%s): stage %s worked %v, less than its %v", env.Seq, env.ID, StageName(i), d, least)
		}
		if i > 0 && rec.Arrived < env.Stages[i-1].Finished {
			add("seq %d (%s): stage %s arrived %v before stage %s finished", env.Seq, env.ID, StageName(i), time.Duration(env.Stages[i-1].Finished-rec.Arrived), StageName(i-1))
		}
	}
}

// Reject implements Sink.
func (r *Runner) Reject(stage string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run == nil {
		return // no run is waiting for it
	}
	r.run.rejected++
	r.noteReject(r.run, fmt.Sprintf("%s: %v", stage, err))
}

func (r *Runner) noteReject(st *runState, msg string) {
	if len(st.rejectErrs) < 10 {
		st.rejectErrs = append(st.rejectErrs, msg)
	}
}

// RedeliverySink is a Sink that counts redeliveries: the deliveries of a
// message, by an at-least-once transport, after its first (JetStream
// redelivers what a dead member did not acknowledge within AckWait).
type RedeliverySink interface {
	// Redelivered counts one redelivery at stage ("S2", or "done" for the
	// sink's own input).
	Redelivered(stage string)
}

// Redelivered implements RedeliverySink for the run in progress.
func (r *Runner) Redelivered(stage string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.run
	if st == nil {
		return
	}
	if st.redelivered == nil {
		st.redelivered = map[string]int{}
	}
	st.redelivered[stage]++
}

// Fault implements Sink.
func (r *Runner) Fault(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.run
	if st == nil || st.fault != nil {
		return
	}
	st.fault = err
	close(st.faulted)
}

// Incident implements IncidentSink: it records what happened to a worker
// in the run in progress (dropped between runs).
func (r *Runner) Incident(in Incident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.run
	if st == nil {
		return
	}
	if len(st.incidents) < MaxListed {
		st.incidents = append(st.incidents, in)
	}
}

// MaxListed bounds the duplicates, strays and incidents a Result lists one
// by one. The counts of duplicates and strays are always exact; incidents
// (deaths and unresponsive spells of workers, a handful in any real run)
// past MaxListed are dropped.
const MaxListed = 1000

// seqList formats seqs ascending as "seq 3, 7, 12 ... (n more)", at most
// show of them (all when show <= 0).
func seqList(seqs []uint64, show int) string {
	seqs = append([]uint64(nil), seqs...)
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var b strings.Builder
	b.WriteString("seq ")
	for i, s := range seqs {
		if show > 0 && i == show {
			fmt.Fprintf(&b, " ... (%d more)", len(seqs)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, s)
	}
	return b.String()
}
