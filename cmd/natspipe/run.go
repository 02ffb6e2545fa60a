package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p2"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/trace"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// runOptions are the flags of natspipe run.
type runOptions struct {
	file        string // -f: the pipeline file
	variant     string
	transport   string
	nats        natsconn.Config
	durations   string
	work        string
	payload     int
	n           int
	window      int
	inflight    int
	alloc       string
	mode        string
	concurrency int
	rate        float64
	load        float64
	arrivals    string
	seed        uint64
	traceDir    string
	traceName   string
	workerPath  string
	timeout     time.Duration
	csv         string // -csv: the file a row of the run's summary is appended to
	// set holds the flags given on the command line or by an environment
	// variable: the pipeline file does not override them. from names the
	// variable that gave a flag, for errors.
	set  map[string]bool
	from map[string]string
	// onWorkerExit is the P3/P4 policy for a worker that dies mid-run.
	onWorkerExit string
	// liveness is how long a P3/P4 worker may stay silent, or hold
	// messages without progress, before it is named unresponsive (stuck).
	liveness time.Duration
	// lossTimeout is RunConfig.LossTimeout; 0: derived.
	lossTimeout time.Duration
	// attach drives P3/P4 workers that are already running (fleet.Attach)
	// under subject prefix prefix, instead of starting them; stopWorkers
	// stops them at the end.
	attach      bool
	prefix      string
	stopWorkers bool
	// readyTimeout bounds the fleet's start: every worker ready (started
	// or found).
	readyTimeout time.Duration
	// replicas is the JetStream stream's replicas (js.Options.Replicas).
	replicas int
	// quiet turns the progress line off (-quiet).
	quiet bool
	// console draws the run's progress and handles Ctrl-C (progress.go);
	// nil: neither.
	console *console
}

// register defines natspipe run's flags on fs, into o, with their
// defaults: base's stage times, work model and payload, and the NATS_*
// settings (natsconn's own layer). The NATSPIPE_* variables are the layer
// below the command line (runOptions.layer), not defaults.
func (o *runOptions) register(fs *flag.FlagSet, base pipelines.Spec) {
	registerFileFlags(fs, &o.file)
	fs.StringVar(&o.variant, "variant", "p4", "variant to run: "+strings.Join(variants.Names(), ", "))
	fs.StringVar(&o.transport, "transport", transports.Default, "p1-p4: broker transport: "+strings.Join(transports.Names(), ", "))
	o.nats = natsconn.FromEnv(nil)
	o.nats.RegisterFlags(fs, "NATS server (default $NATS_URL, else an embedded server)")
	fs.StringVar(&o.durations, "durations", base.TimesString(), "stage times or service-time distributions, comma-separated, e.g. 10ms,exp(40ms),10ms,10ms")
	fs.StringVar(&o.work, "work", string(base.Work), "work model: sleep or cpu")
	fs.IntVar(&o.payload, "payload", base.PayloadSize, "payload bytes per message")
	fs.IntVar(&o.n, "n", 300, "messages to send")
	fs.IntVar(&o.window, "window", 0, "closed-loop window (0: sized by Little's law)")
	fs.IntVar(&o.inflight, "inflight", p2.DefaultInflight, "p2: messages in stage work at once")
	fs.StringVar(&o.alloc, "alloc", p4.DefaultAlloc().String(), "p4: workers per stage, e.g. 1-4-1-1")
	fs.StringVar(&o.mode, "mode", string(worker.Sync), "p3/p4: worker mode, sync or async")
	fs.IntVar(&o.concurrency, "concurrency", 0, "p3/p4 async: messages in work per worker (0: default)")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: send at this many msgs/s instead of a closed window")
	fs.Float64Var(&o.load, "load", 0, "open loop: send at this fraction of the theoretical bound (e.g. 0.8)")
	fs.StringVar(&o.arrivals, "arrivals", string(pipelines.Fixed), "open loop: fixed or poisson intervals")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for poisson arrivals and service-time draws")
	fs.StringVar(&o.traceDir, "trace", "", "write the trace (JSONL and CSV) into this `DIR`ectory (default $"+trace.EnvTrace+")")
	fs.StringVar(&o.csv, "csv", "", "append a row of the run's summary to this CSV `FILE` (a header first when it is new or empty)")
	fs.StringVar(&o.traceName, "trace-name", "", "trace file name without extension (default: the variant and its parameters)")
	fs.StringVar(&o.workerPath, "worker", "", "p3/p4: natspipe-worker binary to start (default: this binary's worker command)")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound on the run (0: derived from the bound)")
	fs.DurationVar(&o.lossTimeout, "loss-timeout", 0, "a message not back this long after its send is declared lost (0: derived, at least 5s)")
	fs.DurationVar(&o.liveness, "liveness", fleet.DefaultLiveness, "p3/p4: a worker silent, or holding messages without progress, this long is named unresponsive (or stuck); 100ms to 1h")
	fs.BoolVar(&o.attach, "attach", false, "p3/p4: drive workers already running under -prefix (a Compose stack's, started by hand) instead of starting them; needs -url or NATS_URL, and the workers' -durations, -work, -transport and -mode")
	fs.StringVar(&o.prefix, "prefix", worker.DefaultPrefix, "-attach: the workers' subject prefix (their -prefix)")
	fs.BoolVar(&o.stopWorkers, "stop-workers", false, "-attach: stop the workers at the end (they drain and exit); by default they are left running")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", fleet.DefaultReadyTimeout, "p3/p4: bound on every worker being ready: started, or with -attach found (1s to 1h)")
	fs.IntVar(&o.replicas, "replicas", 0, "over js: replicas of the run's stream, e.g. 3 on a 3-node cluster (0: 1)")
	fs.StringVar(&o.onWorkerExit, "on-worker-exit", string(fleet.Continue), "p3/p4: a worker that dies mid-run: continue (with the stage's other workers; report it and the exact lost set) or fail (the run at once)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line (drawn on stderr when it is a terminal)")
}

