package pipelines

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dist names a service-time distribution.
type Dist string

// The service-time distributions a stage may have.
const (
	// Constant: every message takes the same time (the study's stages).
	Constant Dist = "const"
	// Exponential with the given mean (cv 1): an M/M/c stage.
	Exponential Dist = "exp"
	// Lognormal with the given mean and a coefficient of variation (or a
	// 99th percentile): a heavy-tailed stage.
	Lognormal Dist = "lognormal"
	// Uniform between a low and a high time.
	Uniform Dist = "uniform"
	// Empirical draws uniformly from a list of measured durations.
	Empirical Dist = "empirical"
)

// z99 is the standard normal's 99th percentile.
const z99 = 2.3263478740408408

// ServiceTime is the distribution of one stage's time. Its zero value is a
// constant 0. Build one with ConstantTime, ExponentialTime, LognormalTime,
// LognormalTimeP99, UniformTime, EmpiricalTime or ParseServiceTime; it is
// immutable and safe to share.
type ServiceTime struct {
	dist Dist
	mean time.Duration // constant, exponential and lognormal: the mean
	cv   float64       // lognormal: the coefficient of variation
	p99  time.Duration // lognormal given by its p99 (for String); else 0
	lo   time.Duration // uniform
	hi   time.Duration // uniform
	// empirical: the samples (ascending) and the file they came from
	samples []time.Duration
	source  string
}

// ConstantTime is a stage that always takes d.
func ConstantTime(d time.Duration) ServiceTime { return ServiceTime{dist: Constant, mean: d} }

// ExponentialTime is an exponential distribution with the given mean.
func ExponentialTime(mean time.Duration) (ServiceTime, error) {
	t := ServiceTime{dist: Exponential, mean: mean}
	return t, t.check()
}

// LognormalTime is a lognormal distribution with the given mean and
// coefficient of variation (standard deviation over mean).
func LognormalTime(mean time.Duration, cv float64) (ServiceTime, error) {
	t := ServiceTime{dist: Lognormal, mean: mean, cv: cv}
	return t, t.check()
}

// LognormalTimeP99 is the lognormal distribution with the given mean whose
// 99th percentile is p99. p99 must lie above the mean and at most about 15
// times it (exp(z99^2/2), where the tail can grow no heavier).
func LognormalTimeP99(mean, p99 time.Duration) (ServiceTime, error) {
	if mean <= 0 {
		return ServiceTime{}, fmt.Errorf("lognormal mean %v: must be > 0", mean)
	}
	if p99 <= mean {
		return ServiceTime{}, fmt.Errorf("lognormal p99 %v: must be > the mean %v", p99, mean)
	}
	r := math.Log(float64(p99) / float64(mean))
	disc := z99*z99 - 2*r
	if disc < 0 {
		return ServiceTime{}, fmt.Errorf("lognormal p99 %v: at most %.2f x the mean %v", p99, math.Exp(z99*z99/2), mean)
	}
	sigma := z99 - math.Sqrt(disc)
	t := ServiceTime{dist: Lognormal, mean: mean, cv: math.Sqrt(math.Expm1(sigma * sigma)), p99: p99}
	return t, t.check()
}

// UniformTime is a uniform distribution over [lo, hi].
func UniformTime(lo, hi time.Duration) (ServiceTime, error) {
	t := ServiceTime{dist: Uniform, lo: lo, hi: hi}
	return t, t.check()
}

// EmpiricalTime draws uniformly from samples; source names where they came
// from (a file path, shown by String).
func EmpiricalTime(samples []time.Duration, source string) (ServiceTime, error) {
	s := slices.Clone(samples)
	slices.Sort(s)
	t := ServiceTime{dist: Empirical, samples: s, source: source}
	return t, t.check()
}

