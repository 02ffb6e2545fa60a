package p4

import (
	"context"

	"github.com/natspipe/natspipe/internal/fleetbench"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// benchConfig is a P4 sub-benchmark's pipeline for fleetbench.
func benchConfig(spec pipelines.Spec, opts Options) fleetbench.Config {
	bound := Bound(spec, opts.Alloc, opts.Mode, opts.Concurrency)
	return fleetbench.Config{
		Variant: "p4", Spec: spec, Alloc: opts.Alloc, Bound: bound,
		Window: Window(spec, opts.Alloc, opts.Mode, opts.Concurrency, bound),
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
