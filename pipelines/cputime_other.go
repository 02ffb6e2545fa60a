//go:build !linux

package pipelines

import "time"

// threadCPUTime is not available here; CPU work falls back to wall time.
func threadCPUTime() (time.Duration, bool) { return 0, false }

// monotonicNow is not available here; stamps fall back to wall time.
func monotonicNow() (int64, bool) { return 0, false }

// preciseSleepUntil falls back to time.Sleep here.
func preciseSleepUntil(start time.Time, d time.Duration) {
	if left := d - time.Since(start); left > 0 {
		time.Sleep(left)
	}
}
