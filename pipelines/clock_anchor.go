package pipelines

import (
	"math"
	"time"
)

// monotonicAnchor returns a Go time and the CLOCK_MONOTONIC reading of the
// same instant. The two are read one after the other, so a thread
// descheduled between the reads (as happens when several worker processes
// start at once on few cores) would put every stamp of the process off by
// the pause: hundreds of microseconds, enough for one process's stage to
// seem to start before the previous process's stage finished. So the pair
// is taken between two monotonic readings, several times, and the tightest
// bracket wins: its error is at most half its width.
func monotonicAnchor() (anchor time.Time, mono int64, ok bool) {
	best := int64(math.MaxInt64)
	for range 100 {
		m1, ok1 := monotonicNow()
		t := time.Now()
		m2, ok2 := monotonicNow()
		if !ok1 || !ok2 {
			return time.Time{}, 0, false
		}
		if gap := m2 - m1; gap < best {
			best, anchor, mono = gap, t, m1+gap/2
			if gap <= 500 {
				break
			}
		}
	}
	return anchor, mono, true
}
