package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/procs/procstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p0"
	"github.com/natspipe/natspipe/pipelines/p1"
	"github.com/natspipe/natspipe/pipelines/p2"
	"github.com/natspipe/natspipe/pipelines/p3"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func TestMain(m *testing.M) {
	worker.Dispatch() // the test binary doubles as P3/P4's worker processes
	RawHopMain()      // and as the hops of the raw cross-process chain
	benchkit.Exit(m)
}

// suiteInflight is P2's in-flight limit in the suite.
const suiteInflight = 64

// suiteAlloc is P4's allocation in the suite: the study's 1-4-1-1.
func suiteAlloc() p4.Alloc { return p4.DefaultAlloc() }

// variant is one column of the suite.
type variant struct {
	impl  string
	start varianttest.StartFunc // nil for P0, which has no messaging
	bound func(pipelines.Spec) float64
	// window is the variant's default closed-loop window; nil: Little's law.
	window func(pipelines.Spec, float64) int
}

// variants are P0..P4 as the suite runs them: P2 with inflight 64, P3 with
// sync workers, P4 with 1-4-1-1 sync workers. P3 and P4 start this test
// binary as their worker processes.
func variants(tb testing.TB) []variant {
	launcher, err := worker.Self()
	if err != nil {
		tb.Fatal(err)
	}
	return []variant{
		{impl: "p0", bound: p0.Bound},
		{impl: "p1", start: startP1, bound: p1.Bound},
		{impl: "p2", start: startP2(suiteInflight), bound: func(s pipelines.Spec) float64 { return p2.Bound(s, suiteInflight) }},
		{impl: "p3",
			start: func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
				return p3.Start(ctx, p3.Options{NATS: conn, Subjects: subjects, Launcher: launcher}, spec, sink)
			},
			bound:  func(s pipelines.Spec) float64 { return p3.Bound(s, worker.Sync, 0) },
			window: func(s pipelines.Spec, b float64) int { return p3.Window(s, worker.Sync, 0, b) },
		},
		{impl: "p4",
			start: func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
				return p4.Start(ctx, p4.Options{Processes: worker.Processes{NATS: conn, Subjects: subjects, Launcher: launcher}, Alloc: suiteAlloc()}, spec, sink)
			},
			bound:  func(s pipelines.Spec) float64 { return p4.Bound(s, suiteAlloc(), worker.Sync, 0) },
			window: func(s pipelines.Spec, b float64) int { return p4.Window(s, suiteAlloc(), worker.Sync, 0, b) },
		},
	}
}

func startP1(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
	return p1.Start(ctx, p1.Options{NATS: conn, Subjects: subjects}, spec, sink)
}

func startP2(inflight int) varianttest.StartFunc {
	return func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
		return p2.Start(ctx, p2.Options{NATS: conn, Subjects: subjects, Inflight: inflight}, spec, sink)
	}
}

// fixture is a variant ready to run: its runner and where to send.
type fixture struct {
	runner *pipelines.Runner
	sender pipelines.Sender
}

// setup starts v on the server conn names, for cfg (its Variant, Spec, Bound filled here);
// everything stops in tb's Cleanup.
func setup(tb testing.TB, conn natsconn.Config, v variant, cfg pipelines.RunConfig) fixture {
	tb.Helper()
	cfg.Variant = v.impl
	if cfg.Bound == 0 {
		cfg.Bound = v.bound(cfg.Spec)
	}
	if cfg.Window == 0 && v.window != nil {
		cfg.Window = v.window(cfg.Spec, cfg.Bound)
	}
	if v.start == nil {
		r, err := pipelines.NewRunner(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		p, err := p0.New(cfg.Spec, r)
		if err != nil {
			tb.Fatal(err)
		}
		return fixture{runner: r, sender: p}
	}
	fx := varianttest.Start(tb, conn, v.start, cfg)
	return fixture{runner: fx.Runner, sender: fx.Endpoint}
}

// BenchmarkSuite is the study's table: every variant on the same pipeline,
// for sleep and cpu work. Compare with scripts/compare.sh suite FILE.
func BenchmarkSuite(b *testing.B) {
	srv := natstest.Start(b)
	base := benchkit.Spec(b, pipelines.DefaultSpec())
	for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
		for _, v := range variants(b) {
			spec := base
			spec.Work = work
			fx := benchkit.Once(func() fixture {
				return setup(b, srv.Conn, v, pipelines.RunConfig{Spec: spec,
					Window: benchkit.Int(b, pipelines.EnvWindow, 0), Timeout: benchkit.Timeout(b)})
			})
			b.Run("work="+string(work)+"/impl="+v.impl, func(b *testing.B) {
				f := fx()
				benchkit.Bench(b, f.runner, f.sender)
			})
		}
	}
}

// overheadHops is the number of NATS hops a message makes in a 4-stage
// pipeline: source to S1, S1 to S2, S2 to S3, S3 to S4, S4 to the sink.
const overheadHops = 5

// BenchmarkOverhead measures messaging cost: each messaging variant (P4 as
// 1-4-1-1, its queue groups) with zero-duration stages and one message in
// flight, against a raw nats.go chain of as many hops measured in the same
// run, beside the variant, outside the timed section. It reports ns/hop and
// x-raw, the ratio of the variant's hop to the raw hop of the same shape:
// P1 and P2 against a chain in one process (impl=raw), P3 and P4 against a
// chain whose every hop is a process of its own (impl=raw-procs), since a
// hop into an idle process pays that process's wake-up.
func BenchmarkOverhead(b *testing.B) {
	srv := natstest.Start(b)
	spec := benchkit.Spec(b, pipelines.DefaultSpec())
	spec.Durations = make([]time.Duration, 4)
	spec.Slowdown = nil
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := NewRawChain(srv.Conn, overheadHops)
	if err != nil {
		b.Fatal(err)
	}
	benchkit.Cleanup(b, "raw chain", raw)
	rawProcs, err := NewRawProcChain(srv.Conn, overheadHops, procstest.NewGroup(b, nil), exe, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	benchkit.Cleanup(b, "raw process chain", rawProcs)
	payload := make([]byte, spec.PayloadSize)
	hop := func(tb testing.TB, c *RawChain, n int) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		per, err := c.RoundTrips(ctx, n, payload)
		if err != nil {
			tb.Fatal(err)
		}
		return per / overheadHops
	}
	for _, r := range []struct {
		impl  string
		chain *RawChain
	}{{"raw", raw}, {"raw-procs", rawProcs}} {
		b.Run("impl="+r.impl, func(b *testing.B) {
			b.ResetTimer()
			per := hop(b, r.chain, b.N)
			b.StopTimer()
			b.ReportMetric(float64(per), "ns/hop")
			b.ReportMetric(1, "x-raw")
		})
	}
	for _, v := range variants(b) {
		if v.start == nil {
			continue
		}
		ref := raw
		if v.impl == "p3" || v.impl == "p4" {
			ref = rawProcs
		}
		fx := benchkit.Once(func() fixture {
			return setup(b, srv.Conn, v, pipelines.RunConfig{Spec: spec, Window: 1, Timeout: benchkit.Timeout(b)})
		})
		b.Run("impl="+v.impl, func(b *testing.B) {
			f := fx()
			rawHop := hop(b, ref, 2000) // measured now, beside the variant, outside the timed section
			b.ResetTimer()
			res, err := f.runner.Run(context.Background(), f.sender, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			perHop := res.Elapsed / time.Duration(b.N*overheadHops)
			b.ReportMetric(float64(perHop), "ns/hop")
			b.ReportMetric(float64(perHop)/float64(rawHop), "x-raw")
		})
	}
}
