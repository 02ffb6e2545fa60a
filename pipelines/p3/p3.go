// Package p3 is the variant whose stages each run in an operating-system
// process of their own, talking over NATS: one worker process per stage,
// a sync worker by default (exactly one message in stage work at a time),
// so its throughput bound is 1/max(t): 25 msgs/s for the seed durations.
// Async workers (up to Concurrency messages in work each) are the variant's
// other mode.
//
// The worker processes are pipelines/worker's; Start launches and
// supervises them as a pipelines/fleet, through a fleet.Launcher: the test
// binary itself in tests and benchmarks (fleet.Self, with worker.Dispatch
// in TestMain), or a natspipe-worker binary (fleet.Command). P3 is P4
// (pipelines/p4) with one worker per stage; both share the worker and the
// fleet.
package p3

import (
	"context"
	"fmt"
	"slices"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Options configure a P3 pipeline: its worker processes.
type Options = fleet.Processes

// Pipeline is a running P3 pipeline: one worker process per stage.
type Pipeline struct {
	*fleet.Fleet
}

// Start starts one worker process per stage of spec and returns once all
// are ready. Worker faults (a worker that dies) go to sink. Send through a
// bus.Endpoint attached to opts.Subjects; Close the pipeline.
func Start(ctx context.Context, opts Options, spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("p3: %w", err)
	}
	f, err := fleet.Start(ctx, fleet.Config{
		Processes: opts,
		Spec:      spec,
		Alloc:     ones(spec.Stages()),
		Variant:   "p3",
	}, sink)
	if err != nil {
		return nil, err
	}
	return &Pipeline{Fleet: f}, nil
}

func ones(n int) []int { return slices.Repeat([]int{1}, n) }

func concurrent(mode worker.Mode, concurrency int) int {
	return worker.Config{Mode: mode, Concurrency: concurrency}.Concurrent()
}

// Capacity is what limits P3's throughput: each stage's one worker's
// concurrency, and for cpu work the cores.
func Capacity(spec pipelines.Spec, mode worker.Mode, concurrency int) pipelines.Capacity {
	return fleet.Capacity(ones(spec.Stages()), concurrent(mode, concurrency))
}

// Bound is P3's throughput bound in msgs/s: min over stages of
// concurrency/t_i (1/max(t) for sync workers), and for cpu work at most
// cores/sum(t).
func Bound(spec pipelines.Spec, mode worker.Mode, concurrency int) float64 {
	return spec.Bound(Capacity(spec, mode, concurrency))
}

// Window is the default closed-loop window of a run at bound msgs/s (see
// fleet.Window).
func Window(spec pipelines.Spec, mode worker.Mode, concurrency int, bound float64) int {
	return fleet.Window(spec, ones(spec.Stages()), concurrent(mode, concurrency), bound)
}
