package analysis

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/p1"
	"github.com/natspipe/natspipe/pipelines/p2"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// shortSpec is the seed pipeline scaled down: 1, 4, 1, 1 ms.
func shortSpec() pipelines.Spec {
	return pipelines.Spec{
		Durations: []time.Duration{time.Millisecond, 4 * time.Millisecond, time.Millisecond, time.Millisecond},
		Work:      pipelines.Sleep, PayloadSize: 32,
	}
}

// runP1 runs n messages through a real P1 pipeline on an embedded server and
// returns the result and the trace as written to and read back from disk.
func runP1(t *testing.T, n int) (*pipelines.Result, *trace.Trace) {
	t.Helper()
	srv := natstest.Start(t)
	spec := shortSpec()
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p1", Bound: p1.Bound(spec)})
	if err != nil {
		t.Fatal(err)
	}
	subjects := bus.NewSubjects()
	p, err := p1.Start(context.Background(), p1.Options{NATS: srv.Conn, Subjects: subjects}, spec, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close p1: %v", err)
		}
	})
	ep, err := bus.Attach(srv.Conn, subjects, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ep.Close(); err != nil {
			t.Errorf("close harness: %v", err)
		}
	})
	res, err := r.Run(context.Background(), ep, n)
	if err != nil {
		t.Fatal(err)
	}
	tr := trace.New(res)
	tr.Meta.NATSServer = trace.ServerVersion(ep)
	dir := t.TempDir()
	if err := tr.Save(dir, "p1"); err != nil {
		t.Fatal(err)
	}
	back, err := trace.ReadFile(filepath.Join(dir, "p1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return res, back
}

// TestRealP1 analyses a real P1 run: one executor does all stage work, so
// the stages' utilizations add up to about 1, S2 takes 4/7 of it and is the
// bottleneck, and the analysis agrees with the runner's own measurements.
func TestRealP1(t *testing.T) {
	res, tr := runP1(t, 80)
	r, err := AnalyzeTrace(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 80 || r.Lost != 0 {
		t.Fatalf("completed %d lost %d, want 80 0", r.Completed, r.Lost)
	}
	if r.NATSServer == "" {
		t.Error("no NATS server version in the trace")
	}
	if r.Bottleneck != "S2" {
		t.Errorf("bottleneck %s, want S2", r.Bottleneck)
	}
	// One executor: the stages' utilizations add up to its busy share of the
	// wall time, which can never pass 1. How much of that share S2 gets
	// depends on how late each sleep wakes on this machine (a loaded one
	// stretches the 1 ms stages the most), so it is held against the
	// service times the records carry, not against the defined 4/7.
	var sum float64
	busy := make([]time.Duration, len(r.Stages))
	for _, rec := range res.Records {
		for i, st := range rec.Stages {
			busy[i] += time.Duration(st.Finished - st.Started)
		}
	}
	var total time.Duration
	for _, b := range busy {
		total += b
	}
	for i, s := range r.Stages {
		sum += s.Utilization
		if s.Workers != 1 {
			t.Errorf("%s: %d workers, want 1", s.Name, s.Workers)
		}
		if s.Service.P50 < s.Defined {
			t.Errorf("%s: service p50 %v below its defined %v", s.Name, s.Service.P50, s.Defined)
		}
		if s.Utilization <= 0 {
			t.Errorf("%s: utilization %v, want > 0", s.Name, s.Utilization)
		}
		if want := ms(busy[i]) / r.Wall; !near(s.Utilization, want, 1e-6) {
			t.Errorf("%s: utilization %.4f, its records' service time over the wall time %.4f", s.Name, s.Utilization, want)
		}
	}
	if sum > 1.001 {
		t.Errorf("utilizations sum to %.3f: one executor cannot be busy more than all the time", sum)
	}
	if want := ms(total) / r.Wall; !near(sum, want, 1e-6) {
		t.Errorf("utilizations sum to %.4f, the records' busy time over the wall time is %.4f", sum, want)
	}
	// The same latency histogram as the runner's, and the same throughput
	// to within clock noise.
	for _, q := range []float64{50, 90, 99} {
		if got, want := r.LatencyAt(q/100), float64(res.LatencyAt(q))/1e6; math.Abs(got-want) > 1e-9 {
			t.Errorf("latency p%v %v ms, runner says %v ms", q, got, want)
		}
	}
	if !near(r.Throughput, res.Throughput, 0.02) {
		t.Errorf("throughput %.2f, runner says %.2f", r.Throughput, res.Throughput)
	}
	if !near(r.Bound, res.Bound, 1e-9) || !near(r.Efficiency, res.Efficiency(), 0.02) {
		t.Errorf("bound %v eff %v, runner says %v %v", r.Bound, r.Efficiency, res.Bound, res.Efficiency())
	}
	if r.Latency.P50 < r.Floor {
		t.Errorf("latency p50 %v below the floor %v", r.Latency.P50, r.Floor)
	}
	if r.Transit.P50 <= 0 {
		t.Errorf("transit p50 %v: messages through NATS take time", r.Transit.P50)
	}
}

// TestRealOpenLoop analyses a real open-loop P2 run: latency from the
// intended send and the publish delay agree with the runner's histograms.
func TestRealOpenLoop(t *testing.T) {
	srv := natstest.Start(t)
	spec := shortSpec()
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p2", Bound: p2.Bound(spec, 0), Rate: 400})
	if err != nil {
		t.Fatal(err)
	}
	subjects := bus.NewSubjects()
	p, err := p2.Start(context.Background(), p2.Options{NATS: srv.Conn, Subjects: subjects}, spec, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close p2: %v", err)
		}
	})
	ep, err := bus.Attach(srv.Conn, subjects, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	res, err := r.Run(context.Background(), ep, 120)
	if err != nil {
		t.Fatal(err)
	}
	a, err := AnalyzeTrace(trace.New(res), Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := a.OpenLoop
	if o == nil || o.Rate != 400 {
		t.Fatalf("open loop %+v, want rate 400", o)
	}
	if !near(o.Offered, 400, 0.01) {
		t.Errorf("offered %.1f msgs/s, want 400 (fixed spacing)", o.Offered)
	}
	for _, q := range []float64{50, 99} {
		if got, want := a.LatencyAt(q/100), float64(res.LatencyAt(q))/1e6; math.Abs(got-want) > 1e-9 {
			t.Errorf("latency p%v %v ms, runner says %v ms", q, got, want)
		}
	}
	if got, want := o.PublishDelay.P99, float64(res.PublishDelay.ValueAtQuantile(99))/1e3; math.Abs(got-want) > 1e-9 {
		t.Errorf("publish delay p99 %v ms, runner says %v ms", got, want)
	}
	if o.FromSend.P50 > a.Latency.P50 || a.Latency.P50 < a.Floor {
		t.Errorf("latency from send p50 %v, from intended %v, floor %v: want send <= intended, intended >= floor",
			o.FromSend.P50, a.Latency.P50, a.Floor)
	}
}
