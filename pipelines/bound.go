package pipelines

import (
	"math"
	"time"
)

// Capacity is what limits a configuration's throughput, for Bound.
type Capacity struct {
	// PerStage is each stage's concurrency: workers x messages per worker.
	// nil or 0 means no per-stage limit.
	PerStage []int
	// Shared is a concurrency all stages share: 1 for one executor (P0, P1),
	// the in-flight limit for P2. 0 means none.
	Shared int
	// Window is the source's closed-loop window: by Little's law at most
	// Window/floor messages per second. 0 means none.
	Window int
	// Cores caps cpu work at Cores/sum(t). 0 means not capped.
	Cores int
}

// Bound is the theoretical throughput bound in msgs/s of spec under c:
// min over stages of concurrency_i/t_i, the shared limit over sum(t), the
// window over sum(t), and for cpu work the cores over sum(t). +Inf when no
// term is finite (zero durations).
func (s Spec) Bound(c Capacity) float64 {
	b := math.Inf(1)
	sum := s.Sum().Seconds()
	for i, d := range s.Durations {
		if i < len(c.PerStage) && c.PerStage[i] > 0 && d > 0 {
			b = math.Min(b, float64(c.PerStage[i])/d.Seconds())
		}
	}
	if sum > 0 {
		if c.Shared > 0 {
			b = math.Min(b, float64(c.Shared)/sum)
		}
		if c.Window > 0 {
			b = math.Min(b, float64(c.Window)/sum)
		}
		if s.Work == CPU && c.Cores > 0 {
			b = math.Min(b, float64(c.Cores)/sum)
		}
	}
	return b
}

// DefaultWindow sizes a closed-loop window by Little's law: 1.5 x bound x
// latency floor, at least 2, so the source can keep the bottleneck busy. With
// an infinite bound (zero durations) it is 64.
func DefaultWindow(spec Spec, bound float64) int {
	if math.IsInf(bound, 1) || bound <= 0 {
		return 64
	}
	w := int(math.Ceil(1.5*bound*spec.Sum().Seconds())) + 1
	if w < 2 {
		w = 2
	}
	return w
}

// expectedRun is how long n messages should take at the bound.
func expectedRun(spec Spec, bound float64, n int) time.Duration {
	per := time.Millisecond
	if !math.IsInf(bound, 1) && bound > 0 {
		per = time.Duration(float64(time.Second) / bound)
	}
	return time.Duration(n)*per + spec.Sum()
}
