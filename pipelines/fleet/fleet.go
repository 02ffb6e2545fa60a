// Package fleet is the harness's side of the distributed variants P3 and
// P4: it launches the worker processes (package worker) that serve a
// pipeline's stages, waits until every one is ready, supervises them while
// a run goes on (unexpected exits, liveness checks, incidents), asks for
// their counts and stops them, stage by stage.
//
// Beside Fleet it holds what the harness computes about a fleet: each
// worker's share of its stage's messages (Shares, Imbalance), a fleet's
// throughput bound (Capacity) and closed-loop window (Window), and the
// subscription that counts the redeliveries workers report
// (SubscribeRedeliveries). The wire protocol it speaks with its workers,
// subjects and JSON messages, is package worker's.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Fleet defaults.
const (
	// DefaultReadyTimeout bounds starting a fleet: every worker process
	// started, connected, subscribed and announced.
	DefaultReadyTimeout = 30 * time.Second
	// DefaultStopTimeout bounds each stage's stop: drain and reply.
	DefaultStopTimeout = 15 * time.Second
	// statsTimeout bounds a stats request's replies.
	statsTimeout = 5 * time.Second
	// stopGrace is how long workers get to exit after their stop replies,
	// before they are killed.
	stopGrace = 10 * time.Second
)

// Launcher says how to start a worker process: an executable that runs
// worker.Main on the worker flags appended to Args.
type Launcher struct {
	Path string
	Args []string // before the worker flags
	Env  []string // added to the harness's environment
}

// Self returns a launcher that re-executes the running binary with
// worker.EnvChild=1: a test binary whose TestMain calls worker.Dispatch, so
// tests and benchmarks need no build step.
func Self() (Launcher, error) {
	exe, err := os.Executable()
	if err != nil {
		return Launcher{}, fmt.Errorf("worker launcher: find own executable: %w", err)
	}
	return Launcher{Path: exe, Env: []string{worker.EnvChild + "=1"}}, nil
}

// Command returns a launcher for a natspipe-worker binary at path.
func Command(path string) Launcher { return Launcher{Path: path} }

// WorkerID names one worker of a fleet.
type WorkerID struct {
	Stage int    // 0-based stage
	Index int    // 0-based among the stage's workers
	Name  string // e.g. "p4-S2-w3"
}

// WorkerName is the conventional name of worker j (0-based) of stage i in a
// variant: "p4-S2-w3".
func WorkerName(variant string, stage, j int) string {
	return fmt.Sprintf("%s-%s-w%d", variant, pipelines.StageName(stage), j+1)
}

// Config configures a fleet of worker processes.
type Config struct {
	Processes
	Spec pipelines.Spec
	// Alloc is the number of worker processes per stage; nil: one each.
	Alloc []int
	// Variant prefixes worker names, e.g. "p4".
	Variant string
}

// Processes is what a fleet's worker processes share: the server they
// connect to, their mode, how they are launched and how long the fleet
// waits for them. P3's and P4's options are built on it.
type Processes struct {
	// NATS is how the harness and every worker connect. Workers get it
	// through their environment (natsconn.Config.Environ), never their
	// command line, where any user could read a password.
	NATS     natsconn.Config
	Subjects bus.Subjects // the pipeline's subjects
	// Mode is every worker's mode; "": sync.
	Mode worker.Mode
	// Concurrency is an async worker's messages in work at once; 0:
	// worker.DefaultConcurrency.
	Concurrency int
	// Launcher starts worker processes (Self in tests).
	Launcher Launcher
	// ReadyTimeout bounds the start: every worker ready; 0: default.
	ReadyTimeout time.Duration
	// StopTimeout bounds each stage's drain on Stop; 0: default.
	StopTimeout time.Duration
	// Env, when set, gives extra environment for one worker (tests).
	Env func(WorkerID) []string
	// Stderr, when set, receives a copy of every worker's stderr; nil keeps only tails.
	Stderr io.Writer
	// OnWorkerExit is what happens when a worker exits without being asked
	// to; "": Continue.
	OnWorkerExit ExitPolicy
	// Transport is the broker's transport every worker uses; nil: core
	// NATS. The fleet sets the run up on it before starting the workers
	// (with each stage's total concurrency) and tears it down on Close.
	Transport transport.Transport
	// Liveness is how long a worker may leave liveness requests
	// unanswered, or hold messages without progress, before it is reported
	// unresponsive (or stuck); 0: DefaultLiveness, < 0: no checks.
	Liveness time.Duration
	// Attach makes Start attach to workers that are already running
	// (started by hand, by a Compose stack, on other machines) instead of
	// starting processes: see Attach. Launcher, Env, Stderr and
	// OnWorkerExit are then unused.
	Attach bool
	// StopAttached makes an attached fleet's Close stop its workers as a
	// started fleet's does; by default they are left running, for they
	// belong to whoever started them.
	StopAttached bool
}

