package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/natspipe/natspipe/analysis/plots"
	"github.com/natspipe/natspipe/bench/sweep"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/pipefile"
	"github.com/natspipe/natspipe/pipelines/trace"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Exit codes of natspipe sweep besides 0, 1 (a configuration failed, or
// the report could not be written) and 2 (bad file or flags).
const sweepExitInterrupted = 130 // stopped by SIGINT or SIGTERM

// sweepHelp is natspipe sweep -h.
func sweepHelp() help {
	return help{
		synopsis: "natspipe sweep [flags] FILE",
		about: `Runs every configuration of the pipeline file's sweep section (and/or the
flags, which override it): variants x P4 allocations x worker modes x
loads x transports, each -count times, and writes into -o DIR:
  results.txt  every run in Go benchmark format with the unit metadata
               (BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep/transport=core-2),
               for benchstat and natspipe gate; written as runs finish
  traces/      each run's trace (JSONL and CSV)
  report/      natspipe report of each configuration's median run (by msgs/s)
Each run is bounded by -timeout (0: derived from the bound). A failed
configuration is reported and the sweep goes on; exit 1 at the end if any
failed, 2 for a bad file, flag or variable, 130 when interrupted (what
was written is kept, and the report covers the runs so far; the run in
progress drains what is in flight, as natspipe run does, and is left out).
One line per configuration on stderr as it finishes; on a terminal, the run
in progress shows a progress line there too (not with -quiet).

Settings, highest first: the flags; the environment, as for the benchmarks:
NATSPIPE_ALLOC, NATSPIPE_MODE and NATSPIPE_TRANSPORT (a list or "all") set
the -allocs, -modes and -transports axes, and NATSPIPE_DURATIONS, _WORK,
_PAYLOAD, _WINDOW, _INFLIGHT, _CONCURRENCY and _TIMEOUT every run, as for
natspipe run; the pipeline file.`,
		examples: []string{
			"natspipe sweep -workers 7 -n 300 -durations 2ms,8ms,2ms,2ms -o sweep7 testdata/pipelines/seed.yaml",
			"natspipe sweep -variants p3,p4 -modes sync,async -count 3 testdata/pipelines/seed.yaml",
			"NATSPIPE_TRANSPORT=core,js natspipe sweep -o js testdata/pipelines/allocations.yaml",
		},
	}
}

// sweepOptions are natspipe sweep's own flags.
type sweepOptions struct {
	out                                 string
	variants, transports, modes, allocs string
	loads                               string
	workers, count                      int
	durations, work                     string
	n                                   int
	seed                                uint64
	timeout                             time.Duration
	size                                string
	nats                                natsconn.Config
	quiet                               bool
	set                                 map[string]bool   // flags given on the command line or by the environment
	from                                map[string]string // the variable that gave a flag
	interrupt                           func(context.Context) (context.Context, context.CancelFunc)
}

// runSweep is natspipe sweep.
func runSweep(args []string, stdout, stderr io.Writer) int {
	return sweepCommand(args, stdout, stderr, func(ctx context.Context) (context.Context, context.CancelFunc) {
		return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	})
}

// sweepMeasured is one configuration's runs.
type sweepMeasured struct {
	cfg    sweep.Config
	name   string
	runs   []*pipelines.Result
	traces []string
	err    error
}

func sweepCommand(args []string, stdout, stderr io.Writer, interrupt func(context.Context) (context.Context, context.CancelFunc)) int {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	var s sweepOptions
	s.interrupt = interrupt
	fs.StringVar(&s.out, "o", "sweep", "write results.txt, traces/ and report/ into `DIR`")
	fs.StringVar(&s.variants, "variants", "", "comma-separated variants, e.g. p3,p4 (default: the sweep section's, else the file's variant)")
	fs.StringVar(&s.transports, "transports", "", "comma-separated transports, e.g. core,js (variants with a broker)")
	fs.StringVar(&s.modes, "modes", "", "comma-separated P3/P4 worker modes: sync,async")
	fs.StringVar(&s.allocs, "allocs", "", "comma-separated P4 allocations, e.g. 1-1-1-1,1-4-1-1")
	fs.IntVar(&s.workers, "workers", 0, "instead of -allocs: every allocation of N P4 workers over the stages")
	fs.StringVar(&s.loads, "loads", "", "comma-separated loads: closed, a fraction of the bound (0.8) or a rate (80/s)")
	fs.IntVar(&s.count, "count", 0, "runs of each configuration (default: the sweep section's, else 1)")
	fs.StringVar(&s.durations, "durations", "", "stage times or distributions, e.g. 2ms,8ms,2ms,2ms (default: $"+pipelines.EnvDurations+", else the file's)")
	fs.StringVar(&s.work, "work", "", "work model: sleep or cpu (default: $"+pipelines.EnvWork+", else the file's)")
	fs.IntVar(&s.n, "n", 0, "messages a run (default: the file's, else 300)")
	fs.Uint64Var(&s.seed, "seed", 0, "seed for service-time draws and poisson arrivals (default: the file's, else 1)")
	fs.DurationVar(&s.timeout, "timeout", 0, "bound on each run (0: derived from the configuration's bound)")
	fs.StringVar(&s.size, "size", "", "the report's chart size `WxH` (as natspipe report -size; default 5in high and 0.6in a configuration wide, 8in to 30in)")
	fs.BoolVar(&s.quiet, "quiet", false, "no progress line for the run in progress (drawn on stderr when it is a terminal)")
	s.nats = natsconn.FromEnv(nil)
	s.nats.RegisterFlags(fs, "NATS server (default $NATS_URL, else an embedded server for each run)")
	pos, rc, exit := parseCommand("sweep", fs, args, sweepHelp(), stdout, stderr)
	if exit {
		return rc
	}
	usage := func(format string, a ...any) int {
		return usageExit(stderr, "sweep", fmt.Errorf(format, a...))
	}
	if len(pos) != 1 {
		return usage("want one pipeline file, got %d arguments (natspipe sweep -workers 7 testdata/pipelines/seed.yaml)", len(pos))
	}
	p, err := pipefile.Load(pos[0])
	if err != nil {
		return usage("%v", err)
	}
	if s.from, err = applyEnv(fs, sweepEnvs(setFlags(fs))); err != nil {
		return usage("%v", err)
	}
	s.set = setFlags(fs)
	if s.nats, err = s.nats.Resolve(nil); err != nil {
		return usage("%v", err)
	}
	run, err := sweepRunOptions(fs, pos[0])
	if err != nil {
		return usage("%v", err)
	}
	base, axes, count, err := sweepPlan(s, p, run)
	if err != nil {
		return usage("%v", err)
	}
	cfgs, err := sweep.Expand(axes, base.cfg, base.stages)
	if err != nil {
		return usage("%v", err)
	}
	// Every configuration's options are checked before the first run.
	opts := make([]runOptions, len(cfgs))
	for i, c := range cfgs {
		opts[i] = base.options(c)
		if err := checkRunOptions(opts[i], opts[i].set); err != nil {
			return usage("%s: %v", c.Name(base.params), err)
		}
	}
	if s.out == "" {
		return usage("-o: want a directory")
	}
	if s.size != "" {
		if _, _, err := plots.ParseSize(s.size); err != nil {
			return usage("-size: %v", err)
		}
	}
	tracesDir := filepath.Join(s.out, "traces")
	if err := os.MkdirAll(tracesDir, 0o755); err != nil {
		return usage("-o %s: %v", s.out, err)
	}
	resultsPath := filepath.Join(s.out, "results.txt")
	f, err := os.Create(resultsPath)
	if err != nil {
		return usage("-o %s: %v", s.out, err)
	}
	defer f.Close()
	w, err := sweep.NewWriter(f, [][2]string{
		{"pipeline", pos[0]},
		{"durations", base.run.durations},
		{"work", base.run.work},
		{"benchtime", fmt.Sprintf("%dx", base.run.n)},
	})
	if err != nil {
		fmt.Fprintf(stderr, "natspipe sweep: %v\n", err)
		return 1
	}
	ctx, stop := s.interrupt(context.Background())
	defer stop()
	// The run in progress's line on a terminal, erased when it ends: the
	// configuration's own line follows.
	con := newConsole(stderr, !s.quiet)
	con.transient = true

	fmt.Fprintf(stderr, "natspipe sweep: %d configurations x %d runs, %d messages each, into %s\n", len(cfgs), count, base.run.n, s.out)
	var done []sweepMeasured
	failed := 0
	for i, c := range cfgs {
		m := sweepMeasured{cfg: c, name: c.Name(base.params)}
		start := time.Now()
		for k := 1; k <= count && ctx.Err() == nil; k++ {
			o := opts[i]
			o.traceDir = tracesDir
			o.traceName = m.name
			label := fmt.Sprintf("[%d/%d] %s", i+1, len(cfgs), m.name)
			if count > 1 {
				o.traceName += fmt.Sprintf("/run=%d", k)
				label = fmt.Sprintf("[%d/%d, run %d/%d] %s", i+1, len(cfgs), k, count, m.name)
			}
			con.setLabel(label)
			o.console = con
			res, err := execute(ctx, o, io.Discard)
			if ctx.Err() != nil {
				break // interrupted: this run does not count
			}
			if err == nil {
				err = w.Write(c.Variant, m.name, res)
			}
			if err != nil {
				m.err = fmt.Errorf("run %d: %w", k, err)
				break
			}
			m.runs = append(m.runs, res)
			m.traces = append(m.traces, filepath.Join(tracesDir, trace.SafeName(o.traceName)+".jsonl"))
		}
		if ctx.Err() != nil && m.err == nil && len(m.runs) < count {
			fmt.Fprintf(stderr, "[%d/%d] %s: interrupted after %d of %d runs\n", i+1, len(cfgs), m.name, len(m.runs), count)
			done = append(done, m)
			break
		}
		if m.err != nil {
			failed++
			fmt.Fprintf(stderr, "[%d/%d] FAIL %s: %v\n", i+1, len(cfgs), m.name, m.err)
		} else {
			fmt.Fprintf(stderr, "[%d/%d] %s: %s (%s)\n", i+1, len(cfgs), m.name, summarize(m.runs), time.Since(start).Round(time.Millisecond))
		}
		done = append(done, m)
	}
	interrupted := ctx.Err() != nil
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "natspipe sweep: close %s: %v\n", resultsPath, err)
		return 1
	}
	fmt.Fprintf(stdout, "results: %s\n", resultsPath)
	code := 0
	if reps := medianTraces(done); len(reps) > 0 {
		size := s.size
		if size == "" {
			size = fmt.Sprintf("%gx5in", min(30, max(8, 0.6*float64(len(reps)))))
		}
		if rc := runReport(append([]string{"-o", filepath.Join(s.out, "report"), "-size", size}, reps...), stdout, stderr); rc != 0 {
			code = 1
		}
	}
	switch {
	case interrupted:
		fmt.Fprintf(stderr, "natspipe sweep: interrupted; %s holds the runs so far\n", resultsPath)
		return sweepExitInterrupted
	case failed > 0:
		fmt.Fprintf(stderr, "natspipe sweep: %d of %d configurations failed\n", failed, len(cfgs))
		return 1
	}
	return code
}

