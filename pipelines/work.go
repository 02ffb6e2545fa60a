package pipelines

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// DoWork spends d according to the work model and returns when the stage's
// time is done, or early with ctx's error. It never returns nil sooner than d
// of wall time after it was called:
//   - Sleep waits on a timer, holding no CPU.
//   - CPU spins on a locked OS thread until that thread has consumed d of CPU
//     time, so concurrent CPU stages compete for cores as real computation
//     would (wall time is at least CPU time).
func DoWork(ctx context.Context, model WorkModel, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	switch model {
	case Sleep:
		return sleepFor(ctx, d)
	case CPU:
		return spinFor(ctx, d)
	}
	return fmt.Errorf("work model %q: unknown", model)
}

// preciseTail is how much of a sleep is left to preciseSleepUntil. Go's
// timers wake in whole milliseconds when the runtime waits in netpoll
// (0.3 to 0.5 ms late on average here, sub-millisecond sleeps about 1 ms);
// an absolute clock_nanosleep on the monotonic clock with a 1 µs timer
// slack wakes about 0.1 ms late. The tail blocks a thread, not a CPU.
const preciseTail = 1500 * time.Microsecond

func sleepFor(ctx context.Context, d time.Duration) error {
	start := time.Now()
	if d > preciseTail {
		t := time.NewTimer(d - preciseTail)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	preciseSleepUntil(start, d)
	// Whatever the clocks did, never return before d has passed on the
	// monotonic clock.
	for {
		left := d - time.Since(start)
		if left <= 0 {
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		preciseSleepUntil(time.Now(), left)
	}
}

// spinChunk is how much arithmetic runs between clock reads: small enough to
// overshoot d by microseconds, large enough that the clock is a minor cost.
const spinChunk = 8000

func spinFor(ctx context.Context, d time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, ok := threadCPUTime()
	start := time.Now()
	x := uint64(1)
	for i := 0; ; i++ {
		for j := 0; j < spinChunk; j++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if i%16 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if ok {
			cpu, _ := threadCPUTime()
			if cpu-cpu0 >= d && time.Since(start) >= d {
				break
			}
		} else if time.Since(start) >= d {
			break
		}
	}
	sink(x)
	return nil
}

//go:noinline
func sink(uint64) {}
