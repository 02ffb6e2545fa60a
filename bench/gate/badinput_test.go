package gate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// hangBound is how long a call may take before a test calls it a hang. It
// is not a speed requirement: the answers take milliseconds, and a
// regression (go-moremath's U test never returns on a NaN) takes forever.
const hangBound = 10 * time.Second

// within runs f on a goroutine and fails t if it has not returned within
// hangBound. A hung f is left running: the test binary ends it.
func within[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	return withinBound(t, hangBound, what, f)
}

// withinBound is within with a bound of d.
func withinBound[T any](t *testing.T, d time.Duration, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-done:
		return v
	case <-timer.C:
		t.Fatalf("%s: no answer within %v (hung)", what, d)
		panic("unreachable")
	}
}

// withLine returns fixture text with line n (1-based) of it replaced by l.
func withLine(t *testing.T, text string, n int, l string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	if n < 1 || n > len(lines) {
		t.Fatalf("line %d of %d", n, len(lines))
	}
	lines[n-1] = l
	return strings.Join(lines, "\n")
}

func TestBadValuesRefused(t *testing.T) {
	good := fixture(1, 8, []fakeBench{pipelineBench(benchP3, nil)}, metaLines()...)
	// Line 11 of the fixture is the third result line: 3 lead lines, 5
	// configuration lines, the bare benchmark name, then results.
	const line = 11
	if !strings.HasPrefix(strings.Split(good, "\n")[line-1], benchP3+" ") {
		t.Fatalf("fixture line %d is not a result line:\n%s", line, good)
	}
	res := func(vals string) string { return benchP3 + " \t 100\t" + vals }
	for _, tt := range []struct {
		name, line, want string
	}{
		{"NaN", res("1e7 ns/op NaN msgs/s 0.95 eff"), "NaN msgs/s is not a finite number"},
		{"nan lower case", res("1e7 ns/op 100 msgs/s nan eff"), "NaN eff is not a finite number"},
		{"+Inf", res("+Inf ns/op"), "+Inf ns/op is not a finite number"},
		{"-Inf", res("1e7 ns/op -Inf widgets"), "-Inf widgets is not a finite number"},
		{"Infinity", res("Infinity p99-ms"), "+Inf p99-ms is not a finite number"},
		{"overflow when tidied", res("1e308 MB/s"), "1e+308 MB/s is not a finite number in B/s"},
		{"huge", res("1e7 ns/op 1e200 widgets"), "1e+200 widgets is out of range"},
		{"huge negative", res("-1e151 widgets"), "-1e+151 widgets is out of range"},
		{"negative time", res("-5 ns/op"), "-5 ns/op is negative, and ns/op cannot be"},
		{"negative throughput", res("1e7 ns/op -3 msgs/s"), "-3 msgs/s is negative"},
		{"negative allocs", res("-1 allocs/op"), "-1 allocs/op is negative"},
	} {
		for _, side := range []string{"baseline", "candidate"} {
			bad := withLine(t, good, line, tt.line)
			base, cand, file := bad, good, "b.txt"
			if side == "candidate" {
				base, cand, file = good, bad, "n.txt"
			}
			err := within(t, tt.name, func() error {
				_, err := Compare(Input{"b.txt", strings.NewReader(base)}, Input{"n.txt", strings.NewReader(cand)}, Options{Units: pipelineUnits()})
				return err
			})
			wantPos := file + ":11: " + side + " " + benchP3 + ": "
			if err == nil || !errors.Is(err, ErrBadInput) || !strings.HasPrefix(err.Error(), wantPos) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s in the %s: err = %v\nwant ErrBadInput, prefix %q and %q", tt.name, side, err, wantPos, tt.want)
			}
		}
	}

	// Negative values of a unit in no table (KnownUnits, Options.Units)
	// are fine: it may be a difference.
	neg := fixture(1, 8, []fakeBench{{benchP3, []metric{{"delta-ms", -5, 0.1}}}})
	if _, err := Compare(Input{"b", strings.NewReader(neg)}, Input{"n", strings.NewReader(neg)}, Options{}); err != nil {
		t.Errorf("negative custom unit: %v", err)
	}
	// A bad value in a result the filter leaves out is refused all the
	// same: the file is not trustworthy.
	bad := withLine(t, good, line, res("1e7 ns/op NaN msgs/s"))
	if _, err := Compare(Input{"b", strings.NewReader(bad)}, Input{"n", strings.NewReader(good)}, Options{Filter: ".unit:eff"}); !errors.Is(err, ErrBadInput) {
		t.Errorf("NaN outside the filter: err = %v, want ErrBadInput", err)
	}
}

func TestTooManySamplesRefused(t *testing.T) {
	var b strings.Builder
	for range MaxSamples + 1 {
		b.WriteString("BenchmarkX-4 1 5 widgets\n")
	}
	err := within(t, "too many samples", func() error {
		_, err := Compare(Input{"b", strings.NewReader(b.String())}, Input{"n", strings.NewReader(b.String())}, Options{})
		return err
	})
	if !errors.Is(err, ErrBadInput) || !strings.HasPrefix(err.Error(), "b:10001: baseline BenchmarkX-4: ") || !strings.Contains(err.Error(), "more than 10000 samples of widgets") {
		t.Errorf("err = %v", err)
	}
}

// TestStatisticsFailureIsAnError: under assume=normal, go-moremath's
// t-test panics when the samples' variance underflows (its incomplete beta
// function does not converge); the gate reports it as bad input instead.
func TestStatisticsFailureIsAnError(t *testing.T) {
	side := func(vals ...string) string {
		s := "Unit widgets assume=normal\n"
		for _, v := range vals {
			s += "BenchmarkX-4 1 " + v + " widgets\n"
		}
		return s
	}
	base := side("1e-160", "1e-160", "1e-160", "2e-160", "1e-160", "1e-160")
	cand := side("1e-160", "3e-160", "1e-160", "1e-160", "1e-160", "1e-160")
	err := within(t, "tiny variance", func() error {
		_, err := Compare(Input{"b", strings.NewReader(base)}, Input{"n", strings.NewReader(cand)}, Options{})
		return err
	})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "BenchmarkX-4 widgets (baseline b, candidate n)") ||
		!strings.Contains(err.Error(), "significance test failed") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigBadNumbers(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{"alpha=NaN", "c.conf:1: alpha \"NaN\""},
		{"\nalpha=0.01\nthreshold=NaN%", "c.conf:3: threshold \"NaN%\""},
		{"threshold=Inf", "c.conf:1: threshold \"Inf\""},
		{"unit=eff threshold=1e400", "c.conf:1: threshold \"1e400\""},
		{"unit=eff threshold=-1", "c.conf:1: threshold \"-1\""},
		{"unit=MB/s threshold=1e308", "c.conf:1: threshold 1e+308: not a finite number in B/s"},
		{"# ok\nalpha=1", "c.conf:2: alpha \"1\""},
		{"#" + strings.Repeat("x", 70000), "c.conf:1: reading: bufio.Scanner: token too long"},
	} {
		_, err := ParseConfig(strings.NewReader(tt.conf), "c.conf")
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%.40q: err = %v, want prefix %q", tt.conf, err, tt.want)
		}
	}
}
