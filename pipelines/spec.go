package pipelines

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WorkModel says how a stage spends its time.
type WorkModel string

const (
	// Sleep waits the stage's time without holding a CPU (I/O-like work).
	Sleep WorkModel = "sleep"
	// CPU computes for the stage's time on its own thread, holding a core.
	CPU WorkModel = "cpu"
)

// ParseWorkModel returns the work model named s.
func ParseWorkModel(s string) (WorkModel, error) {
	switch WorkModel(s) {
	case Sleep, CPU:
		return WorkModel(s), nil
	}
	return "", fmt.Errorf("work model %q: want %q or %q", s, Sleep, CPU)
}

// MaxStages is the most stages a pipeline may have (the envelope stores the
// stage number in one byte).
const MaxStages = 64

// Spec describes a pipeline: its stages in order, how they work, and the
// payload each message carries.
type Spec struct {
	// Durations holds each stage's defined time, S1 first: its constant
	// time, or the mean of its distribution (Service). Bounds, floors and
	// window sizes use it.
	Durations []time.Duration
	// Service holds each stage's service-time distribution when any stage
	// is not constant (set both with SetTimes); nil: every stage takes
	// exactly its Durations.
	Service []ServiceTime
	// Seed seeds the service-time draws: each worker of each stage draws
	// from its own stream derived from it (see StreamSeed).
	Seed uint64
	// Work is the work model of every stage.
	Work WorkModel
	// PayloadSize is the number of payload bytes in each message.
	PayloadSize int
	// Slowdown adds hidden work to stages (by index), outside the defined
	// durations and the bound: a deliberate regression, for proving that the
	// regression gate catches one. nil in every real measurement.
	Slowdown []time.Duration
}