// defaultRunOptions are natspipe run's options as its flags' defaults set
// them, before any flag, file or NATS_* setting: where sweep and plan
// -verify start from, so that a run flag's default lives in one place.
func defaultRunOptions(base pipelines.Spec) runOptions {
	var o runOptions
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o.register(fs, base)
	o.nats = natsconn.Config{}
	o.set = map[string]bool{}
	return o
}

// runHelp is natspipe run -h.
func runHelp() help {
	return help{
		synopsis: "natspipe run [flags]",
		about: `Runs one pipeline variant once: its messages through the stages (P0 function
calls, P1/P2 in one process over NATS, P3/P4 worker processes it starts),
then prints the throughput against the bound, the latency and the account
of every message. Against $NATS_URL (or -url), else an embedded nats-server.

Settings, highest first: the flags; the environment (NATSPIPE_DURATIONS,
NATSPIPE_WORK, NATSPIPE_PAYLOAD, NATSPIPE_WINDOW, NATSPIPE_INFLIGHT,
NATSPIPE_CONCURRENCY, NATSPIPE_TIMEOUT, NATSPIPE_ALLOC, NATSPIPE_MODE,
NATSPIPE_TRANSPORT (one name), NATSPIPE_TRACE: each the same as the flag of
its name, read as the benchmarks read it); the pipeline file of -f; the
defaults below. NATS_* give the connection (the flags override them).

Exit status: 0 the run passed; 1 it failed (lost or duplicated messages, a
fault, a server not reached, a worker died, the trace or CSV not written);
2 a bad flag, value, variable or file, found before anything starts.`,
		examples: []string{
			"natspipe run -variant p4 -alloc 1-4-1-1 -n 300 -trace traces/",
			"natspipe run -f testdata/pipelines/seed.yaml -load 0.8 -arrivals poisson",
			"NATSPIPE_ALLOC=1-2-1-1 NATSPIPE_MODE=async natspipe run -variant p4 -n 200",
			"natspipe run -variant p2 -durations 2ms,8ms,2ms,2ms -csv runs.csv",
		},
	}
}