// sweepBase is what every configuration of a sweep shares.
type sweepBase struct {
	run    runOptions // the file's options with the flags' overrides
	cfg    sweep.Config
	params sweep.Params
	stages int
}

// options are natspipe run's options for configuration c.
func (b sweepBase) options(c sweep.Config) runOptions {
	o := b.run
	o.set = map[string]bool{}
	o.variant = c.Variant
	if c.Alloc != nil {
		o.alloc = c.Alloc.String()
	}
	if c.Mode != "" {
		o.mode = string(c.Mode)
	}
	if c.Transport != "" {
		o.transport = c.Transport
	}
	o.rate, o.load = c.Load.Rate, c.Load.Fraction
	if !c.Load.Closed() {
		o.window = 0
	}
	return o
}

// sweepEnvs are the variables that give natspipe sweep's axes, as they
// give the benchmarks theirs ("set, the only allocation benchmarked"):
// NATSPIPE_ALLOC -allocs (not with -workers given), NATSPIPE_MODE -modes,
// NATSPIPE_TRANSPORT -transports (a list, or "all": every transport).
func sweepEnvs(given map[string]bool) []envVar {
	envs := []envVar{
		{p4.EnvAlloc, "allocs", func(v string) (string, error) {
			a, err := p4.AllocFromEnv(func(string) string { return v }, nil)
			return a.String(), err
		}},
		{worker.EnvMode, "modes", func(v string) (string, error) {
			m, err := worker.ModeFromEnv(func(string) string { return v }, "")
			return string(m), err
		}},
		{transports.EnvTransport, "transports", func(v string) (string, error) {
			ts, err := transports.FromEnv(func(string) string { return v })
			names := make([]string, len(ts))
			for i, t := range ts {
				names[i] = t.Name()
			}
			return strings.Join(names, ","), err
		}},
	}
	if given["workers"] {
		envs = envs[1:]
	}
	return envs
}

