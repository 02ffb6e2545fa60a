package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/pipefile"
	allocplan "github.com/natspipe/natspipe/pipelines/plan"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// defaultPlanLoad is the load latencies are predicted at when neither the
// file nor a flag gives one: 80% of the best bound.
const defaultPlanLoad = 0.8

// verifyMessages is plan -verify's default messages a run.
const verifyMessages = 1000

// planHelp is natspipe plan -h.
func planHelp() help {
	return help{
		synopsis: "natspipe plan (-workers N | -target R) [flags] FILE",
		about: `Ranks the allocations of N P4 workers over the stages of a pipeline file by
throughput bound, then by predicted mean latency at a load (each stage an
M/G/c queue; see package pipelines/plan), or with -target R prints the
allocation with the fewest workers whose bound reaches R msgs/s. -verify K
runs the top K for real (P4, closed and open loop) beside the predictions.

The pipeline is the file's, with what the environment changes, as for
natspipe run: NATSPIPE_DURATIONS, NATSPIPE_WORK, NATSPIPE_PAYLOAD,
NATSPIPE_MODE, NATSPIPE_CONCURRENCY, NATSPIPE_TRANSPORT (one; it picks the
dispatch) and, for -verify's runs, NATSPIPE_TIMEOUT. NATSPIPE_ALLOC does not
apply: plan chooses the allocations.

Exit status: 0 ok; 1 a -verify run failed; 2 a bad flag, file or variable.`,
		examples: []string{
			"natspipe plan -workers 7 testdata/pipelines/seed.yaml",
			"natspipe plan -target 150 testdata/pipelines/seed.yaml",
			"natspipe plan -workers 7 -load 0.5 -verify 2 -n 200 testdata/pipelines/allocations.yaml",
		},
	}
}

// planRunOptions are natspipe run's options for the pipeline file path
// (no flag given): the environment's variables that plan takes over the
// file, as natspipe run layers them.
func planRunOptions(path string) (runOptions, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	o.register(fs, pipelines.DefaultSpec())
	o.file = path
	err := o.layer(fs, without(runEnvs(), "alloc", "window", "inflight", "trace"))
	o.nats, o.traceDir = natsconn.Config{}, ""
	return o, err
}

// planPipeline is the file's pipeline p with the settings o took from the
// environment over the file's (o.from): stage times, work model, payload,
// worker mode and concurrency, transport.
func planPipeline(p *pipefile.Pipeline, o runOptions) (*pipefile.Pipeline, error) {
	q := *p
	if o.from["durations"] != "" {
		ts, err := pipelines.ParseServiceTimes(o.durations)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.arg("durations", strconv.Quote(o.durations)), err)
		}
		if len(ts) != p.Spec.Stages() {
			return nil, fmt.Errorf("%s: %d stages, the file has %d", o.arg("durations", strconv.Quote(o.durations)), len(ts), p.Spec.Stages())
		}
		q.Spec.SetTimes(ts)
	}
	if o.from["work"] != "" {
		q.Spec.Work = pipelines.WorkModel(o.work)
	}
	if o.from["payload"] != "" {
		q.Spec.PayloadSize = o.payload
	}
	if o.from["mode"] != "" {
		q.Mode = worker.Mode(o.mode)
	}
	if o.from["concurrency"] != "" {
		q.Concurrency = o.concurrency
	}
	if o.from["transport"] != "" {
		q.Transport = o.transport
	}
	if q.Mode != worker.Async && q.Concurrency > 1 {
		return nil, fmt.Errorf("%s: a sync worker works on one message at a time; set the mode to async", o.arg("concurrency", strconv.Itoa(q.Concurrency)))
	}
	return &q, nil
}

