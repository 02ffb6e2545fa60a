package pipelines

import (
	"os"
	"time"
)

// Times in envelopes, records and traces are int64 nanoseconds on one clock,
// the stamp clock:
//
//   - by default the host's monotonic clock (CLOCK_MONOTONIC on Linux): the
//     same in every process on the machine and never slewed, so stamps from
//     the harness and from worker processes compare exactly. The wall clock
//     is not used because NTP slews it against the monotonic clock (drift of
//     0.1% has been seen on a fresh VM: 100 µs in 100 ms), which makes stages
//     appear to overlap.
//   - with NATSPIPE_CLOCK=wall, Unix time: for workers on several machines,
//     whose clocks must then be synchronized.
//
// The choice is read once at start-up; every process of a run must agree.
const EnvClock = "NATSPIPE_CLOCK"

// stampClock converts Go times to stamps; set once at init, never changed.
type stampClock struct {
	wall   bool
	base   int64     // the stamp at anchor
	anchor time.Time // a Go time with a monotonic reading
	unix   int64     // Unix ns at anchor, to show stamps as wall time
}

var clock = newStampClock(os.Getenv(EnvClock) == "wall")

func newStampClock(wall bool) stampClock {
	anchor := time.Now()
	c := stampClock{wall: wall, anchor: anchor, unix: anchor.UnixNano(), base: anchor.UnixNano()}
	if !wall {
		if a, mono, ok := monotonicAnchor(); ok {
			// Go's monotonic readings are CLOCK_MONOTONIC, so offsets from
			// anchor are exact; the anchor pair is taken within a microsecond.
			c.anchor, c.unix, c.base = a, a.UnixNano(), mono
		} else {
			c.wall = true
		}
	}
	return c
}

// Stamp converts t, which must carry a monotonic reading (from time.Now), to
// a stamp.
func Stamp(t time.Time) int64 {
	if clock.wall {
		return t.UnixNano()
	}
	return clock.base + int64(t.Sub(clock.anchor))
}

// Now is the stamp of the present.
func Now() int64 { return Stamp(time.Now()) }

// StampClock names the stamp clock in use: "monotonic" or "wall".
func StampClock() string {
	if clock.wall {
		return "wall"
	}
	return "monotonic"
}

// WallOffset is what to add to a stamp to get Unix ns, for display.
func WallOffset() int64 { return clock.unix - clock.base }
