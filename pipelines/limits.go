package pipelines

import "time"

// Limits on a run's parameters, checked before anything starts so that no
// value can make an allocation panic, exhaust memory or overflow a
// time.Duration.
//
// The runner keeps a record of every message for the whole run. Measured
// (peak RSS of natspipe run, zero-duration stages), a message costs about
// 150 bytes plus 90 per stage: 250 MB for a million one-stage messages,
// 490 MB for a million four-stage ones, 580 MB for 100,000 of 64 stages;
// writing a trace about doubles it while the files are written. MaxMessages
// and MaxStageRecords hold the worst case near 2.5 GB (5 GB with a trace):
// 5,000,000 messages of four stages.
const (
	// MaxMessages is the most messages one run may send.
	MaxMessages = 5_000_000
	// MaxStageRecords bounds messages x stages of one run.
	MaxStageRecords = 20_000_000
	// MaxStageDuration is the longest defined time of one stage (and the
	// most hidden slowdown added to one).
	MaxStageDuration = time.Hour
	// MaxRun bounds an explicit run timeout and the time a run would take at
	// its bound (or its open-loop rate).
	MaxRun = 7 * 24 * time.Hour
	// MaxWindow is the largest closed-loop window.
	MaxWindow = 1_000_000
	// MaxInflight is the largest in-flight limit of P2 (a goroutine each).
	MaxInflight = 10_000
	// MaxConcurrency is the most messages an async worker may have in stage
	// work at once (a goroutine each).
	MaxConcurrency = 1024
	// MaxRate is the fastest open-loop rate in msgs/s: one message a
	// nanosecond, the resolution of the source's schedule.
	MaxRate = 1e9
	// MaxLoad is the largest open-loop load, as a fraction of the bound;
	// above 1 the source overloads the pipeline on purpose.
	MaxLoad = 10.0
)

// MaxMessagesFor is the most messages one run may send through a pipeline
// of the given number of stages: MaxMessages, or fewer when messages x
// stages would pass MaxStageRecords.
func MaxMessagesFor(stages int) int {
	if stages < 1 {
		return MaxMessages
	}
	return min(MaxMessages, MaxStageRecords/stages)
}

// envIntMax is the largest value of the integer variable name.
func envIntMax(name string) int {
	switch name {
	case EnvWindow:
		return MaxWindow
	case EnvInflight:
		return MaxInflight
	case EnvConcurrency:
		return MaxConcurrency
	}
	return int(^uint(0) >> 1)
}
