package pipelines

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPUTime is the CPU time consumed by the calling OS thread.
func threadCPUTime() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// monotonicNow reads CLOCK_MONOTONIC in nanoseconds.
func monotonicNow() (int64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}

// preciseSleepUntil blocks the calling thread until d after start, with an
// absolute clock_nanosleep on CLOCK_MONOTONIC (the clock Go's monotonic
// readings use) and a 1 µs timer slack.
func preciseSleepUntil(start time.Time, d time.Duration) {
	left := d - time.Since(start)
	if left <= 0 {
		return
	}
	now, ok := monotonicNow()
	if !ok {
		time.Sleep(left)
		return
	}
	ts := unix.NsecToTimespec(now + int64(left))
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	for {
		if err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil); err != unix.EINTR {
			return
		}
	}
}