// Fleet is the harness's side of a set of worker processes serving a
// pipeline: it starts them, waits until all are ready, watches them, asks
// for their counts, and stops them.
//
// A worker that exits without having been asked to (a crash, a kill from
// outside) is kept as Err, so a run that starts later can refuse to, and
// handled as Processes.OnWorkerExit says: by default the run goes on with
// the stage's other workers and the death is reported to the sink as an
// incident (pipelines.IncidentSink, e.g. a pipelines.Runner); with Fail,
// or when the stage has no worker left, or when the sink takes no
// incidents, it is a fault of the run (Sink.Fault).
//
// While it runs, the fleet checks that every worker answers liveness
// requests and makes progress while it holds messages (see
// Processes.Liveness), and reports to the sink as incidents the workers
// that stop answering or progressing, and when they come back.
type Fleet struct {
	cfg       Config
	faults    bus.Faulter
	incidents pipelines.IncidentSink // nil when the sink takes none
	stopLive  func()                 // stops the liveness checks
	haltOnce  sync.Once
	nc        *nats.Conn
	conn      transport.Conn // the fleet's transport connection: set-up and teardown
	run       transport.Run
	group     *procs.Group
	ids       []WorkerID
	procs     map[string]*procs.Proc
	startup   time.Duration
	early     chan *procs.Exit // unexpected exits, for the readiness wait

	attached bool // Attach's: the workers are not this fleet's processes

	mu      sync.Mutex
	err     error
	stopped bool
	closed  bool
	live    map[string]*liveness // by worker name; nil without checks
}