// LoadEmpirical reads a file of durations, one a line ("12ms", or a bare
// number of milliseconds; blank lines and lines starting with # are
// skipped), as an empirical distribution.
func LoadEmpirical(path string) (ServiceTime, error) {
	f, err := os.Open(path)
	if err != nil {
		return ServiceTime{}, fmt.Errorf("empirical: %w", err)
	}
	defer f.Close()
	var ds []time.Duration
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		d, err := parseDuration(s)
		if err != nil {
			return ServiceTime{}, fmt.Errorf("empirical: %s:%d: %w", path, line, err)
		}
		if d < 0 || d > MaxStageDuration {
			return ServiceTime{}, fmt.Errorf("empirical: %s:%d: %v out of range [0, %v]", path, line, d, MaxStageDuration)
		}
		ds = append(ds, d)
	}
	if err := sc.Err(); err != nil {
		return ServiceTime{}, fmt.Errorf("empirical: read %s: %w", path, err)
	}
	if len(ds) == 0 {
		return ServiceTime{}, fmt.Errorf("empirical: %s: no durations", path)
	}
	return EmpiricalTime(ds, path)
}

// check reports a parameter out of range.
func (t ServiceTime) check() error {
	inRange := func(what string, d time.Duration, pos bool) error {
		if d < 0 || (pos && d == 0) {
			return fmt.Errorf("%s %v: must be > 0", what, d)
		}
		if d > MaxStageDuration {
			return fmt.Errorf("%s %v: at most %v", what, d, MaxStageDuration)
		}
		return nil
	}
	switch t.dist {
	case Constant, "":
		if t.mean < 0 {
			return fmt.Errorf("%v: must be >= 0", t.mean)
		}
		return inRange("time", t.mean, false)
	case Exponential:
		return inRange("exp mean", t.mean, true)
	case Lognormal:
		if err := inRange("lognormal mean", t.mean, true); err != nil {
			return err
		}
		if !(t.cv > 0) || t.cv > 100 || math.IsInf(t.cv, 0) {
			return fmt.Errorf("lognormal cv %v: must be > 0 and at most 100", t.cv)
		}
	case Uniform:
		if err := inRange("uniform low", t.lo, false); err != nil {
			return err
		}
		if err := inRange("uniform high", t.hi, true); err != nil {
			return err
		}
		if t.hi < t.lo {
			return fmt.Errorf("high %v must be >= low %v", t.hi, t.lo)
		}
	case Empirical:
		if len(t.samples) == 0 {
			return errors.New("empirical: no durations")
		}
		if t.samples[0] < 0 || t.samples[len(t.samples)-1] > MaxStageDuration {
			return fmt.Errorf("empirical: durations out of range [0, %v]", MaxStageDuration)
		}
	default:
		return fmt.Errorf("distribution %q: unknown", t.dist)
	}
	return nil
}

// Dist is the distribution's kind.
func (t ServiceTime) Dist() Dist {
	if t.dist == "" {
		return Constant
	}
	return t.dist
}

// IsConstant reports whether every draw is the same time.
func (t ServiceTime) IsConstant() bool { return t.Dist() == Constant }

// Mean is the expected service time, in seconds.
func (t ServiceTime) Mean() float64 {
	switch t.dist {
	case Uniform:
		return (t.lo + t.hi).Seconds() / 2
	case Empirical:
		var s float64
		for _, d := range t.samples {
			s += d.Seconds()
		}
		return s / float64(len(t.samples))
	}
	return t.mean.Seconds()
}

// MeanDuration is Mean as a duration, rounded to the nanosecond: the
// stage's defined time (Spec.Durations) that bounds and floors use.
func (t ServiceTime) MeanDuration() time.Duration {
	return time.Duration(math.Round(t.Mean() * 1e9))
}

// Var is the variance of the service time, in seconds squared.
func (t ServiceTime) Var() float64 {
	switch t.dist {
	case Exponential:
		m := t.mean.Seconds()
		return m * m
	case Lognormal:
		s := t.cv * t.mean.Seconds()
		return s * s
	case Uniform:
		w := (t.hi - t.lo).Seconds()
		return w * w / 12
	case Empirical:
		m := t.Mean()
		var v float64
		for _, d := range t.samples {
			x := d.Seconds() - m
			v += x * x
		}
		return v / float64(len(t.samples))
	}
	return 0
}

// CV2 is the squared coefficient of variation, Var/Mean^2 (0 for a
// constant, 1 for an exponential); 0 when the mean is 0.
func (t ServiceTime) CV2() float64 {
	m := t.Mean()
	if m == 0 {
		return 0
	}
	return t.Var() / (m * m)
}