// runRun runs one pipeline variant once and prints what it measured.
func runRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	o.register(fs, pipelines.DefaultSpec())
	pos, code, done := parseCommand("run", fs, args, runHelp(), stdout, stderr)
	if done {
		return code
	}
	if len(pos) > 0 {
		return usageExit(stderr, "run", fmt.Errorf("unexpected arguments %q: natspipe run takes flags only", pos))
	}
	if err := o.layer(fs, runEnvs()); err != nil {
		return usageExit(stderr, "run", err)
	}
	var err error
	if o.nats, err = o.nats.Resolve(nil); err != nil {
		return usageExit(stderr, "run", err)
	}
	if err := checkRunOptions(o, o.set); err != nil {
		return usageExit(stderr, "run", err)
	}
	if err := probeCSV(o.csv); err != nil {
		return usageExit(stderr, "run", err)
	}
	o.console = newConsole(stderr, !o.quiet)
	ctx, stop := o.console.interruptible(context.Background())
	defer stop()
	res, err := execute(ctx, o, stdout)
	if res != nil {
		printResult(stdout, res)
		if o.csv != "" {
			if cerr := appendCSV(o.csv, o, res); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}
	if err != nil {
		if code := runExit(err); code == exitUsage {
			return usageExit(stderr, "run", err)
		}
		fmt.Fprintf(stderr, "natspipe run: %v\n", err)
		return runExit(err)
	}
	return 0
}

// plan is a configured variant, ready to start.
type plan struct {
	name    string // for the trace file
	variant variants.Variant
	cfg     variants.Config // NATS and Subjects are filled at the start
	bound   float64
	window  int
}

// makePlan configures the -variant from the registry (pipelines/variants)
// with the flags it takes.
func makePlan(o runOptions, spec pipelines.Spec) (plan, error) {
	v, err := variants.Lookup(o.variant)
	if err != nil {
		return plan{}, fmt.Errorf("-variant: %w", err)
	}
	tr, err := transports.Lookup(o.transport)
	if err != nil {
		return plan{}, fmt.Errorf("-transport: %w", err)
	}
	if jt, ok := tr.(js.Transport); ok && o.replicas > 0 {
		jt.Replicas = o.replicas
		tr = jt
	}
	mode, err := worker.ParseMode(o.mode)
	if err != nil {
		return plan{}, err
	}
	onExit, err := fleet.ParseExitPolicy(o.onWorkerExit)
	if err != nil {
		return plan{}, fmt.Errorf("-on-worker-exit: %w", err)
	}
	cfg := variants.Config{Spec: spec, Transport: tr, Inflight: o.inflight, Mode: mode, Concurrency: o.concurrency}
	if v.Takes(variants.Inflight) && o.inflight < 1 {
		return plan{}, fmt.Errorf("-inflight %d: want at least 1", o.inflight)
	}
	if v.Takes(variants.Alloc) {
		if cfg.Alloc, err = p4.ParseAlloc(o.alloc); err != nil {
			return plan{}, err
		}
		if err := cfg.Alloc.Check(spec.Stages()); err != nil {
			return plan{}, err
		}
	}
	if v.Processes {
		l := fleet.Command(o.workerPath)
		if o.workerPath == "" {
			exe, err := os.Executable()
			if err != nil {
				return plan{}, fmt.Errorf("find own executable for workers: %w", err)
			}
			l = fleet.Launcher{Path: exe, Args: []string{"worker"}}
		}
		cfg.Processes = fleet.Processes{Launcher: l, Stderr: os.Stderr, OnWorkerExit: onExit, Liveness: o.liveness,
			ReadyTimeout: o.readyTimeout, Attach: o.attach, StopAttached: o.stopWorkers}
	}
	bound := v.Bound(cfg)
	return plan{name: v.Label(cfg), variant: v, cfg: cfg, bound: bound, window: v.Window(cfg, bound)}, nil
}