// fill checks cfg and fills its defaults; launch says the fleet starts
// the worker processes (Start), which needs a launcher.
func (cfg *Config) fill(launch bool) error {
	if err := cfg.Spec.Validate(); err != nil {
		return err
	}
	n := cfg.Spec.Stages()
	if cfg.Alloc == nil {
		cfg.Alloc = slices.Repeat([]int{1}, n)
	}
	if len(cfg.Alloc) != n {
		return fmt.Errorf("allocation %v has %d stages, the pipeline %d", cfg.Alloc, len(cfg.Alloc), n)
	}
	for i, w := range cfg.Alloc {
		if w < 1 {
			return fmt.Errorf("allocation %v: stage %s has %d workers, want at least 1", cfg.Alloc, pipelines.StageName(i), w)
		}
	}
	if cfg.Mode == "" {
		cfg.Mode = worker.Sync
	}
	if cfg.OnWorkerExit == "" {
		cfg.OnWorkerExit = Continue
	}
	if _, err := ParseExitPolicy(string(cfg.OnWorkerExit)); err != nil {
		return err
	}
	probe := worker.Config{Spec: cfg.Spec, Subjects: cfg.Subjects, Mode: cfg.Mode, Concurrency: cfg.Concurrency, Name: "probe"}
	if err := probe.Validate(); err != nil {
		return err
	}
	if cfg.Variant == "" {
		cfg.Variant = "w"
	}
	if launch && cfg.Launcher.Path == "" {
		return errors.New("no worker launcher")
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	return nil
}

// Start starts cfg.Alloc[i] worker processes for each stage i and
// returns once every one has announced readiness (its queue subscription is
// registered with the server), so messages sent afterwards find every
// worker. Worker faults go to sink.Fault, the messages workers refuse to
// sink.Reject, incidents (deaths the run survives, unresponsive workers)
// to sink.Incident if sink is a pipelines.IncidentSink; sink may be nil. On
// error every process started has been killed. With cfg.Attach it starts
// none and attaches to running workers instead (Attach).
func Start(ctx context.Context, cfg Config, sink pipelines.Sink) (*Fleet, error) {
	if cfg.Attach {
		return Attach(ctx, cfg, sink)
	}
	if err := cfg.fill(true); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	begin := time.Now()
	f := newFleet(cfg, sink)
	for i, w := range cfg.Alloc {
		for j := range w {
			f.ids = append(f.ids, WorkerID{Stage: i, Index: j, Name: WorkerName(cfg.Variant, i, j)})
		}
	}
	f.early = make(chan *procs.Exit, len(f.ids))

	ready, unsubscribe, err := f.connect(ctx, sink, len(f.ids))
	if err != nil {
		return nil, err
	}
	defer unsubscribe()

	f.group = procs.NewGroup(f.unexpected)
	fail := func(err error) (*Fleet, error) {
		_ = f.group.Close()
		_ = f.teardown()
		f.nc.Close()
		return nil, fmt.Errorf("fleet %s: %w", cfg.Variant, err)
	}
	// The connection settings and what the transport's workers need (a
	// broker's address) go in the environment, never the command line.
	base := childEnv(append(append(slices.Clip(cfg.Launcher.Env), cfg.NATS.Environ()...), transports.Environ(cfg.Transport)...))
	for _, id := range f.ids {
		env := base
		if cfg.Env != nil {
			env = append(slices.Clip(base), cfg.Env(id)...)
		}
		p, err := f.group.Start(procs.Spec{
			Name:     id.Name,
			Path:     cfg.Launcher.Path,
			Args:     append(slices.Clip(cfg.Launcher.Args), f.flags(id)...),
			Env:      env,
			Stderr:   cfg.Stderr,
			Lifeline: true,
		})
		if err != nil {
			return fail(err)
		}
		f.procs[id.Name] = p
	}

	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	waiting := map[string]bool{}
	for _, id := range f.ids {
		waiting[id.Name] = true
	}
	for len(waiting) > 0 {
		select {
		case s := <-ready:
			delete(waiting, s.Name)
		case e := <-f.early:
			return fail(fmt.Errorf("worker %s exited before it was ready: %w", e.Name, e))
		case <-timer.C:
			return fail(fmt.Errorf("%d of %d workers not ready after %v: %s", len(waiting), len(f.ids), cfg.ReadyTimeout, f.describe(waiting)))
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for %d workers to be ready: %w", len(waiting), ctx.Err()))
		}
	}
	f.startup = time.Since(begin)
	if err := f.startLiveness(); err != nil {
		return fail(err)
	}
	return f, nil
}

func newFleet(cfg Config, sink pipelines.Sink) *Fleet {
	f := &Fleet{cfg: cfg, procs: map[string]*procs.Proc{}}
	if sink != nil {
		f.faults = sink
		f.incidents, _ = sink.(pipelines.IncidentSink)
	}
	return f
}

// connect makes the fleet's connection, subscribes to the workers'
// readiness announcements (on the channel it returns, which keeps up to
// announcements of them), rejections and redeliveries, and sets the run
// up on the transport. unsubscribe ends the announcements.
func (f *Fleet) connect(ctx context.Context, sink pipelines.Sink, announcements int) (ready <-chan worker.Stats, unsubscribe func(), err error) {
	cfg := f.cfg
	nc, err := bus.Connect(cfg.NATS, cfg.Variant+"-fleet", f.faults)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet %s: %w", cfg.Variant, err)
	}
	f.nc = nc
	rc := make(chan worker.Stats, announcements)
	sub, err := nc.Subscribe(worker.ReadySubject(cfg.Subjects), func(m *nats.Msg) {
		var s worker.Stats
		if json.Unmarshal(m.Data, &s) == nil {
			select {
			case rc <- s:
			default:
			}
		}
	})
	if err == nil && sink != nil {
		_, err = bus.Subscribe(nc, worker.RejectSubject(cfg.Subjects), "", func(m *nats.Msg) {
			var r worker.Reject
			if json.Unmarshal(m.Data, &r) == nil {
				sink.Reject(r.Stage, fmt.Errorf("worker %s: %s", r.Worker, r.Error))
			}
		})
	}
	if rs, ok := sink.(pipelines.RedeliverySink); ok && err == nil {
		_, err = SubscribeRedeliveries(nc, cfg.Subjects, rs)
	}
	if err == nil {
		err = nc.FlushTimeout(bus.ConnectTimeout)
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("fleet %s: subscribe to control subjects: %w", cfg.Variant, err)
	}
	if err := f.setup(ctx); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("fleet %s: %w", cfg.Variant, err)
	}
	return rc, func() { _ = sub.Unsubscribe() }, nil
}

