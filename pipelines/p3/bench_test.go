package p3

import (
	"fmt"
	"os"
	"testing"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/fleetbench"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// BenchmarkP3 sweeps worker modes (sync, async), work models (sleep, cpu)
// and transports, the transport last so that a pattern for the rest lists
// the transports side by side: BenchmarkP3/mode=sync/work=sleep/transport=core.
// NATSPIPE_MODE replaces its sweep; the transports are
// transports.FromEnv's (core unless NATSPIPE_TRANSPORT says otherwise).
func BenchmarkP3(b *testing.B) {
	spec := benchkit.Spec(b, pipelines.DefaultSpec())
	modes := []worker.Mode{worker.Sync, worker.Async}
	if m, err := worker.ModeFromEnv(os.Getenv, ""); err != nil {
		b.Fatal(err)
	} else if m != "" {
		modes = []worker.Mode{m}
	}
	conc := benchkit.Int(b, worker.EnvConcurrency, 0)
	srv := natstest.Start(b)
	trs, err := transports.FromEnv(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range modes {
		for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
			for _, tr := range trs {
				s := spec
				s.Work = work
				fleetbench.Run(b, srv.Conn, fmt.Sprintf("mode=%s/work=%s/transport=%s", mode, work, tr.Name()),
					benchConfig(s, Options{Mode: mode, Concurrency: conc, Transport: tr}))
			}
		}
	}
}

// benchConfig is a P3 sub-benchmark's pipeline for fleetbench.
func benchConfig(spec pipelines.Spec, opts Options) fleetbench.Config {
	bound := Bound(spec, opts.Mode, opts.Concurrency)
	return fleetbench.Config{
		Variant: "p3", Spec: spec, Alloc: ones(spec.Stages()), Bound: bound,
		Window:    Window(spec, opts.Mode, opts.Concurrency, bound),
		Processes: opts,
	}
}