// Draw returns one service time drawn with rng, clamped to
// [0, MaxStageDuration]. A constant ignores rng (which may be nil).
func (t ServiceTime) Draw(rng *rand.Rand) time.Duration {
	var x float64 // nanoseconds
	switch t.dist {
	case Exponential:
		x = rng.ExpFloat64() * float64(t.mean)
	case Lognormal:
		s2 := math.Log1p(t.cv * t.cv)
		mu := math.Log(float64(t.mean)) - s2/2
		x = math.Exp(mu + math.Sqrt(s2)*rng.NormFloat64())
	case Uniform:
		x = float64(t.lo) + rng.Float64()*float64(t.hi-t.lo)
	case Empirical:
		return t.samples[rng.IntN(len(t.samples))]
	default:
		return t.mean
	}
	if !(x < float64(MaxStageDuration)) { // NaN too
		return MaxStageDuration
	}
	return time.Duration(x)
}

// String is the form ParseServiceTime reads: "10ms", "exp(5ms)",
// "lognormal(5ms,cv=1.5)", "lognormal(5ms,p99=40ms)", "uniform(2ms,8ms)",
// "empirical(PATH)".
func (t ServiceTime) String() string {
	switch t.dist {
	case Exponential:
		return "exp(" + t.mean.String() + ")"
	case Lognormal:
		if t.p99 > 0 {
			return "lognormal(" + t.mean.String() + ",p99=" + t.p99.String() + ")"
		}
		return "lognormal(" + t.mean.String() + ",cv=" + strconv.FormatFloat(t.cv, 'g', -1, 64) + ")"
	case Uniform:
		return "uniform(" + t.lo.String() + "," + t.hi.String() + ")"
	case Empirical:
		return "empirical(" + t.source + ")"
	}
	return t.mean.String()
}

// ParseServiceTime reads one stage's time in the form String writes: a
// duration ("10ms", or a bare number of milliseconds) for a constant, or
// exp(MEAN) (also exponential(MEAN)), lognormal(MEAN,cv=X),
// lognormal(MEAN,p99=D), uniform(LOW,HIGH) or empirical(PATH), the last
// reading PATH now (see LoadEmpirical). This is the one parser of stage
// times: flags, environment variables, workers and pipeline files all use it.
func ParseServiceTime(s string) (ServiceTime, error) {
	s = strings.TrimSpace(s)
	name, rest, ok := strings.Cut(s, "(")
	if !ok {
		d, err := parseDuration(s)
		if err != nil {
			return ServiceTime{}, err
		}
		if d < 0 {
			return ServiceTime{}, fmt.Errorf("negative duration %q", s)
		}
		if d > MaxStageDuration {
			return ServiceTime{}, fmt.Errorf("%q is longer than %v", s, MaxStageDuration)
		}
		return ConstantTime(d), nil
	}
	if !strings.HasSuffix(rest, ")") {
		return ServiceTime{}, fmt.Errorf("%s: missing closing parenthesis", s)
	}
	name = strings.ToLower(strings.TrimSpace(name))
	inner := strings.TrimSpace(strings.TrimSuffix(rest, ")"))
	if name == "empirical" {
		if inner == "" {
			return ServiceTime{}, fmt.Errorf("%s: want empirical(PATH)", s)
		}
		return LoadEmpirical(inner)
	}
	args := strings.Split(inner, ",")
	for i := range args {
		args[i] = strings.TrimSpace(args[i])
	}
	dur := func(what, v string) (time.Duration, error) {
		d, err := parseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("%s: %s %w", s, what, err)
		}
		return d, nil
	}
	wrap := func(t ServiceTime, err error) (ServiceTime, error) {
		if err != nil {
			return ServiceTime{}, fmt.Errorf("%s: %w", s, err)
		}
		return t, nil
	}
	switch name {
	case "exp", "exponential":
		if len(args) != 1 || args[0] == "" {
			return ServiceTime{}, fmt.Errorf("%s: want exp(MEAN)", s)
		}
		m, err := dur("mean", args[0])
		if err != nil {
			return ServiceTime{}, err
		}
		return wrap(ExponentialTime(m))
	case "lognormal":
		if len(args) != 2 {
			return ServiceTime{}, fmt.Errorf("%s: want lognormal(MEAN,cv=X) or lognormal(MEAN,p99=D)", s)
		}
		m, err := dur("mean", args[0])
		if err != nil {
			return ServiceTime{}, err
		}
		k, v, _ := strings.Cut(args[1], "=")
		switch strings.TrimSpace(k) {
		case "cv":
			cv, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return ServiceTime{}, fmt.Errorf("%s: cv %q: not a number", s, v)
			}
			return wrap(LognormalTime(m, cv))
		case "p99":
			p, err := dur("p99", strings.TrimSpace(v))
			if err != nil {
				return ServiceTime{}, err
			}
			return wrap(LognormalTimeP99(m, p))
		}
		return ServiceTime{}, fmt.Errorf("%s: want lognormal(MEAN,cv=X) or lognormal(MEAN,p99=D)", s)
	case "uniform":
		if len(args) != 2 {
			return ServiceTime{}, fmt.Errorf("%s: want uniform(LOW,HIGH)", s)
		}
		lo, err := dur("low", args[0])
		if err != nil {
			return ServiceTime{}, err
		}
		hi, err := dur("high", args[1])
		if err != nil {
			return ServiceTime{}, err
		}
		return wrap(UniformTime(lo, hi))
	case "const", "constant":
		if len(args) != 1 {
			return ServiceTime{}, fmt.Errorf("%s: want const(D)", s)
		}
		d, err := dur("time", args[0])
		if err != nil {
			return ServiceTime{}, err
		}
		return wrap(ConstantTime(d), ConstantTime(d).check())
	}
	return ServiceTime{}, fmt.Errorf("%s: unknown distribution %q (want exp, lognormal, uniform, empirical or a duration)", s, name)
}