// exited reports whether the named worker is a process of the fleet's that
// has exited; an attached worker's exit is never seen (the liveness checks
// name it unresponsive instead).
func (f *Fleet) exited(name string) bool {
	p, ok := f.procs[name]
	return ok && p.Exit() != nil
}

// flags are the worker flags for id. The connection settings are not among
// them: they go in the environment (see Start).
func (f *Fleet) flags(id WorkerID) []string {
	c := f.cfg
	args := []string{
		"-stage", pipelines.StageName(id.Stage),
		"-prefix", c.Subjects.Prefix,
		"-durations", c.Spec.TimesString(),
		"-seed", strconv.FormatUint(c.Spec.Seed, 10),
		"-work", string(c.Spec.Work),
		"-mode", string(c.Mode),
		"-name", id.Name,
		"-ready-timeout", c.ReadyTimeout.String(),
		"-drain-timeout", c.StopTimeout.String(),
		"-transport", transports.OrDefault(c.Transport).Name(),
		// For the workers' micro service metadata (nats micro info).
		"-variant", c.Variant,
	}
	if c.Mode == worker.Async && c.Concurrency > 0 {
		args = append(args, "-concurrency", strconv.Itoa(c.Concurrency))
	}
	if len(f.run.Concurrency) > 0 {
		cs := make([]string, len(f.run.Concurrency))
		for i, n := range f.run.Concurrency {
			cs[i] = strconv.Itoa(n)
		}
		args = append(args, "-run-concurrency", strings.Join(cs, ","))
	}
	var sd []string
	for i, d := range c.Spec.Slowdown {
		if d > 0 {
			sd = append(sd, pipelines.StageName(i)+"="+d.String())
		}
	}
	// Always given, so a worker never takes NATSPIPE_SLOWDOWN from the
	// environment behind the spec's back.
	return append(args, "-slowdown", strings.Join(sd, ","))
}

