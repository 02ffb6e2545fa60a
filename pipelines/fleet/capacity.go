package fleet

import (
	"math"
	"runtime"

	"github.com/natspipe/natspipe/pipelines"
)

// Capacity is what limits the throughput of a fleet with alloc[i] workers
// on stage i, each with concurrent messages in stage work at most: stage i
// serves alloc[i] x concurrent messages at once, and cpu work is capped by
// the cores (runtime.GOMAXPROCS(0), the machine's when not overridden).
func Capacity(alloc []int, concurrent int) pipelines.Capacity {
	per := make([]int, len(alloc))
	for i, w := range alloc {
		per[i] = w * max(concurrent, 1)
	}
	return pipelines.Capacity{PerStage: per, Cores: runtime.GOMAXPROCS(0)}
}

// Window is the default closed-loop window for a fleet running at bound
// msgs/s. pipelines.DefaultWindow covers the latency floor by Little's law,
// enough to keep one queue busy. A stage with several workers is fed by
// NATS's random choice of queue group member, which leaves some workers
// with a backlog while others idle unless there are messages to spare; the
// window adds four messages per worker of such a stage, and two per
// single-worker stage, whenever the stage runs at half the bound or more.
// (Measured on the seed pipeline with 1-4-1-1: efficiency stops improving
// beyond this.)
func Window(spec pipelines.Spec, alloc []int, concurrent int, bound float64) int {
	w := pipelines.DefaultWindow(spec, bound)
	if math.IsInf(bound, 1) || bound <= 0 {
		return w
	}
	extra := 0
	for i, n := range alloc {
		if i >= spec.Stages() || spec.Durations[i] <= 0 || n < 1 {
			continue
		}
		load := bound * spec.Durations[i].Seconds() / float64(n*max(concurrent, 1))
		switch {
		case load < 0.5:
		case n > 1:
			extra += 4 * n
		default:
			extra += 2
		}
	}
	return w + extra
}