// SeedDurations are the original study's stage times: 10, 40, 10, 10 ms.
func SeedDurations() []time.Duration {
	return []time.Duration{10 * time.Millisecond, 40 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
}

// DefaultSpec is the study's pipeline: seed durations, sleep work, 64-byte payload.
func DefaultSpec() Spec {
	return Spec{Durations: SeedDurations(), Work: Sleep, PayloadSize: 64}
}

// SetTimes sets the stages' service times: Durations to their means and
// Service to the distributions (nil when every stage is constant).
func (s *Spec) SetTimes(ts []ServiceTime) {
	s.Durations = make([]time.Duration, len(ts))
	s.Service = nil
	for i, t := range ts {
		s.Durations[i] = t.MeanDuration()
		if !t.IsConstant() {
			s.Service = slices.Clone(ts)
		}
	}
}

// Time is stage i's service-time distribution (0-based).
func (s Spec) Time(i int) ServiceTime {
	if i < len(s.Service) {
		return s.Service[i]
	}
	return ConstantTime(s.Durations[i])
}

// Times is every stage's service-time distribution, S1 first.
func (s Spec) Times() []ServiceTime {
	ts := make([]ServiceTime, s.Stages())
	for i := range ts {
		ts[i] = s.Time(i)
	}
	return ts
}

// TimesString formats the stage times as ParseServiceTimes reads them.
func (s Spec) TimesString() string { return ServiceTimesString(s.Times()) }

// Random reports whether stage i's time is drawn from a distribution.
func (s Spec) Random(i int) bool { return i < len(s.Service) && !s.Service[i].IsConstant() }

// MinWork is the least time stage i may have worked on a message whose
// record says drawn: the drawn sample for a random stage, the constant
// time otherwise. No stage finishes sooner.
func (s Spec) MinWork(i int, drawn time.Duration) time.Duration {
	if s.Random(i) {
		return drawn
	}
	return s.Durations[i]
}

// Stages is the number of stages.
func (s Spec) Stages() int { return len(s.Durations) }

// StageName is the conventional name of stage i (0-based): "S1", "S2", ...
func StageName(i int) string { return "S" + strconv.Itoa(i+1) }

// Sum is the latency floor: the sum of the stage times.
func (s Spec) Sum() time.Duration {
	var t time.Duration
	for _, d := range s.Durations {
		t += d
	}
	return t
}

// Bottleneck returns the index of the slowest stage.
func (s Spec) Bottleneck() int {
	b := 0
	for i, d := range s.Durations {
		if d > s.Durations[b] {
			b = i
		}
	}
	return b
}

// Validate reports what is wrong with the spec, if anything.
func (s Spec) Validate() error {
	if len(s.Durations) == 0 {
		return errors.New("spec: no stages")
	}
	if len(s.Durations) > MaxStages {
		return fmt.Errorf("spec: %d stages, at most %d", len(s.Durations), MaxStages)
	}
	for i, d := range s.Durations {
		if d < 0 {
			return fmt.Errorf("spec: stage %s: negative duration %v", StageName(i), d)
		}
		if d > MaxStageDuration {
			return fmt.Errorf("spec: stage %s: duration %v longer than %v", StageName(i), d, MaxStageDuration)
		}
	}
	if len(s.Service) != 0 && len(s.Service) != len(s.Durations) {
		return fmt.Errorf("spec: %d service times for %d stages", len(s.Service), len(s.Durations))
	}
	for i, t := range s.Service {
		if err := t.check(); err != nil {
			return fmt.Errorf("spec: stage %s: %w", StageName(i), err)
		}
		if m := t.MeanDuration(); m != s.Durations[i] {
			return fmt.Errorf("spec: stage %s: %v has mean %v, Durations says %v (set both with SetTimes)", StageName(i), t, m, s.Durations[i])
		}
	}
	for i, d := range s.Slowdown {
		if d < 0 || d > MaxStageDuration {
			return fmt.Errorf("spec: stage %s: slowdown %v out of range [0, %v]", StageName(i), d, MaxStageDuration)
		}
	}
	if _, err := ParseWorkModel(string(s.Work)); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	if s.PayloadSize < 0 || s.PayloadSize > MaxPayload {
		return fmt.Errorf("spec: payload size %d out of range [0, %d]", s.PayloadSize, MaxPayload)
	}
	return nil
}

// DurationsString formats durations as the comma list ParseDurations reads.
func DurationsString(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// ParseDurations reads a comma-separated list of constant stage times such
// as "10ms,40ms,10ms,10ms" (ParseServiceTimes reads each; a distribution is
// an error here). A bare number is taken as milliseconds. Each time must be
// in [0, MaxStageDuration].
func ParseDurations(s string) ([]time.Duration, error) {
	ts, err := ParseServiceTimes(s)
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		if !t.IsConstant() {
			return nil, fmt.Errorf("durations: stage %s: %v: want a constant time", StageName(i), t)
		}
		out[i] = t.MeanDuration()
	}
	return out, nil
}

func parseDuration(f string) (time.Duration, error) {
	if ms, err := strconv.ParseFloat(f, 64); err == nil {
		// A float out of int64's range converts to an undefined value: keep
		// the conversion within about ±100 days.
		if math.IsNaN(ms) || math.Abs(ms) > 1e10 {
			return 0, fmt.Errorf("bad duration %q (want e.g. 10ms, at most %v)", f, MaxStageDuration)
		}
		return time.Duration(ms * float64(time.Millisecond)), nil
	}
	d, err := time.ParseDuration(f)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 10ms)", f)
	}
	return d, nil
}

// Environment variables that set parameters without editing code. Each is
// documented in the README.
const (
	EnvDurations   = "NATSPIPE_DURATIONS"   // stage times, e.g. "10ms,40ms,10ms,10ms" or "10ms,exp(40ms),10ms,10ms"
	EnvWork        = "NATSPIPE_WORK"        // "sleep" or "cpu"; benchmarks that sweep work ignore it
	EnvPayload     = "NATSPIPE_PAYLOAD"     // payload bytes per message
	EnvWindow      = "NATSPIPE_WINDOW"      // closed-loop window; 0 or unset: sized by Little's law
	EnvInflight    = "NATSPIPE_INFLIGHT"    // P2 in-flight limit for benchmarks that do not sweep it
	EnvConcurrency = "NATSPIPE_CONCURRENCY" // an async P3/P4 worker's messages in stage work at once
	EnvTimeout     = "NATSPIPE_TIMEOUT"     // upper bound on one run, e.g. "2m"
	EnvNATSURL     = "NATS_URL"             // use this server instead of an embedded one
	EnvSlowdown    = "NATSPIPE_SLOWDOWN"    // hidden extra work, e.g. "S2=2ms": a deliberate regression
)