// childEnv is the harness's environment without the variables that steer
// test binaries, plus extra.
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == worker.EnvChild || k == worker.EnvCrash || k == procs.EnvLifeline {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// describe names the workers in set with their state and stderr tails.
func (f *Fleet) describe(set map[string]bool) string {
	var parts []string
	for _, id := range f.ids {
		if !set[id.Name] {
			continue
		}
		p := f.procs[id.Name]
		state := fmt.Sprintf("pid %d running", p.PID())
		if e := p.Exit(); e != nil {
			state = fmt.Sprintf("pid %d %s", p.PID(), e.Status())
		}
		tail := strings.TrimSpace(p.Tail())
		if tail == "" {
			tail = "(stderr empty)"
		}
		parts = append(parts, fmt.Sprintf("%s (%s): %s", id.Name, state, tail))
	}
	return strings.Join(parts, "; ")
}

// unexpected handles a worker's exit nobody asked for, as the exit policy
// says.
func (f *Fleet) unexpected(e *procs.Exit) {
	select {
	case f.early <- e:
	default:
	}
	err := fmt.Errorf("%s: worker %s died: %w", f.cfg.Variant, e.Name, e)
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	if f.faults == nil {
		return
	}
	stage := -1
	for _, id := range f.ids {
		if id.Name == e.Name {
			stage = id.Stage
		}
	}
	switch {
	case f.cfg.OnWorkerExit == Fail || f.incidents == nil:
		f.faults.Fault(err)
	case stage >= 0 && len(f.alive(stage)) == 0:
		f.faults.Fault(fmt.Errorf("%w; stage %s has no worker left", err, pipelines.StageName(stage)))
	default:
		f.incident(pipelines.Incident{At: time.Now(), Worker: e.Name, Kind: pipelines.WorkerDied, Held: f.held(e.Name), Detail: e.Error()})
	}
}

// Err is the first unexpected worker exit, nil if none.
func (f *Fleet) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Startup is how long the fleet took to start: from Start's call until
// every worker was ready.
func (f *Fleet) Startup() time.Duration { return f.startup }

// Workers lists the fleet's workers in stage order.
func (f *Fleet) Workers() []WorkerID { return append([]WorkerID(nil), f.ids...) }

// PID is the process id (and process group id) of the named worker, 0 if
// there is none.
func (f *Fleet) PID(name string) int {
	if p, ok := f.procs[name]; ok {
		return p.PID()
	}
	return 0
}

// Kill kills the named worker with SIGKILL as a deliberate act: its exit is
// not a fault. It returns once the worker has been reaped.
func (f *Fleet) Kill(name string) (*procs.Exit, error) {
	p, ok := f.procs[name]
	if !ok {
		return nil, fmt.Errorf("fleet %s: no worker %q", f.cfg.Variant, name)
	}
	e, err := p.Kill()
	if err != nil {
		return nil, fmt.Errorf("fleet %s: kill %s: %w", f.cfg.Variant, name, err)
	}
	return e, nil
}

// alive lists the names of the workers of stage (all stages when stage < 0)
// that have not exited.
func (f *Fleet) alive(stage int) map[string]bool {
	m := map[string]bool{}
	for _, id := range f.ids {
		if (stage < 0 || id.Stage == stage) && !f.exited(id.Name) && !(f.attached && f.silent(id.Name)) {
			m[id.Name] = true
		}
	}
	return m
}

// request publishes a request on subject and collects the Stats replies of
// the workers in want, until all have replied, have exited, or timeout.
// It returns the replies and the names that gave none.
func (f *Fleet) request(ctx context.Context, subject string, want map[string]bool, timeout time.Duration) (map[string]worker.Stats, []string, error) {
	got := map[string]worker.Stats{}
	if len(want) == 0 {
		return got, nil, nil
	}
	inbox := f.nc.NewRespInbox()
	sub, err := f.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := bus.Unlimit(sub); err != nil {
		return nil, nil, err
	}
	if err := f.nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, nil, fmt.Errorf("request on %s: %w", subject, err)
	}
	take := func(m *nats.Msg) error {
		var s worker.Stats
		if err := json.Unmarshal(m.Data, &s); err != nil {
			return fmt.Errorf("reply on %s: %w", subject, err)
		}
		if want[s.Name] {
			got[s.Name] = s
		}
		return nil
	}
	deadline := time.Now().Add(timeout)
	// A worker that replies and then exits (a stop) can be seen gone before
	// its reply is read. The reply reached the server before the worker
	// exited, so one round trip with the server (a flush) after the exit
	// was seen brings it into sub's queue; what is not there then never
	// comes.
	flushed := map[string]bool{}
	for {
		missing := 0
		var exited []string
		for name := range want {
			if _, ok := got[name]; ok {
				continue
			}
			if f.exited(name) {
				if !flushed[name] {
					exited = append(exited, name)
				}
				continue
			}
			missing++
		}
		if len(exited) > 0 {
			_ = f.nc.FlushTimeout(max(time.Until(deadline), 100*time.Millisecond))
			for _, name := range exited {
				flushed[name] = true
			}
			for {
				if n, _, err := sub.Pending(); err != nil || n == 0 {
					break
				}
				m, err := sub.NextMsg(100 * time.Millisecond)
				if err != nil {
					break
				}
				if err := take(m); err != nil {
					return got, nil, err
				}
			}
			continue
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		if err := ctx.Err(); err != nil {
			return got, nil, err
		}
		if !f.nc.IsConnected() {
			// Reconnecting or closed: no reply can come now, and waiting out
			// the timeout would only delay what the caller does about it.
			return got, nil, fmt.Errorf("replies on %s: %w", subject, errConnectionLost)
		}
		m, err := sub.NextMsg(min(100*time.Millisecond, time.Until(deadline)+time.Millisecond))
		if errors.Is(err, nats.ErrTimeout) {
			continue
		}
		if err != nil {
			return got, nil, fmt.Errorf("replies on %s: %w", subject, err)
		}
		if err := take(m); err != nil {
			return got, nil, err
		}
	}
	var none []string
	for _, id := range f.ids {
		if _, ok := got[id.Name]; want[id.Name] && !ok {
			none = append(none, id.Name)
		}
	}
	return got, none, nil
}

// Stats asks every live worker for its Stats, in worker order. A worker
// that does not answer within a few seconds is an error.
func (f *Fleet) Stats(ctx context.Context) ([]worker.Stats, error) {
	got, none, err := f.request(ctx, worker.StatsSubject(f.cfg.Subjects), f.alive(-1), statsTimeout)
	if err != nil {
		return nil, fmt.Errorf("fleet %s: stats: %w", f.cfg.Variant, err)
	}
	out := f.ordered(got)
	if len(none) > 0 {
		return out, fmt.Errorf("fleet %s: stats: no reply from %s", f.cfg.Variant, strings.Join(none, ", "))
	}
	return out, nil
}

func (f *Fleet) ordered(got map[string]worker.Stats) []worker.Stats {
	var out []worker.Stats
	for _, id := range f.ids {
		if s, ok := got[id.Name]; ok {
			out = append(out, s)
		}
	}
	return out
}

// errConnectionLost says the fleet's connection to NATS went away while it
// waited for its workers' replies: they cannot be asked anything more. The
// loss itself was reported to the run (the sink's Fault) when it happened.
var errConnectionLost = errors.New("the fleet's connection to NATS is lost")

// Stop stops the workers stage by stage, S1 first, so each stage drains
// into a stage that still serves: it asks the stage's workers to drain and
// exit and collects their final Stats. Then it waits for every process to
// exit, kills what remains, and returns the final Stats in worker order.
// Any worker that did not reply or did not exit cleanly is an error.
func (f *Fleet) Stop(ctx context.Context) ([]worker.Stats, error) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil, nil
	}
	f.stopped = true
	f.mu.Unlock()
	f.haltLiveness()
	var errs []error
	all := map[string]worker.Stats{}
	for i := range f.cfg.Spec.Stages() {
		if !f.nc.IsConnected() {
			return f.killAll(all, fmt.Errorf("stop %s: %w", pipelines.StageName(i), errConnectionLost))
		}
		want := f.alive(i)
		for name := range want {
			if p, ok := f.procs[name]; ok {
				p.Expect()
			}
		}
		got, none, err := f.request(ctx, worker.StopSubject(f.cfg.Subjects, i), want, f.cfg.StopTimeout)
		if errors.Is(err, errConnectionLost) {
			for k, v := range got {
				all[k] = v
			}
			return f.killAll(all, fmt.Errorf("stop %s: %w", pipelines.StageName(i), err))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", pipelines.StageName(i), err))
		}
		for k, v := range got {
			all[k] = v
		}
		if len(none) > 0 {
			errs = append(errs, fmt.Errorf("stop %s: no reply from %s", pipelines.StageName(i), strings.Join(none, ", ")))
		}
	}
	if f.attached {
		// Not this fleet's processes: their stop replies are all it sees.
		out := f.ordered(all)
		if err := errors.Join(errs...); err != nil {
			return out, fmt.Errorf("fleet %s: stop: %w", f.cfg.Variant, err)
		}
		return out, nil
	}
	wait, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	for _, id := range f.ids {
		p := f.procs[id.Name]
		p.Expect()
		e, err := p.Wait(wait)
		_, replied := all[id.Name]
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("worker %s did not exit after stopping: %w", id.Name, err))
		case replied && !e.Success():
			// Workers that gave no reply are reported above, or were killed
			// on purpose, or died earlier (Err).
			errs = append(errs, fmt.Errorf("worker %s: %w", id.Name, e))
		}
	}
	if err := f.group.Close(); err != nil {
		errs = append(errs, err)
	}
	out := f.ordered(all)
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("fleet %s: stop: %w", f.cfg.Variant, err)
	}
	return out, nil
}