// execute runs o once and returns its result. A ctx done mid-run stops
// it (Runner.Run): the partial result comes back, its trace is written,
// and the error wraps pipelines.ErrInterrupted, as it does when ctx is
// done before the run started.
func execute(ctx context.Context, o runOptions, stdout io.Writer) (res *pipelines.Result, err error) {
	defer func() {
		if err != nil && ctx.Err() != nil && !errors.Is(err, pipelines.ErrInterrupted) {
			err = fmt.Errorf("%w before the run: %w", pipelines.ErrInterrupted, err)
		}
	}()
	// Up to the trace directory's probe, every error is a usage error:
	// checkRunOptions has caught most of them already.
	ts, err := pipelines.ParseServiceTimes(o.durations)
	if err != nil {
		return nil, usagef("-durations: %w", err)
	}
	work, err := pipelines.ParseWorkModel(o.work)
	if err != nil {
		return nil, usagef("-work: %w", err)
	}
	spec := pipelines.Spec{Work: work, PayloadSize: o.payload, Seed: o.seed}
	spec.SetTimes(ts)
	spec.Slowdown, err = pipelines.SlowdownFromEnv(nil, spec.Stages())
	if err != nil {
		return nil, badInput(err)
	}
	if err := spec.Validate(); err != nil {
		return nil, badInput(err)
	}
	if o.n < 1 {
		return nil, usagef("-n %d: want at least 1", o.n)
	}
	if o.rate != 0 && o.load != 0 {
		return nil, usagef("-rate and -load: give one")
	}
	p, err := makePlan(o, spec)
	if err != nil {
		return nil, badInput(err)
	}
	if err := checkPlan(o, p.bound); err != nil {
		return nil, err
	}
	cfg := pipelines.RunConfig{Spec: spec, Variant: o.variant, Bound: p.bound, Window: o.window,
		Arrivals: pipelines.Arrivals(o.arrivals), Seed: o.seed, Timeout: o.timeout, Rate: o.rate,
		LossTimeout: o.lossTimeout}
	p.variant.Describe(&cfg, p.cfg)
	if cfg.Window == 0 {
		cfg.Window = p.window
	}
	if o.load != 0 {
		if math.IsInf(p.bound, 1) || o.load < 0 {
			return nil, usagef("-load %v: needs a finite bound and a positive load", o.load)
		}
		cfg.Rate = o.load * p.bound
	}
	cfg.Progress = o.console.startRun((&pipelines.Result{Variant: cfg.Variant, Transport: cfg.Transport, Broker: cfg.Broker}).Name(), o.n, p.bound)
	r, err := pipelines.NewRunner(cfg)
	if err != nil {
		return nil, badInput(err)
	}
	o.console.setDrain(r.Config().Drain)
	if err := probeTrace(o, o.set); err != nil {
		return nil, err
	}
	var sender pipelines.Sender
	if !p.variant.Messaging {
		pp, err := p.variant.Start(ctx, p.cfg, r)
		if err != nil {
			return nil, badInput(err)
		}
		defer pp.Close()
		sender = pp.(pipelines.Sender)
	} else {
		srv, err := natsserver.Open(o.nats)
		if err != nil {
			return nil, fmt.Errorf("nats server: %w", err)
		}
		defer srv.Close()
		subjects := bus.NewSubjects()
		if o.attach {
			subjects = bus.Subjects{Prefix: o.prefix}
		}
		fmt.Fprintf(stdout, "nats %s at %s, subjects %s.*\n", srv.Version, srv.Conn, subjects.Prefix)
		p.cfg.NATS, p.cfg.Subjects = srv.Conn, subjects
		pl, err := p.variant.Start(ctx, p.cfg, r)
		if err != nil {
			return nil, err
		}
		defer pl.Close()
		if f, ok := pl.(workerFleet); ok {
			if o.attach {
				fmt.Fprintf(stdout, "attached to %d workers of %s in %v: %s\n", len(f.Workers()), subjects.Prefix,
					f.Startup().Round(time.Millisecond), describeWorkers(f.Workers()))
			}
			before, err := f.Stats(ctx)
			if err != nil {
				return nil, err
			}
			// After the run, interrupted or not.
			defer func() { printShares(context.WithoutCancel(ctx), stdout, f, before) }()
		}
		if k, ok := pl.(workerKiller); ok && !o.attach {
			o.console.setKill(func() { killWorkers(k) })
		}
		ep, err := router.Attach(srv.Conn, p.cfg.Transport, transport.Run{Subjects: subjects, Stages: spec.Stages()}, r)
		if err != nil {
			return nil, err
		}
		defer ep.Close()
		sender = ep
	}
	res, runErr := r.Run(ctx, sender, o.n)
	o.console.endRun(res)
	if res != nil && o.traceDir != "" {
		name := o.traceName
		if name == "" {
			name = p.name
		}
		path, err := trace.Write(o.traceDir, name, res, trace.ServerVersion(sender))
		if err != nil {
			return res, errors.Join(runErr, err)
		}
		fmt.Fprintf(stdout, "trace: %s.{jsonl,csv}\n", strings.TrimSuffix(path, ".jsonl"))
	}
	return res, runErr
}

