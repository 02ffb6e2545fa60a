// Package p4 is the variant whose stages are served by one or more
// operating-system processes each: the w_i workers of stage i share its
// subject through a NATS queue group, so a finite budget of workers can be
// allocated across stages. Its throughput bound is min over stages of
// w_i x concurrency_i / t_i (concurrency 1 for sync workers), and for cpu
// work at most cores/sum(t).
//
// The worker processes are pipelines/worker's; Start launches and
// supervises them as a pipelines/fleet, through a fleet.Launcher: the test
// binary itself in tests and benchmarks (fleet.Self, with worker.Dispatch
// in TestMain), or a natspipe-worker binary. Workers can equally be
// started by hand on other machines joined by a NATS cluster (see
// cmd/natspipe-worker).
//
// NATS picks a queue group member at random for each message, whether it is
// busy or not; a sync worker that is busy keeps what it is given waiting in
// its own queue. The balance across a stage's workers is therefore that of
// random assignment, and the closed-loop window must cover the queues that
// random assignment builds (see Window).
package p4

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Environment variables of P4's tests and benchmarks, beside pipelines'.
const (
	// EnvAlloc is the allocation of a default run, e.g. "1-4-1-1"; set for
	// benchmarks, it replaces their sweep of allocations.
	EnvAlloc = "NATSPIPE_ALLOC"
)

// Limits on an allocation: worker processes per stage and in all.
const (
	// MaxStageWorkers bounds the worker processes of one stage.
	MaxStageWorkers = 64
	// MaxWorkers bounds the worker processes of one pipeline.
	MaxWorkers = 256
)

// Alloc is the number of worker processes of each stage, S1 first.
type Alloc []int

// DefaultAlloc is the study's P4 allocation, 1-4-1-1: S2's 40 ms served by
// four workers, so every stage of the seed pipeline can pass 100 msgs/s.
func DefaultAlloc() Alloc { return Alloc{1, 4, 1, 1} }

// Ones is the allocation of one worker per stage (P3's) for n stages.
func Ones(n int) Alloc { return slices.Repeat(Alloc{1}, n) }

// ParseAlloc reads an allocation written as in benchmark names, "1-4-1-1"
// (commas are accepted too: "1,4,1,1").
func ParseAlloc(s string) (Alloc, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("allocation %q: empty (want e.g. 1-4-1-1)", s)
	}
	sep := "-"
	if strings.Contains(t, ",") {
		sep = ","
	}
	fields := strings.Split(t, sep)
	a := make(Alloc, len(fields))
	for i, f := range fields {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("allocation %q: stage %s: %q is not a worker count >= 1", s, pipelines.StageName(i), f)
		}
		a[i] = n
	}
	if err := a.Check(len(a)); err != nil {
		return nil, err
	}
	return a, nil
}

// String formats the allocation as benchmark names carry it: "1-4-1-1".
func (a Alloc) String() string {
	parts := make([]string, len(a))
	for i, n := range a {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "-")
}

// Total is the number of worker processes.
func (a Alloc) Total() int {
	t := 0
	for _, n := range a {
		t += n
	}
	return t
}

// Check reports what is wrong with the allocation for a pipeline of n stages.
func (a Alloc) Check(n int) error {
	if len(a) != n {
		return fmt.Errorf("allocation %s: %d stages, the pipeline has %d", a, len(a), n)
	}
	if len(a) > pipelines.MaxStages {
		return fmt.Errorf("allocation %s: %d stages, at most %d", a, len(a), pipelines.MaxStages)
	}
	for i, w := range a {
		if w < 1 || w > MaxStageWorkers {
			return fmt.Errorf("allocation %s: stage %s has %d workers, want 1 to %d", a, pipelines.StageName(i), w, MaxStageWorkers)
		}
	}
	if t := a.Total(); t > MaxWorkers {
		return fmt.Errorf("allocation %s: %d workers, at most %d", a, t, MaxWorkers)
	}
	return nil
}

// AllocFromEnv reads NATSPIPE_ALLOC, def when unset.
func AllocFromEnv(getenv pipelines.Getenv, def Alloc) (Alloc, error) {
	if v := getenv(EnvAlloc); v != "" {
		a, err := ParseAlloc(v)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvAlloc, v, err)
		}
		return a, nil
	}
	return def, nil
}

// Options configure a P4 pipeline: its worker processes and their
// allocation to stages.
type Options struct {
	fleet.Processes
	// Alloc is the workers per stage; nil: one each.
	Alloc Alloc
}

// Pipeline is a running P4 pipeline: its fleet of worker processes.
type Pipeline struct {
	*fleet.Fleet
}

// Start starts opts.Alloc[i] workers for each stage i of spec and returns
// once all are ready. Worker faults (a worker that dies) go to sink. Send
// through a bus.Endpoint attached to opts.Subjects; Close the pipeline.
func Start(ctx context.Context, opts Options, spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	const variant = "p4"
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", variant, err)
	}
	if opts.Alloc == nil {
		opts.Alloc = Ones(spec.Stages())
	}
	if err := opts.Alloc.Check(spec.Stages()); err != nil {
		return nil, fmt.Errorf("%s: %w", variant, err)
	}
	f, err := fleet.Start(ctx, fleet.Config{
		Processes: opts.Processes,
		Spec:      spec,
		Alloc:     opts.Alloc,
		Variant:   variant,
	}, sink)
	if err != nil {
		return nil, err
	}
	return &Pipeline{Fleet: f}, nil
}

// Capacity is what limits P4's throughput: each stage's workers x
// concurrency, and for cpu work the cores.
func Capacity(spec pipelines.Spec, alloc Alloc, mode worker.Mode, concurrency int) pipelines.Capacity {
	return fleet.Capacity(alloc, worker.Config{Mode: mode, Concurrency: concurrency}.Concurrent())
}

// Bound is P4's throughput bound in msgs/s: min over stages of
// w_i x concurrency_i / t_i, and for cpu work at most cores/sum(t).
func Bound(spec pipelines.Spec, alloc Alloc, mode worker.Mode, concurrency int) float64 {
	return spec.Bound(Capacity(spec, alloc, mode, concurrency))
}

// Window is the default closed-loop window of a run at bound msgs/s: see
// fleet.Window, which leaves room for the queues random assignment builds.
func Window(spec pipelines.Spec, alloc Alloc, mode worker.Mode, concurrency int, bound float64) int {
	return fleet.Window(spec, alloc, worker.Config{Mode: mode, Concurrency: concurrency}.Concurrent(), bound)
}