// killAll ends a stop that cannot go on (cause): every worker process is
// killed and reaped, and the final Stats of those that replied are returned
// with the error.
func (f *Fleet) killAll(replied map[string]worker.Stats, cause error) ([]worker.Stats, error) {
	if f.attached {
		return f.ordered(replied), fmt.Errorf("fleet %s: stop: %w", f.cfg.Variant, cause)
	}
	for _, id := range f.ids {
		f.procs[id.Name].Expect()
	}
	errs := []error{fmt.Errorf("%w; every worker process killed", cause)}
	if err := f.group.Close(); err != nil {
		errs = append(errs, err)
	}
	return f.ordered(replied), fmt.Errorf("fleet %s: stop: %w", f.cfg.Variant, errors.Join(errs...))
}

// Close stops the fleet if Stop has not been called (bounded), kills every
// worker process group, reaps them and closes the fleet's connection. It is
// safe to call more than once and after a failed test: it is what Cleanup
// calls.
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	stopped := f.stopped
	f.mu.Unlock()
	var errs []error
	if f.attached && !f.cfg.StopAttached {
		// The workers stay, and so does what they consume from (a
		// JetStream stream): the next run attaches to them again.
		stopped = true
		f.release()
	}
	if !stopped && f.nc != nil && f.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), f.cfg.StopTimeout)
		// A connection lost while stopping is not Close's failure: it was
		// reported to the run when it happened, and Close's job, that no
		// worker outlives the fleet, is done all the same.
		if _, err := f.Stop(ctx); err != nil && !errors.Is(err, errConnectionLost) {
			errs = append(errs, err)
		}
		cancel()
	}
	f.haltLiveness()
	if f.group != nil {
		if err := f.group.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := f.teardown(); err != nil {
		errs = append(errs, err)
	}
	f.nc.Close()
	return errors.Join(errs...)
}