// runPlan is natspipe plan: the best allocations of -workers N over the
// pipeline file's stages, or the fewest workers reaching -target.
func runPlan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 0, "workers to allocate over the stages (each stage at least one)")
	target := fs.Float64("target", 0, "instead of -workers: the fewest workers whose bound reaches this many msgs/s")
	load := fs.Float64("load", 0, fmt.Sprintf("predict latency at this fraction of the best bound (default the file's load, else %v)", defaultPlanLoad))
	rate := fs.Float64("rate", 0, "predict latency at this many msgs/s instead of -load")
	top := fs.Int("top", 10, "allocations to print")
	verifyTop := fs.Int("verify", 0, "run the top this many allocations for real (P4; open loop at the rate: throughput and latency; closed loop: capacity) and print predicted against measured")
	n := fs.Int("n", 0, fmt.Sprintf("-verify: messages a run (default %d, or the file's messages when more: a Poisson source's rate over n draws strays about 1/sqrt(n) from the offered one)", verifyMessages))
	dispatch := fs.String("dispatch", "", "random (core NATS queue groups) or shared (pull transports); default by the file's transport")
	pos, code, done := parseCommand("plan", fs, args, planHelp(), stdout, stderr)
	if done {
		return code
	}
	usage := func(format string, a ...any) int {
		return usageExit(stderr, "plan", fmt.Errorf(format, a...))
	}
	if len(pos) != 1 {
		return usage("want one pipeline file, got %d arguments (natspipe plan -workers 7 testdata/pipelines/seed.yaml)", len(pos))
	}
	p, err := pipefile.Load(pos[0])
	if err != nil {
		return usage("%v", err)
	}
	base, err := planRunOptions(pos[0])
	if err != nil {
		return usage("%v", err)
	}
	if p, err = planPipeline(p, base); err != nil {
		return usage("%v", err)
	}
	if (*workers > 0) == (*target > 0) {
		return usage("give -workers N or -target R (msgs/s), one of them")
	}
	if *verifyTop < 0 || *n < 0 || (*verifyTop > 0 && *target > 0) {
		return usage("-verify %d -n %d: want counts >= 0, and -verify with -workers", *verifyTop, *n)
	}
	if *top < 1 {
		return usage("-top %d: want at least 1", *top)
	}
	if *load < 0 || *load > 1 || *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0) || (*load > 0 && *rate > 0) {
		return usage("-load %v -rate %v: give at most one, a load in (0, 1] or a rate > 0", *load, *rate)
	}
	m := allocplan.Model{Spec: p.Spec, Mode: p.Mode, Concurrency: p.Concurrency, Dispatch: allocplan.DispatchFor(p.Transport), Arrivals: pipelines.Poisson}
	if p.Arrivals == pipelines.Fixed {
		m.Arrivals = pipelines.Fixed
	}
	if *dispatch != "" {
		if d := allocplan.Dispatch(*dispatch); d == allocplan.Random || d == allocplan.Shared {
			m.Dispatch = d
		} else {
			return usage("-dispatch %q: want random or shared", *dispatch)
		}
	}
	l := allocplan.Load{Rate: *rate, Fraction: *load}
	if l.Rate == 0 && l.Fraction == 0 {
		switch {
		case p.Rate > 0:
			l.Rate = p.Rate
		case p.Load > 0 && p.Load <= 1:
			l.Fraction = p.Load
		default:
			l.Fraction = defaultPlanLoad
		}
	}
	printModel(stdout, p, m)
	if *target > 0 {
		a, err := m.Target(*target)
		if err != nil {
			return usage("%v", err)
		}
		r := l.Rate
		if r == 0 || r >= m.Bound(a) {
			r = l.Fraction * m.Bound(a)
			if r == 0 {
				r = defaultPlanLoad * m.Bound(a)
			}
		}
		fmt.Fprintf(stdout, "fewest workers reaching %g msgs/s: %d\n", *target, a.Total())
		printPredictions(stdout, []allocplan.Prediction{m.Predict(a, r)}, 1)
		return 0
	}
	ps, err := m.Rank(*workers, l)
	if err != nil {
		return usage("%v", err)
	}
	how := fmt.Sprintf("%.4g msgs/s", ps[0].Rate)
	if l.Fraction > 0 {
		how += fmt.Sprintf(" (%.2g of the best bound)", l.Fraction)
	}
	fmt.Fprintf(stdout, "%d workers: %d allocations, latency at %s\n", *workers, len(ps), how)
	printPredictions(stdout, ps, *top)
	if *verifyTop > 0 {
		msgs := *n
		if msgs == 0 {
			msgs = max(p.Messages, verifyMessages)
		}
		return verify(context.Background(), stdout, stderr, base, m, ps[:min(*verifyTop, len(ps))], msgs)
	}
	return 0
}

func printModel(w io.Writer, p *pipefile.Pipeline, m allocplan.Model) {
	stages := make([]string, p.Spec.Stages())
	for i := range stages {
		stages[i] = p.StageNames[i] + " " + p.Spec.Time(i).String()
	}
	mode := m.Mode
	if mode == "" {
		mode = worker.Sync
	}
	fmt.Fprintf(w, "pipeline %s: %s; %s workers, %s dispatch, %s arrivals\n", p.Name, strings.Join(stages, ", "), mode, m.Dispatch, m.Arrivals)
	fmt.Fprintln(w, "model: bound min_i w_i c_i/E[t_i]; latency sum over stages of M/G/c wait (Erlang C x Allen-Cunneen (ca^2+cs^2)/2, QNA departures) + E[t_i], messaging not modelled")
}

func printPredictions(w io.Writer, ps []allocplan.Prediction, top int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "rank\talloc\tworkers\tbound-msgs/s\tlatency-ms\tutilisation per stage")
	for i, p := range ps[:min(top, len(ps))] {
		rho := make([]string, len(p.Stages))
		for j, s := range p.Stages {
			rho[j] = fmt.Sprintf("%.2f", s.Rho)
		}
		lat := "inf"
		if !math.IsInf(p.Latency, 1) {
			lat = fmt.Sprintf("%.1f", p.Latency*1e3)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f\t%s\t%s\n", i+1, p.Alloc, p.Alloc.Total(), p.Bound, lat, strings.Join(rho, " "))
	}
	tw.Flush()
}
