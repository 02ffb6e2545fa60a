package p3

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/fleetbench"
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
			fleetbench.Run(b, srv.URL, fmt.Sprintf("mode=%s/work=%s", mode, work), benchConfig(s, Options{Mode: mode, Concurrency: conc}))
		}
	}
}

// benchConfig is a P3 sub-benchmark's pipeline for fleetbench.
func benchConfig(spec pipelines.Spec, opts Options) fleetbench.Config {
	bound := Bound(spec, opts.Mode, opts.Concurrency)
	return fleetbench.Config{
		Variant: "p3", Spec: spec, Alloc: ones(spec.Stages()), Bound: bound,
		Window: Window(spec, opts.Mode, opts.Concurrency, bound),
		Start: func(ctx context.Context, url string, subjects bus.Subjects, launcher worker.Launcher, spec pipelines.Spec, sink pipelines.Sink) (*worker.Fleet, error) {
			o := opts
			o.URL, o.Subjects, o.Launcher = url, subjects, launcher
			p, err := Start(ctx, o, spec, sink)
			if err != nil {
				return nil, err
			}
			return p.Fleet, nil
		},
	}
}