// sweepRunOptions are the options every run of the sweep of the pipeline
// file path starts from, layered as natspipe run's are: sweep's flags of
// run's names (-durations, -work, -n, -seed, -timeout) given on its
// command line sfs, the environment (runEnvs but the axes' variables and
// NATSPIPE_TRACE: the traces go into -o), the file.
func sweepRunOptions(sfs *flag.FlagSet, path string) (runOptions, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	o.register(fs, pipelines.DefaultSpec())
	given := setFlags(sfs)
	for _, name := range []string{"durations", "work", "n", "seed", "timeout"} {
		if given[name] {
			if err := fs.Set(name, sfs.Lookup(name).Value.String()); err != nil {
				return o, fmt.Errorf("-%s: %w", name, err)
			}
		}
	}
	o.file = path
	if err := o.layer(fs, without(runEnvs(), "alloc", "mode", "transport", "trace")); err != nil {
		return o, err
	}
	o.nats = natsconn.Config{}
	return o, nil
}

// name is how an error names sweep's flag flagName: the variable when
// one gave it, else the flag.
func (s sweepOptions) name(flagName string) string {
	if v := s.from[flagName]; v != "" {
		return v
	}
	return "-" + flagName
}

// sweepPlan merges the file p, the run options o layered from it (see
// sweepRunOptions) and the flags of s into the sweep's base options, axes
// and run count.
func sweepPlan(s sweepOptions, p *pipefile.Pipeline, o runOptions) (sweepBase, sweep.Axes, int, error) {
	o.nats = s.nats
	o.traceName = ""
	ts, err := pipelines.ParseServiceTimes(o.durations)
	if err != nil {
		return sweepBase{}, sweep.Axes{}, 0, fmt.Errorf("%s: %w", o.arg("durations", strconv.Quote(o.durations)), err)
	}
	stages := len(ts)
	if stages != p.Spec.Stages() {
		return sweepBase{}, sweep.Axes{}, 0, fmt.Errorf("%s: %d stages, the file has %d", o.arg("durations", strconv.Quote(o.durations)), stages, p.Spec.Stages())
	}
	work, err := pipelines.ParseWorkModel(o.work)
	if err != nil {
		return sweepBase{}, sweep.Axes{}, 0, fmt.Errorf("%s: %w", o.name("work"), err)
	}
	alloc := p.Alloc
	if alloc == nil {
		alloc = p4.DefaultAlloc()
		if len(alloc) != stages {
			alloc = p4.Ones(stages)
		}
	}
	o.alloc = alloc.String()
	base := sweepBase{run: o, stages: stages, params: sweep.Params{Work: work, Inflight: o.inflight},
		cfg: sweep.Config{Variant: o.variant, Alloc: alloc, Mode: worker.Mode(o.mode), Transport: o.transport,
			Load: pipefile.SweepLoad{Rate: o.rate, Fraction: o.load}}}

	var ax sweep.Axes
	count := 1
	if sw := p.Sweep; sw != nil {
		ax = sweep.Axes{Variants: sw.Variants, Transports: sw.Transports, Modes: sw.Modes, Allocs: sw.Allocs, Workers: sw.Workers, Loads: sw.Loads}
		if sw.Count > 0 {
			count = sw.Count
		}
	}
	list := func(v string) []string {
		var out []string
		for _, f := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(f))
		}
		return out
	}
	// checked is the flag's comma list, every item passing check.
	checked := func(flag, v string, check func(string) error) ([]string, error) {
		items := list(v)
		for _, it := range items {
			if err := check(it); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name(flag), err)
			}
		}
		return items, nil
	}
	if s.set["variants"] {
		if ax.Variants, err = checked("variants", s.variants, pipefile.CheckSweepVariant); err != nil {
			return base, ax, 0, err
		}
	}
	if s.set["transports"] {
		if ax.Transports, err = checked("transports", s.transports, pipefile.CheckSweepTransport); err != nil {
			return base, ax, 0, err
		}
	}
	if s.set["modes"] {
		ax.Modes = nil
		for _, m := range list(s.modes) {
			mode, err := worker.ParseMode(m)
			if err != nil {
				return base, ax, 0, fmt.Errorf("%s: %q: want sync or async", s.name("modes"), m)
			}
			ax.Modes = append(ax.Modes, mode)
		}
	}
	if s.set["allocs"] && s.set["workers"] {
		return base, ax, 0, errors.New("-allocs and -workers: give one")
	}
	if s.set["allocs"] {
		ax.Allocs, ax.Workers = nil, 0
		for _, v := range list(s.allocs) {
			a, err := p4.ParseAlloc(v)
			if err == nil {
				err = a.Check(stages)
			}
			if err != nil {
				return base, ax, 0, fmt.Errorf("%s: %w", s.name("allocs"), err)
			}
			ax.Allocs = append(ax.Allocs, a)
		}
	}
	if s.set["workers"] {
		if err := pipefile.CheckSweepWorkers(s.workers, stages); err != nil {
			return base, ax, 0, fmt.Errorf("-workers %w", err)
		}
		ax.Allocs, ax.Workers = nil, s.workers
	}
	if s.set["loads"] {
		ax.Loads = nil
		for _, v := range list(s.loads) {
			l, err := pipefile.ParseSweepLoad(v)
			if err != nil {
				return base, ax, 0, fmt.Errorf("-loads: %w", err)
			}
			ax.Loads = append(ax.Loads, l)
		}
	}
	if s.set["count"] {
		if s.count < 1 || s.count > pipefile.MaxSweepCount {
			return base, ax, 0, fmt.Errorf("-count %d: want 1 to %d", s.count, pipefile.MaxSweepCount)
		}
		count = s.count
	}
	return base, ax, count, nil
}