// setup sets the run up on the fleet's transport: each stage's total
// concurrency is its workers x their concurrency.
func (f *Fleet) setup(ctx context.Context) error {
	c := f.cfg
	tr := transports.OrDefault(c.Transport)
	conn, err := tr.Open(ctx, transport.Env{NC: f.nc, NATS: c.NATS, Name: c.Variant + "-fleet", Faults: faulter{f.faults}})
	if err != nil {
		return fmt.Errorf("open transport %s: %w", tr.Name(), err)
	}
	per := worker.Config{Mode: c.Mode, Concurrency: c.Concurrency}.Concurrent()
	run := transport.Run{Subjects: c.Subjects, Stages: c.Spec.Stages(), Concurrency: make([]int, c.Spec.Stages())}
	for i, w := range c.Alloc {
		run.Concurrency[i] = w * per
	}
	if err := conn.Setup(ctx, run); err != nil {
		_ = conn.Close()
		return fmt.Errorf("set up transport %s: %w", tr.Name(), err)
	}
	f.conn, f.run = conn, run
	return nil
}

// teardown removes the run from the transport, once.
func (f *Fleet) teardown() error {
	if f.conn == nil {
		return nil
	}
	conn := f.conn
	f.conn = nil
	ctx, cancel := context.WithTimeout(context.Background(), transport.CloseTimeout)
	defer cancel()
	err := conn.Teardown(ctx, f.run)
	_ = conn.Close()
	if err != nil {
		return fmt.Errorf("fleet %s: %w", f.cfg.Variant, err)
	}
	return nil
}

// faulter passes faults on, or drops them when the fleet has no sink.
type faulter struct{ f bus.Faulter }

func (f faulter) Fault(err error) {
	if f.f != nil {
		f.f.Fault(err)
	}
}

// Leftovers lists worker processes or process groups that still exist;
// after Close it is empty.
func (f *Fleet) Leftovers() []string {
	if f.group == nil {
		return nil
	}
	return f.group.Leftovers()
}

// Handled returns, per worker name, the messages handled between two Stats
// snapshots (after minus before).
func Handled(before, after []worker.Stats) map[string]uint64 {
	b := map[string]uint64{}
	for _, s := range before {
		b[s.Name] = s.Handled
	}
	d := map[string]uint64{}
	for _, s := range after {
		d[s.Name] = s.Handled - b[s.Name]
	}
	return d
}
