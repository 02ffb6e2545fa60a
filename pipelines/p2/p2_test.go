package p2_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p1"
	"github.com/natspipe/natspipe/pipelines/p2"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 32}
}

func starter(inflight int) varianttest.StartFunc {
	return func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
		return p2.Start(ctx, p2.Options{NATS: conn, Subjects: subjects, Inflight: inflight}, spec, sink)
	}
}

func startP1(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
	return p1.Start(ctx, p1.Options{NATS: conn, Subjects: subjects}, spec, sink)
}

func config(spec pipelines.Spec, inflight int) pipelines.RunConfig {
	return pipelines.RunConfig{Spec: spec, Variant: "p2", Bound: p2.Bound(spec, inflight), Window: inflight}
}

func TestP2ExactlyOnceWithinInflight(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	const inflight = 4
	cfg := config(spec, inflight)
	cfg.Window = 16 // more in flight than the limit: the limit must hold
	fx := varianttest.Start(t, srv.Conn, starter(inflight), cfg)
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

func BenchmarkP2(b *testing.B) {
	srv := natstest.Start(b)
	base := benchkit.Spec(b, pipelines.DefaultSpec())
	sweep := map[pipelines.WorkModel][]int{
		pipelines.Sleep: {1, 8, 64},
		pipelines.CPU:   {1, 2, 4, 8},
	}
	if n := benchkit.Int(b, pipelines.EnvInflight, 0); n > 0 {
		sweep = map[pipelines.WorkModel][]int{pipelines.Sleep: {n}, pipelines.CPU: {n}}
	}
	for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
		for _, inflight := range sweep[work] {
			spec := base
			spec.Work = work
			fixture := benchkit.Once(func() *varianttest.Fixture {
				cfg := config(spec, inflight)
				cfg.Window = max(inflight, benchkit.Int(b, pipelines.EnvWindow, 0))
				cfg.Timeout = benchkit.Timeout(b)
				return varianttest.Start(b, srv.Conn, starter(inflight), cfg)
			})
			b.Run(fmt.Sprintf("work=%s/inflight=%d", work, inflight), func(b *testing.B) {
				fx := fixture()
				benchkit.Bench(b, fx.Runner, fx.Endpoint)
			})
		}
	}
}
