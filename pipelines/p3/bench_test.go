package p3

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Environment variables of P3's benchmarks, beside pipelines'.
const (
	envMode        = "NATSPIPE_MODE"        // replaces the sweep of worker modes
	envConcurrency = "NATSPIPE_CONCURRENCY" // async workers' messages in work at once
)

// BenchmarkP3 sweeps worker modes (sync, async) and work models (sleep,
// cpu): BenchmarkP3/mode=sync/work=sleep. NATSPIPE_MODE replaces the sweep
// of modes with one.
func BenchmarkP3(b *testing.B) {
	spec := benchkit.Spec(b, pipelines.DefaultSpec())
	modes := []worker.Mode{worker.Sync, worker.Async}
	if v := os.Getenv(envMode); v != "" {
		m, err := worker.ParseMode(v)
		if err != nil {
			b.Fatalf("%s: %v", envMode, err)
		}
		modes = []worker.Mode{m}
	}
	conc := benchkit.Int(b, envConcurrency, 0)
	srv := natstest.Start(b)
	for _, mode := range modes {
		for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
			s := spec
			s.Work = work
			benchFleet(b, srv.URL, fmt.Sprintf("mode=%s/work=%s", mode, work), s, Options{Mode: mode, Concurrency: conc})
		}
	}
}

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
	bound := Bound(spec, opts.Mode, opts.Concurrency)
	window := benchkit.Int(b, pipelines.EnvWindow, 0)
	if window == 0 {
		window = Window(spec, opts.Mode, opts.Concurrency, bound)
	}
	runner, err := pipelines.NewRunner(pipelines.RunConfig{
		Spec: spec, Variant: "p3", Bound: bound, Window: window, Timeout: benchkit.Timeout(b),
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

// benchFleet runs one sub-benchmark: b.N messages through workers started
// on its first call and stopped after its last. It reports benchkit's
// metrics and the workers' start-up time (startup-ms).
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
		benchkit.Bench(b, fx.runner, fx.ep)
		b.ReportMetric(float64(fx.pipe.Startup())/float64(time.Millisecond), "startup-ms")
	})
}