// SplitServiceTimes splits a comma-separated list of stage times, keeping
// the commas inside a distribution's parentheses: "10ms,uniform(2ms,8ms)"
// is two stages.
func SplitServiceTimes(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// ParseServiceTimes reads a comma-separated list of stage times, S1 first,
// each as ParseServiceTime reads it: "10ms,exp(40ms),10ms,10ms".
func ParseServiceTimes(s string) ([]ServiceTime, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("durations: empty list")
	}
	fields := SplitServiceTimes(s)
	if len(fields) > MaxStages {
		return nil, fmt.Errorf("durations: %d stages, at most %d", len(fields), MaxStages)
	}
	out := make([]ServiceTime, 0, len(fields))
	for i, f := range fields {
		t, err := ParseServiceTime(f)
		if err != nil {
			return nil, fmt.Errorf("durations: stage %s: %w", StageName(i), err)
		}
		out = append(out, t)
	}
	return out, nil
}

// ServiceTimesString formats stage times as the list ParseServiceTimes reads.
func ServiceTimesString(ts []ServiceTime) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.String()
	}
	return strings.Join(parts, ",")
}

// Sampler draws one stage's service times for one worker from its own
// seeded stream. It is safe for concurrent use (an async worker's
// messages draw from it at once).
type Sampler struct {
	t   ServiceTime
	mu  sync.Mutex
	rng *rand.Rand
}

// StreamSeed derives the random stream of one worker of one stage from a
// run's seed: workers with different names (or stages) draw different
// sequences, and a rerun with the same seed and names repeats them.
func StreamSeed(seed uint64, stage int, worker string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", stage, worker)
	return h.Sum64() ^ (seed * 0x9e3779b97f4a7c15)
}

// NewSampler returns the sampler of t for worker (its name) at stage
// (0-based), seeded from the run's seed by StreamSeed.
func NewSampler(t ServiceTime, seed uint64, stage int, worker string) *Sampler {
	s := &Sampler{t: t}
	if !t.IsConstant() {
		s.rng = rand.New(rand.NewPCG(seed, StreamSeed(seed, stage, worker)))
	}
	return s
}

// Time is the distribution the sampler draws from.
func (s *Sampler) Time() ServiceTime { return s.t }

// Next draws the next service time.
func (s *Sampler) Next() time.Duration {
	if s.rng == nil {
		return s.t.Draw(nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.Draw(s.rng)
}
