package gate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/perf/benchunit"
)

// Direction says which way a unit improves.
type Direction int

const (
	// Unknown means no direction was declared.
	Unknown Direction = 0
	// HigherIsBetter marks units such as msgs/s where an increase is an
	// improvement.
	HigherIsBetter Direction = 1
	// LowerIsBetter marks units such as sec/op where a decrease is an
	// improvement.
	LowerIsBetter Direction = -1
)

// String returns "higher", "lower" or "unknown", the spelling used by
// benchfmt's "better=" unit metadata.
func (d Direction) String() string {
	switch d {
	case HigherIsBetter:
		return "higher"
	case LowerIsBetter:
		return "lower"
	}
	return "unknown"
}

// ParseDirection parses "higher" or "lower".
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "higher":
		return HigherIsBetter, nil
	case "lower":
		return LowerIsBetter, nil
	}
	return Unknown, fmt.Errorf("direction %q: want higher or lower", s)
}

// A Threshold bounds how far a median may move in the worse direction
// before a significant change counts as a regression.
type Threshold struct {
	// Value is a fraction of the baseline median when Relative is set
	// (0.05 for 5%), and an amount in the unit otherwise.
	Value float64
	// Relative selects a relative threshold.
	Relative bool
}

// ParseThreshold parses "5%" (relative) or "0.5" (absolute). Negative,
// infinite and NaN values are rejected.
func ParseThreshold(s string) (Threshold, error) {
	num, rel := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || strings.HasPrefix(num, "+") || strings.HasPrefix(num, "-") {
		return Threshold{}, fmt.Errorf("threshold %q: want a non-negative number, or a percentage such as 5%%", s)
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return Threshold{}, fmt.Errorf("threshold %q: not a finite number", s)
	}
	if rel {
		v /= 100
	}
	return Threshold{Value: v, Relative: rel}, nil
}

// String formats t the way ParseThreshold reads it, to 12 significant
// digits (so that 2000 ns/op, stored as 2e-06 sec/op, does not print as
// 2.0000000000000003e-06).
func (t Threshold) String() string {
	if t.Relative {
		return strconv.FormatFloat(t.Value*100, 'g', 12, 64) + "%"
	}
	return strconv.FormatFloat(t.Value, 'g', 12, 64)
}

// exceeded reports whether a move from base to new of size |new-base|
// is beyond t.
func (t Threshold) exceeded(base, new float64) bool {
	d := math.Abs(new - base)
	if !t.Relative {
		return d > t.Value
	}
	if base == 0 {
		return d > 0
	}
	return d/math.Abs(base) > t.Value
}

// A Rule sets the threshold and/or the direction for the comparisons it
// matches. Rules are written as one line of the configuration file format
// described in the package documentation.
type Rule struct {
	// Bench, if not nil, restricts the rule to benchmarks whose full
	// name (as in the file, "Benchmark" prefix included) it matches.
	Bench *regexp.Regexp
	// Unit, if not empty, restricts the rule to one unit. It is stored
	// tidied (ns/op is stored as sec/op).
	Unit string
	// Threshold, if not nil, is the threshold the rule sets. Absolute
	// thresholds are stored in the tidied unit.
	Threshold *Threshold
	// Better, if not Unknown, is the direction the rule sets for Unit.
	Better Direction
	// Source says where the rule came from, for messages (for example
	// "gate.conf:3" or "built-in").
	Source string
}

// specificity orders rules: bench and unit beat bench, which beats unit,
// which beats neither.
func (r *Rule) specificity() int {
	s := 0
	if r.Bench != nil {
		s += 2
	}
	if r.Unit != "" {
		s++
	}
	return s
}

func (r *Rule) matches(name, unit string) bool {
	return (r.Unit == "" || r.Unit == unit) && (r.Bench == nil || r.Bench.MatchString(name))
}

// String formats r as a configuration line.
func (r *Rule) String() string {
	var f []string
	if r.Bench != nil {
		f = append(f, "bench="+r.Bench.String())
	}
	if r.Unit != "" {
		f = append(f, "unit="+r.Unit)
	}
	if r.Threshold != nil {
		f = append(f, "threshold="+r.Threshold.String())
	}
	if r.Better != Unknown {
		f = append(f, "better="+r.Better.String())
	}
	return strings.Join(f, " ")
}

// BuiltinRules returns the rules every comparison starts from: a 5%
// relative threshold for every unit and an absolute threshold of 0.5 for
// allocs/op. It returns a new slice on every call.
func BuiltinRules() []Rule {
	return []Rule{
		{Threshold: &Threshold{Value: 0.05, Relative: true}, Source: "built-in"},
		{Unit: "allocs/op", Threshold: &Threshold{Value: 0.5}, Source: "built-in"},
	}
}

