package gate

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzCompare runs the whole gate on two benchmark files: parse both,
// compare, format the report. It must never panic and never hang (the
// fuzzer reports an input that runs for long), and what it reports must be
// finite: medians and confidence levels, p-values in [0, 1], a known
// verdict. An error names a file and line or a benchmark.
func FuzzCompare(f *testing.F) {
	base, cand := readTestdata(f, "base.txt"), readTestdata(f, "new.txt")
	f.Add(base, cand)
	f.Add(base, base)
	f.Add([]byte(fixture(1, 6, []fakeBench{pipelineBench(benchP4, nil)}, metaLines()...)),
		[]byte(fixture(2, 6, []fakeBench{pipelineBench(benchP4, map[string]float64{"eff": 0.8})}, metaLines()...)))
	f.Add([]byte("Unit x assume=normal\nBenchmarkA 1 1 x\nBenchmarkA 1 2 x\nBenchmarkA 1 1 x\n"),
		[]byte("Unit x assume=exact\nBenchmarkA 1 1e-160 x\nBenchmarkA 1 2e-160 x\n"))
	f.Add([]byte("BenchmarkA 1 NaN x\n"), []byte("BenchmarkA 1 1 x\n"))
	f.Fuzz(func(t *testing.T, base, cand []byte) {
		// The fuzzer has no time limit of its own: a hung input would
		// only stall it.
		type answer struct {
			r   *Report
			err error
		}
		a := withinBound(t, 5*time.Second, "Compare", func() answer {
			r, err := Compare(Input{"b.txt", bytes.NewReader(base)}, Input{"n.txt", bytes.NewReader(cand)}, Options{MinSamples: 2})
			return answer{r, err}
		})
		r, err := a.r, a.err
		if err != nil {
			if errors.Is(err, ErrBadInput) && !strings.HasPrefix(err.Error(), "b.txt:") && !strings.HasPrefix(err.Error(), "n.txt:") &&
				!strings.Contains(err.Error(), "(baseline b.txt, candidate n.txt)") {
				t.Fatalf("bad input error names neither file and line nor benchmark: %v", err)
			}
			return
		}
		for _, c := range r.Comparisons {
			for _, s := range []Summary{c.Base, c.New} {
				if !isFinite(s.Center) || math.IsNaN(s.Lo) || math.IsNaN(s.Hi) || !(s.Confidence >= 0 && s.Confidence <= 1) || s.N < 1 {
					t.Fatalf("%s %s: summary %+v", c.Name, c.Unit, s)
				}
			}
			if math.IsNaN(c.Change) {
				t.Fatalf("%s %s: change is NaN", c.Name, c.Unit)
			}
			switch c.Verdict {
			case Refused:
			case Unchanged, Improved, Tolerated, Regressed:
				if !(c.P >= 0 && c.P <= 1) {
					t.Fatalf("%s %s: p = %v", c.Name, c.Unit, c.P)
				}
			default:
				t.Fatalf("%s %s: verdict %v", c.Name, c.Unit, c.Verdict)
			}
		}
		var out bytes.Buffer
		if err := r.Format(&out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "gate: "+r.Status().String()) {
			t.Fatalf("report lacks its status line:\n%s", out.String())
		}
	})
}

// FuzzParseConfig: the configuration reader never panics; an error names
// the file and line; what it accepts is in range (alpha in (0, 1) or
// unset, thresholds finite and non-negative) and each rule, written back
// with Rule.String, parses to the same rule.
func FuzzParseConfig(f *testing.F) {
	conf := readTestdata(f, "gate.conf")
	f.Add(conf)
	for _, l := range strings.Split(string(conf), "\n") {
		f.Add([]byte(l))
	}
	f.Add([]byte("unit=MB/s threshold=1e308\n"))
	f.Add([]byte("alpha=NaN\nthreshold=Inf%\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(bytes.NewReader(data), "c.conf")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "c.conf:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		if cfg.Alpha != 0 && !(cfg.Alpha > 0 && cfg.Alpha < 1) {
			t.Fatalf("alpha %v", cfg.Alpha)
		}
		for _, r := range cfg.Rules {
			if r.Threshold == nil && r.Better == Unknown {
				t.Fatalf("rule %q sets nothing", r.String())
			}
			if th := r.Threshold; th != nil && !(th.Value >= 0 && isFinite(th.Value)) {
				t.Fatalf("rule %q: threshold %v", r.String(), th.Value)
			}
			back, err := ParseRule(r.String(), "back")
			if err != nil {
				t.Fatalf("rule %q written back does not parse: %v", r.String(), err)
			}
			if back.String() != r.String() {
				t.Fatalf("rule %q reads back as %q", r.String(), back.String())
			}
		}
	})
}