// workerFleet is what natspipe run asks of a P3/P4 pipeline's fleet of
// workers (*fleet.Fleet).
type workerFleet interface {
	Workers() []fleet.WorkerID
	Startup() time.Duration
	Stats(ctx context.Context) ([]worker.Stats, error)
}

// workerKiller is a P3/P4 pipeline's fleet as a second Ctrl-C needs it:
// its worker processes, to kill (*fleet.Fleet).
type workerKiller interface {
	Workers() []fleet.WorkerID
	Kill(name string) (*procs.Exit, error)
}

// killWorkers kills every worker process of k at once (SIGKILL to each
// one's process group) and waits, at most procs.KillWait, until all are
// reaped.
func killWorkers(k workerKiller) {
	var wg sync.WaitGroup
	for _, id := range k.Workers() {
		wg.Go(func() { _, _ = k.Kill(id.Name) })
	}
	wg.Wait()
}

// describeWorkers lists workers by stage: "S1: a; S2: b, c".
func describeWorkers(ids []fleet.WorkerID) string {
	var parts []string
	for k, id := range ids {
		if k == 0 || ids[k-1].Stage != id.Stage {
			parts = append(parts, pipelines.StageName(id.Stage)+": "+id.Name)
			continue
		}
		parts[len(parts)-1] += ", " + id.Name
	}
	return strings.Join(parts, "; ")
}

// printShares prints each worker's share of its stage's messages in the
// run (handled since before), for stages with several workers, among the
// workers that answered at the end, and names those that did not (dead
// or unresponsive).
func printShares(ctx context.Context, w io.Writer, f workerFleet, before []worker.Stats) {
	after, err := f.Stats(ctx)
	answered := map[string]bool{}
	for _, s := range after {
		answered[s.Name] = true
	}
	// Shares among the workers that answered: a silent one's count is
	// unknown, not 0.
	var counted []fleet.WorkerID
	var silent []string
	for _, id := range f.Workers() {
		if answered[id.Name] {
			counted = append(counted, id)
		} else {
			silent = append(silent, id.Name)
		}
	}
	shares := fleet.Shares(counted, fleet.Handled(before, after))
	if s := fleet.FormatShares(shares); s != "" {
		fmt.Fprint(w, "shares: "+strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\nshares: ")+"\n")
	}
	if len(silent) > 0 {
		fmt.Fprintf(w, "shares: no count at the end from %s (dead or unresponsive): the shares are the others'\n", strings.Join(silent, ", "))
	}
	if err != nil {
		fmt.Fprintf(w, "shares: incomplete: %v\n", err)
	}
}

// printResult prints the run's Report: the summary, then every lost,
// late, unaccounted, duplicate and stray message by seq (or ID), the worker
// incidents, violations and rejections, the same account as Result.Err and
// the trace's header.
func printResult(w io.Writer, res *pipelines.Result) {
	fmt.Fprintln(w, res.Report())
	if res.Rate > 0 && res.PublishDelay != nil {
		fmt.Fprintf(w, "open loop at %.2f msgs/s: publish delay p50 %v p99 %v\n", res.Rate,
			time.Duration(res.PublishDelay.ValueAtQuantile(50))*time.Microsecond,
			time.Duration(res.PublishDelay.ValueAtQuantile(99))*time.Microsecond)
	}
}

// runWorker is the stage worker, for P3/P4 pipelines started by natspipe run
// (and usable by hand like natspipe-worker).
func runWorker(args []string, stdout, stderr io.Writer) int {
	procs.ExitWithParent()
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			return worker.Main(args, stdout) // help goes to stdout, as every command's
		}
	}
	return worker.Main(args, stderr)
}