// Getenv looks up an environment variable; it is a parameter so tests can
// supply their own environment.
type Getenv func(string) string

// get looks name up; a nil Getenv reads the process environment.
func (g Getenv) get(name string) string {
	if g == nil {
		return os.Getenv(name)
	}
	return g(name)
}

// SpecFromEnv starts from base and applies NATSPIPE_DURATIONS, NATSPIPE_WORK
// and NATSPIPE_PAYLOAD when set. A bad value is an error naming the variable.
func SpecFromEnv(base Spec, getenv Getenv) (Spec, error) {
	s := base
	s.Durations = append([]time.Duration(nil), base.Durations...)
	if v := getenv.get(EnvDurations); v != "" {
		ts, err := ParseServiceTimes(v)
		if err != nil {
			return Spec{}, fmt.Errorf("%s=%q: %w", EnvDurations, v, err)
		}
		s.SetTimes(ts)
	}
	if v := getenv.get(EnvWork); v != "" {
		w, err := ParseWorkModel(v)
		if err != nil {
			return Spec{}, fmt.Errorf("%s=%q: %w", EnvWork, v, err)
		}
		s.Work = w
	}
	if v := getenv.get(EnvPayload); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxPayload {
			return Spec{}, fmt.Errorf("%s=%q: want an integer in [0, %d]", EnvPayload, v, MaxPayload)
		}
		s.PayloadSize = n
	}
	sd, err := SlowdownFromEnv(getenv, s.Stages())
	if err != nil {
		return Spec{}, err
	}
	s.Slowdown = sd
	return s, s.Validate()
}

// SlowdownFromEnv reads NATSPIPE_SLOWDOWN for a pipeline of n stages: nil
// when unset, an error naming the variable when bad.
func SlowdownFromEnv(getenv Getenv, n int) ([]time.Duration, error) {
	v := getenv.get(EnvSlowdown)
	if v == "" {
		return nil, nil
	}
	sd, err := ParseSlowdown(v, n)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", EnvSlowdown, v, err)
	}
	return sd, nil
}

// ParseSlowdown reads "S2=2ms,S4=1ms" into per-stage extra work for a
// pipeline of n stages.
func ParseSlowdown(v string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, n)
	for _, f := range strings.Split(v, ",") {
		name, ds, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return nil, fmt.Errorf("slowdown %q: want STAGE=DURATION, e.g. S2=2ms", f)
		}
		i, err := ParseStage(name, n)
		if err != nil {
			return nil, fmt.Errorf("slowdown: %w", err)
		}
		d, err := parseDuration(ds)
		if err != nil || d < 0 || d > MaxStageDuration {
			return nil, fmt.Errorf("slowdown %q: want a duration in [0, %v]", f, MaxStageDuration)
		}
		out[i] += d
	}
	return out, nil
}

// ParseStage reads a stage name, "S2" or "2" (1-based), for a pipeline of n
// stages and returns its 0-based index.
func ParseStage(name string, n int) (int, error) {
	num := strings.TrimPrefix(strings.TrimPrefix(name, "S"), "s")
	i, err := strconv.Atoi(num)
	if err != nil || i < 1 || i > n {
		return 0, fmt.Errorf("stage %q: want S1..S%d", name, n)
	}
	return i - 1, nil
}

// IntFromEnv reads a non-negative integer variable, def when unset. The
// variables with a limit of their own (NATSPIPE_WINDOW: MaxWindow,
// NATSPIPE_INFLIGHT: MaxInflight, NATSPIPE_CONCURRENCY: MaxConcurrency) are
// held to it.
func IntFromEnv(getenv Getenv, name string, def int) (int, error) {
	v := getenv.get(name)
	if v == "" {
		return def, nil
	}
	hi := envIntMax(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > hi {
		return 0, fmt.Errorf("%s=%q: want an integer in [0, %d]", name, v, hi)
	}
	return n, nil
}

// DurationFromEnv reads a duration variable, def when unset; a set value
// must be positive and at most MaxRun.
func DurationFromEnv(getenv Getenv, name string, def time.Duration) (time.Duration, error) {
	v := getenv.get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > MaxRun {
		return 0, fmt.Errorf("%s=%q: want a positive duration up to %v, such as 2m", name, v, MaxRun)
	}
	return d, nil
}
