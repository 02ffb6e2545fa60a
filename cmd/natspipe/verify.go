package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	allocplan "github.com/natspipe/natspipe/pipelines/plan"
)

// verifyRun is one measured allocation of natspipe plan -verify.
type verifyRun struct {
	pred             allocplan.Prediction
	closed, open     *pipelines.Result
	closedErr, opErr error
}

// verifyOptions are the natspipe run options of a P4 run with allocation
// pr.Alloc, from base (the file's and the environment's, planRunOptions):
// open loop at rate with rate > 0, else closed loop (the window sized by
// Little's law).
func verifyOptions(base runOptions, pr allocplan.Prediction, rate float64, n int, arrivals pipelines.Arrivals) runOptions {
	o := base
	o.set, o.from = map[string]bool{}, nil
	o.variant, o.n, o.alloc = "p4", n, pr.Alloc.String()
	o.rate, o.load, o.window, o.arrivals = rate, 0, 0, string(arrivals)
	return o
}

// verify runs each prediction's allocation twice for real: open loop at
// the prediction's rate (its throughput against the offered rate, its mean
// latency against the predicted one) and closed loop (its capacity against
// the bound), and prints them side by side. It returns 1 when a run failed.
func verify(ctx context.Context, stdout, stderr io.Writer, base runOptions, m allocplan.Model, ps []allocplan.Prediction, n int) int {
	arrivals := m.Arrivals
	conn, err := natsconn.FromEnv(nil).Resolve(nil)
	if err != nil {
		fmt.Fprintf(stderr, "natspipe plan: -verify: %v\n", err)
		return 2
	}
	var runs []verifyRun
	code := 0
	for _, pr := range ps {
		v := verifyRun{pred: pr}
		for _, open := range []bool{false, true} {
			rate := 0.0
			if open {
				if math.IsInf(pr.Latency, 1) {
					continue // over capacity at that rate: no steady state to measure
				}
				rate = pr.Rate
			}
			o := verifyOptions(base, pr, rate, n, arrivals)
			o.nats = conn
			if err := checkRunOptions(o, o.set); err != nil {
				fmt.Fprintf(stderr, "natspipe plan: -verify %s: %v\n", pr.Alloc, err)
				return runExit(err)
			}
			res, err := execute(ctx, o, io.Discard)
			if err != nil {
				fmt.Fprintf(stderr, "natspipe plan: -verify %s (rate %g): %v\n", pr.Alloc, rate, err)
				code = 1
			}
			if open {
				v.open, v.opErr = res, err
			} else {
				v.closed, v.closedErr = res, err
			}
		}
		runs = append(runs, v)
	}
	o0 := verifyOptions(base, ps[0], 0, n, arrivals)
	fmt.Fprintf(stdout, "\nverified: P4 over %s, %d messages a run\n", o0.transport, n)
	fmt.Fprintf(stdout, "open loop at the rate above, %s arrivals: under capacity the model's throughput is the arrival rate, its latency the queueing prediction\n", arrivals)
	fmt.Fprintln(stdout, "  sent: the source's realised steady rate (a Poisson source's draws stray about 1/sqrt(n) from the offered rate); throughput ratio: measured over sent")
	fmt.Fprintln(stdout, "  from-measured: the model fed what the run measured: each stage's service times (mean and variance) and the sent rate")
	m0 := m
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "alloc\toffered-msgs/s\tsent-msgs/s\tmeasured-msgs/s\tratio\tpredicted-ms\tmeasured-mean-ms\tratio\tfrom-measured-ms\tratio")
	for _, v := range runs {
		sent, thr, tr := "-", "-", "-"
		pl, ml, lr, ms, mr := "inf", "-", "-", "-", "-"
		if !math.IsInf(v.pred.Latency, 1) {
			pl = fmt.Sprintf("%.1f", v.pred.Latency*1e3)
		}
		if v.open != nil && v.opErr == nil {
			sr := sentRate(v.open)
			sent = fmt.Sprintf("%.1f", sr)
			thr = fmt.Sprintf("%.1f", v.open.Throughput)
			tr = fmt.Sprintf("%.3f", v.open.Throughput/sr)
			if v.open.Latency != nil {
				m := v.open.Latency.Mean() / 1e3 // µs to ms
				ml = fmt.Sprintf("%.1f", m)
				lr = fmt.Sprintf("%.3f", m/(v.pred.Latency*1e3))
				if mm, ok := measuredModel(m0, v.open); ok {
					q := mm.Predict(v.pred.Alloc, sr).Latency * 1e3
					ms, mr = fmt.Sprintf("%.1f", q), fmt.Sprintf("%.3f", m/q)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.pred.Alloc, v.pred.Rate, sent, thr, tr, pl, ml, lr, ms, mr)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\ncapacity: closed loop (Little's-law window) against the bound; the bound assumes every worker always has work, which random dispatch (core NATS) does not give in a closed loop")
	fmt.Fprintln(stdout, "  from-measured-service: the bound with each stage's measured mean service time")
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "alloc\tbound-msgs/s\tmeasured-msgs/s\tratio\tfrom-measured-service-msgs/s\tratio")
	for _, v := range runs {
		thr, tr, mb, mr := "-", "-", "-", "-"
		if v.closed != nil && v.closedErr == nil {
			thr = fmt.Sprintf("%.1f", v.closed.Throughput)
			tr = fmt.Sprintf("%.3f", v.closed.Throughput/v.pred.Bound)
			if mm, ok := measuredModel(m0, v.closed); ok {
				b := mm.Bound(v.pred.Alloc)
				mb, mr = fmt.Sprintf("%.1f", b), fmt.Sprintf("%.3f", v.closed.Throughput/b)
			}
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\n", v.pred.Alloc, v.pred.Bound, thr, tr, mb, mr)
	}
	tw.Flush()
	return code
}

// sentRate is the steady rate at which res's source sent, in msgs/s: the
// same slope as its completions' (pipelines.SteadyThroughput), over the
// intended send times, so a Poisson source's own draws are told apart from
// what the pipeline passed.
func sentRate(res *pipelines.Result) float64 {
	sent := make([]int64, 0, len(res.Records))
	for i := range res.Records {
		if t := res.Records[i].Intended; t != 0 {
			sent = append(sent, t)
		}
	}
	slices.Sort(sent)
	if len(sent) == 0 {
		return 0
	}
	return pipelines.SteadyThroughput(sent, sent[0], 0)
}

// measuredModel is m with each stage's service time replaced by the
// service times res measured (an empirical distribution: their mean and
// variance), so the queueing model is checked apart from how far the
// machine's stage times stray from the file's.
func measuredModel(m allocplan.Model, res *pipelines.Result) (allocplan.Model, bool) {
	k := m.Spec.Stages()
	samples := make([][]time.Duration, k)
	for i := range res.Records {
		r := &res.Records[i]
		if !r.Completed() || len(r.Stages) != k {
			continue
		}
		for j, s := range r.Stages {
			samples[j] = append(samples[j], time.Duration(s.Finished-s.Started))
		}
	}
	ts := make([]pipelines.ServiceTime, k)
	for j, ss := range samples {
		t, err := pipelines.EmpiricalTime(ss, "measured")
		if err != nil {
			return m, false
		}
		ts[j] = t
	}
	m.Spec.SetTimes(ts)
	return m, true
}
