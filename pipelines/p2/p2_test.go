package p2_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/brokertest"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p1"
	"github.com/natspipe/natspipe/pipelines/p2"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 32}
}

// p1v and p2v are P1 and P2 as the registry (pipelines/variants) starts them.
var (
	p1v, _ = variants.Lookup("p1")
	p2v, _ = variants.Lookup("p2")
)

// starterOn starts P2 with inflight over tr (nil: core) through the registry.
func starterOn(tr transport.Transport, inflight int) varianttest.StartFunc {
	return func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
		return p2v.Start(ctx, variants.Config{Spec: spec, NATS: conn, Subjects: subjects, Transport: tr, Inflight: inflight}, sink)
	}
}

func starter(inflight int) varianttest.StartFunc { return starterOn(nil, inflight) }

func startP1(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
	return p1v.Start(ctx, variants.Config{Spec: spec, NATS: conn, Subjects: subjects}, sink)
}

func config(spec pipelines.Spec, inflight int) pipelines.RunConfig {
	return pipelines.RunConfig{Spec: spec, Variant: "p2", Bound: p2v.Bound(variants.Config{Spec: spec, Inflight: inflight}), Window: inflight}
}

// TestP2ExactlyOnceWithinInflight runs P2 over every transport (a broker
// of its own found or started by internal/brokertest, or skipped saying
// why): every message once through every stage, never more than inflight
// in stage work, and a clean close (the run torn down on the broker).
func TestP2ExactlyOnceWithinInflight(t *testing.T) {
	for _, tr := range transports.All() {
		t.Run("transport="+tr.Name(), func(t *testing.T) {
			benchkit.CheckLeaks(t)
			tr := brokertest.For(t, tr)
			srv := natstest.Start(t)
			spec := testSpec()
			const inflight = 4
			cfg := config(spec, inflight)
			cfg.Window = 16 // more in flight than the limit: the limit must hold
			fx := varianttest.StartOn(t, srv.Conn, tr, starterOn(tr, inflight), cfg)
			res, err := fx.Runner.Run(context.Background(), fx.Endpoint, 100)
			if err != nil {
				t.Fatal(err)
			}
			varianttest.CheckExactlyOnce(t, spec, res)
			o := varianttest.MaxOverlap(res)
			if o < 2 || o > inflight {
				t.Errorf("P2 had at most %d messages in stage work at once, want 2..%d", o, inflight)
			}
			t.Log(res.Summary(), "overlap", o)
		})
	}
}

func TestP2Malformed(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	fx := varianttest.Start(t, srv.Conn, starter(8), config(spec, 8))
	varianttest.Malformed(t, fx, spec, 80)
}

// P2 beats P1 by about inflight (theory: inflight x): asserted loosely, at
// half the theory, and neither may beat its bound.
func TestP2BeatsP1(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	const inflight = 8
	one := varianttest.Start(t, srv.Conn, startP1, pipelines.RunConfig{Spec: spec, Variant: "p1", Bound: p1.Bound(spec), Window: inflight})
	r1, err := one.Runner.Run(context.Background(), one.Endpoint, 60)
	if err != nil {
		t.Fatal(err)
	}
	two := varianttest.Start(t, srv.Conn, starter(inflight), config(spec, inflight))
	r2, err := two.Runner.Run(context.Background(), two.Endpoint, 240)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*pipelines.Result{r1, r2} {
		if r.Throughput > r.Bound*1.02 {
			t.Errorf("%s: throughput %.1f above its bound %.1f", r.Variant, r.Throughput, r.Bound)
		}
	}
	theory := r2.Bound / r1.Bound
	got := r2.Throughput / r1.Throughput
	t.Logf("P2/P1 = %.2f (theory %.0f): %s | %s", got, theory, r1.Summary(), r2.Summary())
	if got < theory/2 {
		t.Errorf("P2 is %.2fx P1, theory says %.0fx: want at least half of that", got, theory)
	}
}

// BenchmarkP2 sweeps the in-flight limit: sleep work 1, 8 and 64 (the
// throughput grows with it), cpu work 1, 2 and 8 (it stops at the core
// count; NATSPIPE_SWEEP=full adds 4). NATSPIPE_INFLIGHT replaces the sweep.
func BenchmarkP2(b *testing.B) {
	srv := natstest.Start(b)
	base := benchkit.Spec(b, pipelines.DefaultSpec())
	sweep := map[pipelines.WorkModel][]int{
		pipelines.Sleep: {1, 8, 64},
		pipelines.CPU:   {1, 2, 8},
	}
	if benchkit.Full(b) {
		sweep[pipelines.CPU] = []int{1, 2, 4, 8}
	}
	if n := benchkit.Int(b, pipelines.EnvInflight, 0); n > 0 {
		sweep = map[pipelines.WorkModel][]int{pipelines.Sleep: {n}, pipelines.CPU: {n}}
	}
	trs, err := transports.FromEnv(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
		for _, inflight := range sweep[work] {
			for _, tr := range trs {
				spec := base
				spec.Work = work
				fixture := benchkit.Once(func() *varianttest.Fixture {
					cfg := config(spec, inflight)
					cfg.Window = max(inflight, benchkit.Int(b, pipelines.EnvWindow, 0))
					cfg.Timeout = benchkit.Timeout(b)
					ready := brokertest.For(b, tr)
					return varianttest.StartOn(b, srv.Conn, ready, starterOn(ready, inflight), cfg)
				})
				b.Run(fmt.Sprintf("work=%s/inflight=%d/transport=%s", work, inflight, tr.Name()), func(b *testing.B) {
					brokertest.For(b, tr) // skips, saying why, when tr's broker is not there
					fx := fixture()
					benchkit.Bench(b, fx.Runner, fx.Endpoint)
				})
			}
		}
	}
}

func TestP2NegativeInflight(t *testing.T) {
	r, err := pipelines.NewRunner(config(testSpec(), 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Start(context.Background(), p2.Options{Subjects: bus.NewSubjects(), Inflight: -1}, testSpec(), r); err == nil {
		t.Fatal("inflight -1 accepted")
	}
}
