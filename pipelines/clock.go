package pipelines

import (
	"fmt"
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
// Any other value than "", "monotonic" and "wall" is an error, reported by
// CheckClockEnv, which every entry point (natspipe run, the worker,
// benchkit's TestMain) calls before it starts; until then such a value
// leaves the default, monotonic, in place.
const EnvClock = "NATSPIPE_CLOCK"

// Stamp clock names, the values of NATSPIPE_CLOCK.
const (
	ClockMonotonic = "monotonic"
	ClockWall      = "wall"
)

// ParseClock reads a NATSPIPE_CLOCK value: "" or "monotonic" (the default)
// or "wall"; it reports whether the wall clock is chosen.
func ParseClock(v string) (wall bool, err error) {
	switch v {
	case "", ClockMonotonic:
		return false, nil
	case ClockWall:
		return true, nil
	}
	return false, fmt.Errorf("stamp clock %q: want %q or %q", v, ClockMonotonic, ClockWall)
}

// CheckClockEnv reports a bad NATSPIPE_CLOCK, naming the variable. A nil
// getenv reads the process environment, which the stamp clock was chosen
// from.
func CheckClockEnv(getenv Getenv) error {
	v := getenv.get(EnvClock)
	if _, err := ParseClock(v); err != nil {
		return fmt.Errorf("%s=%q: %w", EnvClock, v, err)
	}
	return nil
}

// stampClock converts Go times to stamps; set once at init, never changed.
type stampClock struct {
	wall   bool
	base   int64     // the stamp at anchor
	anchor time.Time // a Go time with a monotonic reading
	unix   int64     // Unix ns at anchor, to show stamps as wall time
}

var clock = newStampClock(os.Getenv(EnvClock) == ClockWall)

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
		return ClockWall
	}
	return ClockMonotonic
}

// WallOffset is what to add to a stamp to get Unix ns, for display.
func WallOffset() int64 { return clock.unix - clock.base }