// summarize is a configuration's runs in a line: the median throughput,
// its efficiency and the range over the runs, and the median p50 and
// p99.
func summarize(runs []*pipelines.Result) string {
	if len(runs) == 0 {
		return "no runs"
	}
	mid := runs[medianRun(runs)]
	lo, hi := mid.Throughput, mid.Throughput
	for _, r := range runs {
		lo, hi = min(lo, r.Throughput), max(hi, r.Throughput)
	}
	s := fmt.Sprintf("%.1f msgs/s", mid.Throughput)
	if e := mid.Efficiency(); e == e { // not NaN
		s += fmt.Sprintf(" (eff %.3f of %.1f)", e, mid.Bound)
	}
	if len(runs) > 1 {
		s += fmt.Sprintf(" range %.1f..%.1f over %d runs", lo, hi, len(runs))
	}
	return s + fmt.Sprintf(", p50 %v p99 %v", mid.LatencyAt(50).Round(10*time.Microsecond), mid.LatencyAt(99).Round(10*time.Microsecond))
}

// medianRun is the index of the run with the median throughput (the
// lower of the middle two).
func medianRun(runs []*pipelines.Result) int {
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return runs[idx[a]].Throughput < runs[idx[b]].Throughput })
	return idx[(len(idx)-1)/2]
}

// medianTraces are the trace files of each configuration's median run, in
// the sweep's order: one bar per configuration in the report.
func medianTraces(ms []sweepMeasured) []string {
	var out []string
	for _, m := range ms {
		if len(m.runs) > 0 {
			out = append(out, m.traces[medianRun(m.runs)])
		}
	}
	return out
}
