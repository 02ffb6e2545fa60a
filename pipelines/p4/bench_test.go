package p4

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// fixture is a sub-benchmark's pipeline: started once, outside the timed
// section, and reused while testing.B ramps b.N.
type fixture struct {
	runner *pipelines.Runner
	pipe   *Pipeline
	ep     *bus.Endpoint
}

func newFixture(b *testing.B, url string, spec pipelines.Spec, opts Options) (*fixture, error) {
	launcher, err := worker.Self()
	if err != nil {
		return nil, err
	}
	bound := Bound(spec, opts.Alloc, opts.Mode, opts.Concurrency)
	window := benchkit.Int(b, pipelines.EnvWindow, 0)
	if window == 0 {
		window = Window(spec, opts.Alloc, opts.Mode, opts.Concurrency, bound)
	}
	runner, err := pipelines.NewRunner(pipelines.RunConfig{
		Spec: spec, Variant: "p4", Bound: bound, Window: window, Timeout: benchkit.Timeout(b),
	})
	if err != nil {
		return nil, err
	}
	subjects := bus.NewSubjects()
	opts.URL, opts.Subjects, opts.Launcher = url, subjects, launcher
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pipe, err := Start(ctx, opts, spec, runner)
	if err != nil {
		return nil, err
	}
	ep, err := bus.Attach(url, subjects, runner)
	if err != nil {
		_ = pipe.Close()
		return nil, err
	}
	return &fixture{runner: runner, pipe: pipe, ep: ep}, nil
}

func (fx *fixture) close() error {
	err := fx.pipe.Close()
	_ = fx.ep.Close()
	return err
}

// benchFleet runs one sub-benchmark: b.N messages through a fleet started
// on its first call. Besides benchkit's metrics it reports the fleet's
// start-up time (startup-ms), each worker's share of its stage's messages
// for stages with several workers (s2-w1-share, ...) and the worst relative
// deviation from an even share (imbalance).
func benchFleet(b *testing.B, url, name string, spec pipelines.Spec, opts Options) {
	var fx *fixture
	var setupErr error
	defer func() {
		if fx != nil {
			if err := fx.close(); err != nil {
				b.Errorf("%s: %v", name, err)
			}
		}
	}()
	b.Run(name, func(b *testing.B) {
		if fx == nil && setupErr == nil {
			fx, setupErr = newFixture(b, url, spec, opts)
		}
		if setupErr != nil {
			b.Fatal(setupErr)
		}
		if err := fx.pipe.Err(); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		before, err := fx.pipe.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		benchkit.Bench(b, fx.runner, fx.ep)
		after, err := fx.pipe.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fx.pipe.Startup())/float64(time.Millisecond), "startup-ms")
		reportShares(b, fx.pipe.Workers(), worker.Handled(before, after), opts.Alloc)
	})
}

// reportShares reports the balance of stages with several workers.
func reportShares(b *testing.B, ids []worker.WorkerID, handled map[string]uint64, alloc Alloc) {
	shares := worker.Shares(ids, handled)
	worst := math.NaN()
	for st, n := range alloc {
		if n < 2 {
			continue
		}
		if im := worker.Imbalance(shares, st); math.IsNaN(worst) || im > worst {
			worst = im
		}
	}
	if math.IsNaN(worst) {
		return
	}
	for _, s := range shares {
		if alloc[s.Stage] > 1 && !math.IsNaN(s.Share) {
			b.ReportMetric(s.Share, s.MetricName())
		}
	}
	b.ReportMetric(worst, "imbalance")
	if b.N > 1 {
		b.Logf("N=%d %s", b.N, worker.FormatShares(shares))
	}
}
