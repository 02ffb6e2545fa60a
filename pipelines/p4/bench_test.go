package p4

import (
	"github.com/natspipe/natspipe/internal/fleetbench"
	"github.com/natspipe/natspipe/pipelines"
)

// benchConfig is a P4 sub-benchmark's pipeline for fleetbench.
func benchConfig(spec pipelines.Spec, opts Options) fleetbench.Config {
	bound := Bound(spec, opts.Alloc, opts.Mode, opts.Concurrency)
	return fleetbench.Config{
		Variant: "p4", Spec: spec, Alloc: opts.Alloc, Bound: bound,
		Window:    Window(spec, opts.Alloc, opts.Mode, opts.Concurrency, bound),
		Processes: opts.Processes,
	}
}