// Config is the content of a configuration file.
type Config struct {
	// Alpha is the significance level set by an "alpha=" line, or 0.
	Alpha float64
	// Rules are the rules of the file, in file order.
	Rules []Rule
}

// ParseRule parses one rule in the configuration line format, for
// example "bench=^BenchmarkP4/ unit=eff threshold=10%". An "alpha=" field
// is not a rule and is rejected. source names the rule in messages.
func ParseRule(line, source string) (Rule, error) {
	alpha, rule, err := parseLine(line, source)
	if err != nil {
		return Rule{}, err
	}
	if alpha != 0 {
		return Rule{}, errors.New("alpha is a setting, not a rule")
	}
	if rule == nil {
		return Rule{}, errors.New("empty rule")
	}
	return *rule, nil
}

// ParseConfig reads a configuration file from r. name is used in error
// messages, which name the offending line: "gate.conf:3: ...".
func ParseConfig(r io.Reader, name string) (*Config, error) {
	cfg := &Config{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		src := fmt.Sprintf("%s:%d", name, n)
		alpha, rule, err := parseLine(sc.Text(), src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if alpha != 0 {
			cfg.Alpha = alpha
		}
		if rule != nil {
			cfg.Rules = append(cfg.Rules, *rule)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: reading: %w", name, n+1, err)
	}
	return cfg, nil
}

// ReadConfigFile reads and parses the configuration file at path.
func ReadConfigFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return ParseConfig(f, path)
}

// parseLine parses one configuration line. It returns alpha != 0 for an
// alpha line, a rule for a rule line, and neither for a blank line.
func parseLine(line, source string) (alpha float64, rule *Rule, err error) {
	fields := strings.Fields(line)
	for i, f := range fields {
		if strings.HasPrefix(f, "#") {
			fields = fields[:i]
			break
		}
	}
	if len(fields) == 0 {
		return 0, nil, nil
	}
	seen := map[string]bool{}
	r := Rule{Source: source}
	var unitThreshold *Threshold // absolute threshold, before tidying
	for _, f := range fields {
		key, val, ok := strings.Cut(f, "=")
		if !ok || key == "" {
			return 0, nil, fmt.Errorf("field %q: want key=value", f)
		}
		if seen[key] {
			return 0, nil, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		if val == "" {
			return 0, nil, fmt.Errorf("key %q: empty value", key)
		}
		switch key {
		case "alpha":
			a, err := strconv.ParseFloat(val, 64)
			if err != nil || !(a > 0 && a < 1) {
				return 0, nil, fmt.Errorf("alpha %q: want a number between 0 and 1", val)
			}
			alpha = a
		case "bench":
			re, err := regexp.Compile(val)
			if err != nil {
				return 0, nil, fmt.Errorf("bench: %w", err)
			}
			r.Bench = re
		case "unit":
			_, r.Unit = benchunit.Tidy(1, val)
		case "threshold":
			t, err := ParseThreshold(val)
			if err != nil {
				return 0, nil, err
			}
			unitThreshold = &t
		case "better":
			d, err := ParseDirection(val)
			if err != nil {
				return 0, nil, fmt.Errorf("better: %w", err)
			}
			r.Better = d
		default:
			return 0, nil, fmt.Errorf("unknown key %q (want bench, unit, threshold, better or alpha)", key)
		}
	}
	if seen["alpha"] {
		if len(seen) > 1 {
			return 0, nil, errors.New("alpha must stand alone on its line")
		}
		return alpha, nil, nil
	}
	if unitThreshold == nil && r.Better == Unknown {
		return 0, nil, errors.New("rule sets neither threshold nor better")
	}
	if r.Better != Unknown {
		if r.Unit == "" {
			return 0, nil, errors.New("better needs unit")
		}
		if r.Bench != nil {
			return 0, nil, errors.New("better is a property of a unit; it cannot be restricted by bench")
		}
	}
	if unitThreshold != nil {
		t := *unitThreshold
		if !t.Relative && seen["unit"] {
			// Absolute thresholds are in the unit as written;
			// convert to the tidied unit the values use.
			for _, f := range fields {
				if u, ok := strings.CutPrefix(f, "unit="); ok {
					t.Value, _ = benchunit.Tidy(t.Value, u)
				}
			}
			if math.IsInf(t.Value, 0) || math.IsNaN(t.Value) {
				return 0, nil, fmt.Errorf("threshold %s: not a finite number in %s", unitThreshold, r.Unit)
			}
		}
		r.Threshold = &t
	}
	return 0, &r, nil
}
