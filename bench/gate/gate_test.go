package gate

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchunit"
)

func compare(t *testing.T, base, cand string, opts Options) *Report {
	t.Helper()
	r, err := Compare(Input{"base.txt", strings.NewReader(base)}, Input{"new.txt", strings.NewReader(cand)}, opts)
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	return r
}

func formatted(t *testing.T, r *Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.Format(&b); err != nil {
		t.Fatalf("Format: %v", err)
	}
	return b.String()
}

func find(r *Report, name, unit string) *Comparison {
	for i := range r.Comparisons {
		if c := &r.Comparisons[i]; c.Name == name && c.Unit == unit {
			return c
		}
	}
	return nil
}

// TestAA draws baseline and candidate from one distribution (3% gaussian
// noise, 10 samples each, 14 comparisons a run) over many seeds. About
// alpha of the comparisons come out significant by chance; the 5%
// threshold is what keeps them from failing. It cannot make false
// alarms impossible: the median of 10 such samples has a standard error
// of about 1.2%, so two medians differ by more than 5% (3 standard errors
// of the difference) in roughly 0.1% of comparisons, and a 2000-seed run
// of this test failed 11 runs (0.55%; these 200 seeds fail 3). With a
// zero threshold 52 of these 200 runs fail, so the bound below still
// catches a gate that ignores its thresholds.
func TestAA(t *testing.T) {
	const runs, maxFailed = 200, 5
	significant, total, failed := 0, 0, 0
	for seed := range uint64(runs) {
		benches := []fakeBench{pipelineBench(benchP4, nil), pipelineBench(benchP3, nil)}
		base := fixture(2*seed, 10, benches, metaLines()...)
		cand := fixture(2*seed+1, 10, benches, metaLines()...)
		r := compare(t, base, cand, Options{})
		if got := r.Status(); got != Pass {
			failed++
			for _, c := range r.Regressions() {
				t.Logf("seed %d: %s %s %+.2f%% p=%.3f", seed, c.Name, c.Unit, 100*c.Change, c.P)
			}
		}
		if len(r.Comparisons) != 14 || len(r.Missing) != 0 || len(r.Refused) != 0 {
			t.Fatalf("seed %d: %d comparisons, %d missing, %d refused; want 14, 0, 0", seed, len(r.Comparisons), len(r.Missing), len(r.Refused))
		}
		for _, c := range r.Comparisons {
			total++
			if c.P < c.Alpha {
				significant++
			}
		}
	}
	t.Logf("A/A: %d of %d comparisons significant at alpha=0.05; %d of %d runs failed", significant, total, failed, runs)
	if failed > maxFailed {
		t.Errorf("%d of %d A/A runs failed, want at most %d", failed, runs, maxFailed)
	}
	if significant == 0 {
		t.Error("no comparison was significant: the test no longer shows that the threshold does the work")
	}
}

func TestRegressionsFail(t *testing.T) {
	tests := []struct {
		name  string
		unit  string
		bench fakeBench
		meta  bool // unit metadata in the files, else the directions as Options.Units
	}{
		{"sec/op +10%", "sec/op", pipelineBench(benchP4, map[string]float64{"ns/op": 1.10}), true},
		{"msgs/s -10%", "msgs/s", pipelineBench(benchP4, map[string]float64{"msgs/s": 0.90}), true},
		{"msgs/s -10% without metadata", "msgs/s", pipelineBench(benchP4, map[string]float64{"msgs/s": 0.90}), false},
		{"eff -10%", "eff", pipelineBench(benchP4, map[string]float64{"eff": 0.90}), true},
		{"p99-ms +10%", "p99-ms", pipelineBench(benchP4, map[string]float64{"p99-ms": 1.10}), true},
		{"allocs/op +1", "allocs/op", addAllocs(pipelineBench(benchP4, nil), 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(10) {
				var meta []string
				if tt.meta {
					meta = metaLines()
				}
				base := fixture(100+seed, 10, []fakeBench{pipelineBench(benchP4, nil), pipelineBench(benchP3, nil)}, meta...)
				cand := fixture(200+seed, 10, []fakeBench{tt.bench, pipelineBench(benchP3, nil)}, meta...)
				var opts Options
				if !tt.meta {
					opts.Units = pipelineUnits()
				}
				r := compare(t, base, cand, opts)
				out := formatted(t, r)
				if r.Status() != Fail {
					t.Fatalf("seed %d: status %v, want FAIL\n%s", seed, r.Status(), out)
				}
				regs := r.Regressions()
				if len(regs) != 1 || regs[0].Name != benchP4 || regs[0].Unit != tt.unit {
					t.Fatalf("seed %d: regressions %+v, want just %s %s\n%s", seed, regs, benchP4, tt.unit, out)
				}
				if !strings.Contains(out, benchP4+" "+tt.unit+": ") || !strings.Contains(out, "REGRESSED") {
					t.Errorf("seed %d: output does not name the regression:\n%s", seed, out)
				}
			}
		})
	}
}

func TestImprovementsPass(t *testing.T) {
	base := fixture(1, 10, []fakeBench{pipelineBench(benchP4, nil)}, metaLines()...)
	cand := fixture(2, 10, []fakeBench{addAllocs(pipelineBench(benchP4, map[string]float64{
		"ns/op": 0.90, "msgs/s": 1.10, "eff": 1.10, "p99-ms": 0.8,
	}), -3)}, metaLines()...)
	r := compare(t, base, cand, Options{})
	if r.Status() != Pass {
		t.Fatalf("status %v, want PASS\n%s", r.Status(), formatted(t, r))
	}
	for _, unit := range []string{"sec/op", "msgs/s", "eff", "p99-ms", "allocs/op"} {
		if c := find(r, benchP4, unit); c == nil || c.Verdict != Improved {
			t.Errorf("%s: %+v, want verdict improved", unit, c)
		}
	}
}

// TestHigherIsBetterFromMetadata uses a unit the gate does not know: its
// direction comes only from the file's unit metadata.
func TestHigherIsBetterFromMetadata(t *testing.T) {
	mk := func(seed uint64, v float64, meta ...string) string {
		return fixture(seed, 8, []fakeBench{{benchP3, []metric{{"widgets/s", v, 0.02}}}}, meta...)
	}
	// Declared higher-is-better in the candidate only: going down fails.
	r := compare(t, mk(1, 100), mk(2, 85, "Unit widgets/s better=higher"), Options{})
	if c := find(r, benchP3, "widgets/s"); c == nil || c.Verdict != Regressed || c.Better != HigherIsBetter {
		t.Fatalf("got %+v, want a higher-is-better regression\n%s", c, formatted(t, r))
	}
	// Undeclared: lower is assumed, so going down is an improvement,
	// with a warning saying so.
	r = compare(t, mk(1, 100), mk(2, 85), Options{})
	if c := find(r, benchP3, "widgets/s"); c == nil || c.Verdict != Improved {
		t.Fatalf("got %+v, want improved", c)
	}
	if out := formatted(t, r); !strings.Contains(out, "unit widgets/s has no better= metadata") {
		t.Errorf("missing warning about the default direction:\n%s", out)
	}
	// A rule overrides the metadata.
	r = compare(t, mk(1, 100), mk(2, 85, "Unit widgets/s better=higher"), Options{Rules: []Rule{mustRule(t, "unit=widgets/s better=lower")}})
	if c := find(r, benchP3, "widgets/s"); c == nil || c.Verdict != Improved {
		t.Fatalf("with better=lower rule: got %+v, want improved", c)
	}
}

func TestMetadataConflict(t *testing.T) {
	mk := func(meta string) string {
		return fixture(1, 6, []fakeBench{{benchP3, []metric{{"msgs/s", 100, 0.02}}}}, meta)
	}
	_, err := Compare(Input{"base.txt", strings.NewReader(mk("Unit msgs/s better=higher"))},
		Input{"new.txt", strings.NewReader(mk("Unit msgs/s better=lower"))}, Options{})
	if err == nil || !strings.Contains(err.Error(), "better=higher") || !strings.Contains(err.Error(), "better=lower") {
		t.Errorf("cross-file conflict: err = %v, want an error naming both directions", err)
	}
	// A rule settles the conflict.
	if _, err := Compare(Input{"base.txt", strings.NewReader(mk("Unit msgs/s better=higher"))},
		Input{"new.txt", strings.NewReader(mk("Unit msgs/s better=lower"))},
		Options{Rules: []Rule{mustRule(t, "unit=msgs/s better=higher")}}); err != nil {
		t.Errorf("conflict settled by a rule: %v", err)
	}
	// A conflict inside one file.
	_, err = Compare(Input{"base.txt", strings.NewReader(mk("Unit msgs/s better=higher\nUnit msgs/s better=lower"))},
		Input{"new.txt", strings.NewReader(mk(""))}, Options{})
	if err == nil || !strings.Contains(err.Error(), "base.txt:2") {
		t.Errorf("in-file conflict: err = %v, want an error at base.txt:2", err)
	}
	// A value that is not a direction.
	_, err = Compare(Input{"base.txt", strings.NewReader(mk("Unit msgs/s better=sideways"))},
		Input{"new.txt", strings.NewReader(mk(""))}, Options{})
	if err == nil || !strings.Contains(err.Error(), "sideways") {
		t.Errorf("bad direction: err = %v", err)
	}
}

func TestTooFewSamplesRefused(t *testing.T) {
	benches := []fakeBench{{"BenchmarkX", []metric{{"msgs/s", 100, 0.03}}}}
	base := fixture(1, 4, benches)
	// Even a 50% drop is not judged on 4 samples.
	cand := fixture(2, 10, []fakeBench{{"BenchmarkX", []metric{{"msgs/s", 50, 0.03}}}})
	r := compare(t, base, cand, Options{})
	if r.Status() != Incomplete {
		t.Fatalf("status %v, want INCOMPLETE", r.Status())
	}
	const want = "BenchmarkX msgs/s: 4 baseline samples, need at least 6 (use -count 6 or more)"
	if len(r.Refused) != 1 || r.Refused[0].String() != want {
		t.Fatalf("refused %v, want %q", r.Refused, want)
	}
	if c := find(r, "BenchmarkX", "msgs/s"); c == nil || c.Verdict != Refused || !math.IsNaN(c.P) {
		t.Errorf("comparison %+v, want verdict refused with no p-value", c)
	}
	if out := formatted(t, r); !strings.Contains(out, want) || strings.Contains(out, "REGRESSED") {
		t.Errorf("output should carry the refusal and no verdict:\n%s", out)
	}
	// -allow-small turns the refusal into a warning.
	r = compare(t, base, cand, Options{AllowSmall: true})
	if r.Status() != Pass || len(r.Refused) != 1 {
		t.Errorf("AllowSmall: status %v with %d refused, want PASS with 1", r.Status(), len(r.Refused))
	}
	// Both sides short.
	r = compare(t, base, fixture(3, 5, benches), Options{})
	if got := r.Refused[0].String(); !strings.Contains(got, "4 baseline and 5 candidate samples") {
		t.Errorf("refusal %q should count both sides", got)
	}
	// A smaller alpha needs more samples than the default minimum.
	r = compare(t, fixture(1, 6, benches), fixture(2, 6, benches), Options{Alpha: 0.001})
	if len(r.Refused) != 1 || !strings.Contains(r.Refused[0].String(), "need at least 7 for alpha=0.001") {
		t.Errorf("alpha=0.001 with 6 samples: refused %v", r.Refused)
	}
	// A regression outranks a refusal.
	both := []fakeBench{benches[0], pipelineBench(benchP3, nil)}
	r = compare(t, fixture(1, 4, both)+fixture(5, 6, both[1:]), fixture(2, 10, []fakeBench{benches[0], pipelineBench(benchP3, map[string]float64{"ns/op": 1.2})}), Options{})
	if r.Status() != Fail {
		t.Errorf("regression plus refusal: status %v, want FAIL\n%s", r.Status(), formatted(t, r))
	}
}

func TestUTestNeed(t *testing.T) {
	for _, tt := range []struct {
		alpha float64
		want  int
	}{{0.5, 2}, {0.1, 4}, {0.05, 4}, {0.01, 5}, {0.001, 7}} {
		if got := uTestNeed(tt.alpha); got != tt.want {
			t.Errorf("uTestNeed(%g) = %d, want %d", tt.alpha, got, tt.want)
		}
	}
}

func TestExactAssumptionNeedsOneSample(t *testing.T) {
	b := fixture(1, 1, []fakeBench{{"BenchmarkX", []metric{{"allocs/op", 10, 0}}}}, "Unit allocs/op assume=exact")
	n := fixture(2, 1, []fakeBench{{"BenchmarkX", []metric{{"allocs/op", 12, 0}}}})
	r := compare(t, b, n, Options{})
	if c := find(r, "BenchmarkX", "allocs/op"); c == nil || c.Verdict != Regressed || c.Assumption != "exact" {
		t.Fatalf("got %+v, want an exact regression\n%s", c, formatted(t, r))
	}
}

func TestMissing(t *testing.T) {
	only := pipelineBench("BenchmarkOld-4", nil)
	base := fixture(1, 6, []fakeBench{pipelineBench(benchP3, nil), only})
	cand := fixture(2, 6, []fakeBench{pipelineBench(benchP3, nil), {"BenchmarkNew-4", []metric{{"ns/op", 1, 0.01}}}})
	r := compare(t, base, cand, Options{})
	if r.Status() != Pass {
		t.Errorf("status %v, want PASS: missing benchmarks do not fail by default", r.Status())
	}
	var old, nw int
	for _, m := range r.Missing {
		switch {
		case m.Name == "BenchmarkOld-4" && m.OnlyIn == "baseline":
			old++
		case m.Name == "BenchmarkNew-4" && m.OnlyIn == "candidate" && m.Unit == "sec/op":
			nw++
		default:
			t.Errorf("unexpected missing entry %+v", m)
		}
	}
	if old != 7 || nw != 1 {
		t.Errorf("missing: %d units of BenchmarkOld-4, %d of BenchmarkNew-4; want 7 and 1", old, nw)
	}
	out := formatted(t, r)
	for _, want := range []string{"Only in baseline (1):", "BenchmarkOld-4: sec/op, msgs/s,", "Only in candidate (1):", "BenchmarkNew-4: sec/op"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if r := compare(t, base, cand, Options{StrictMissing: true}); r.Status() != Fail {
		t.Errorf("StrictMissing: status %v, want FAIL", r.Status())
	}
}

func TestPkgIsIdentity(t *testing.T) {
	b := fixture(1, 6, []fakeBench{pipelineBench(benchP3, nil)})
	n := strings.Replace(fixture(2, 6, []fakeBench{pipelineBench(benchP3, nil)}), "pkg: github.com/natspipe/natspipe/bench", "pkg: example.com/other", 1)
	r := compare(t, b, n, Options{})
	if len(r.Comparisons) != 0 || len(r.Missing) != 14 {
		t.Errorf("different pkg: %d comparisons, %d missing; want 0 and 14", len(r.Comparisons), len(r.Missing))
	}
	// Other configuration (commit, cpu, ...) is not identity.
	n = strings.Replace(fixture(2, 6, []fakeBench{pipelineBench(benchP3, nil)}), "cpu: Fake CPU", "cpu: Other CPU", 1)
	if r := compare(t, b, n, Options{}); len(r.Comparisons) != 7 {
		t.Errorf("different cpu: %d comparisons, want 7", len(r.Comparisons))
	}
}

func TestMixedConfigurationWarns(t *testing.T) {
	one := fixture(1, 3, []fakeBench{pipelineBench(benchP3, nil)})
	two := strings.Replace(fixture(2, 3, []fakeBench{pipelineBench(benchP3, nil)}), "goos: linux\n", "goos: linux\ndurations: 1,1,1,1\n", 1)
	r := compare(t, one+two, fixture(3, 6, []fakeBench{pipelineBench(benchP3, nil)}), Options{})
	out := formatted(t, r)
	if !strings.Contains(out, "baseline: "+benchP3+" aggregates results whose configuration differs in: commit, durations") {
		t.Errorf("no warning about mixed configuration:\n%s", out)
	}
}

func TestThresholdRules(t *testing.T) {
	// sec/op +10%: regressed with the default 5%, tolerated with
	// thresholds above 10%, and the most specific rule wins.
	base := fixture(1, 10, []fakeBench{pipelineBench(benchP4, nil), pipelineBench(benchP3, nil)})
	slow := map[string]float64{"ns/op": 1.10}
	cand := fixture(2, 10, []fakeBench{pipelineBench(benchP4, slow), pipelineBench(benchP3, slow)})
	verdicts := func(rules ...string) string {
		var rs []Rule
		for _, s := range rules {
			rs = append(rs, mustRule(t, s))
		}
		r := compare(t, base, cand, Options{Rules: rs})
		return find(r, benchP4, "sec/op").Verdict.String() + " " + find(r, benchP3, "sec/op").Verdict.String()
	}
	for _, tt := range []struct {
		rules []string
		want  string
	}{
		{nil, "REGRESSED REGRESSED"},
		{[]string{"threshold=20%"}, "tolerated tolerated"},
		{[]string{"unit=ns/op threshold=20%"}, "tolerated tolerated"},
		{[]string{"unit=sec/op threshold=20%", "threshold=1%"}, "tolerated tolerated"},
		{[]string{"bench=^BenchmarkP4/ threshold=20%"}, "tolerated REGRESSED"},
		{[]string{"bench=^BenchmarkP4/ unit=sec/op threshold=20%", "unit=sec/op threshold=2%"}, "tolerated REGRESSED"},
		{[]string{"bench=^BenchmarkP4/ unit=eff threshold=50%"}, "REGRESSED REGRESSED"},
		// Absolute, in the unit as written: 2ms of a 10ms op.
		{[]string{"unit=ns/op threshold=2000000"}, "tolerated tolerated"},
		{[]string{"unit=sec/op threshold=0.0005"}, "REGRESSED REGRESSED"},
		// Later rules of equal specificity win.
		{[]string{"threshold=20%", "threshold=5%"}, "REGRESSED REGRESSED"},
	} {
		if got := verdicts(tt.rules...); got != tt.want {
			t.Errorf("rules %q: verdicts %q, want %q", tt.rules, got, tt.want)
		}
	}
}

func TestFilter(t *testing.T) {
	benches := []fakeBench{pipelineBench(benchP4, nil), pipelineBench("BenchmarkP4/alloc=1-4-1-1/mode=sync/work=cpu-4", nil)}
	base, cand := fixture(1, 6, benches), fixture(2, 6, benches)
	r := compare(t, base, cand, Options{Filter: ".unit:eff"})
	if len(r.Comparisons) != 2 || r.Comparisons[0].Unit != "eff" {
		t.Errorf(".unit:eff: %d comparisons, want 2 eff", len(r.Comparisons))
	}
	r = compare(t, base, cand, Options{Filter: "/work:sleep .unit:(msgs/s OR ns/op)"})
	if len(r.Comparisons) != 2 || r.Comparisons[0].Name != benchP4 || r.Comparisons[0].Unit != "sec/op" {
		t.Errorf("/work:sleep: comparisons %+v", r.Comparisons)
	}
	if _, err := Compare(Input{"b", strings.NewReader(base)}, Input{"n", strings.NewReader(cand)}, Options{Filter: "/work:"}); err == nil {
		t.Error("bad filter: no error")
	}
	_, err := Compare(Input{"b", strings.NewReader(base)}, Input{"n", strings.NewReader(cand)}, Options{Filter: "/work:gpu"})
	if err == nil || !strings.Contains(err.Error(), "match filter") {
		t.Errorf("filter matching nothing: err = %v", err)
	}
}

func TestBadInput(t *testing.T) {
	good := fixture(1, 6, []fakeBench{pipelineBench(benchP3, nil)})
	for _, tt := range []struct{ name, base, cand, want string }{
		{"empty baseline", "", good, "baseline b.txt: no benchmark results"},
		{"no benchmarks in candidate", good, "goos: linux\nPASS\n", "candidate n.txt: no benchmark results"},
		{"bad assume", "Unit sec/op assume=maybe\n" + good, good, `assume="maybe"`},
	} {
		_, err := Compare(Input{"b.txt", strings.NewReader(tt.base)}, Input{"n.txt", strings.NewReader(tt.cand)}, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := CompareFiles(filepath.Join(t.TempDir(), "nope.txt"), "x", Options{}); err == nil || !strings.Contains(err.Error(), "baseline") {
		t.Errorf("missing file: err = %v", err)
	}
	for _, o := range []Options{{Alpha: 1.5}, {Alpha: -1}, {Confidence: 2}, {MinSamples: 1}} {
		if _, err := Compare(Input{"b", strings.NewReader(good)}, Input{"n", strings.NewReader(good)}, o); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
	// A malformed benchmark line (a benchmark printing to stdout) is a
	// warning, not an error.
	r := compare(t, good+"BenchmarkP3-4 hello from stdout\n", good, Options{})
	if out := formatted(t, r); !strings.Contains(out, "ignored 1 malformed benchmark line(s)") {
		t.Errorf("no warning about the malformed line:\n%s", out)
	}
}

func TestRealisticFixtures(t *testing.T) {
	r, err := CompareFiles(filepath.Join("testdata", "base.txt"), filepath.Join("testdata", "new.txt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := formatted(t, r)
	t.Logf("\n%s", out)
	if r.Status() != Fail {
		t.Errorf("status %v, want FAIL", r.Status())
	}
	got := map[string]Verdict{}
	for _, c := range r.Comparisons {
		got[c.Name+" "+c.Unit] = c.Verdict
	}
	want := map[string]Verdict{
		"BenchmarkPipeline/impl=p3-4 sec/op":    Unchanged,
		"BenchmarkPipeline/impl=p3-4 msgs/s":    Unchanged,
		"BenchmarkPipeline/impl=p3-4 eff":       Unchanged,
		"BenchmarkPipeline/impl=p3-4 allocs/op": Unchanged,
		"BenchmarkPipeline/impl=p4-4 sec/op":    Regressed,
		"BenchmarkPipeline/impl=p4-4 msgs/s":    Regressed,
		"BenchmarkPipeline/impl=p4-4 eff":       Regressed,
		"BenchmarkPipeline/impl=p4-4 allocs/op": Regressed,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: verdict %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d comparisons, want %d", len(got), len(want))
	}
	// The table has one row per comparison with every column.
	row := regexp.MustCompile(`(?m)^BenchmarkPipeline/impl=p4-4 +msgs/s +\S+ ± \d+% +\S+ ± \d+% +-\d+\.\d\d% +0\.\d{3} +8\+8 +-5% +REGRESSED$`)
	if !row.MatchString(out) {
		t.Errorf("no well-formed msgs/s row in:\n%s", out)
	}
}

func TestWriteUnitMetadata(t *testing.T) {
	var b strings.Builder
	if err := WriteUnitMetadata(&b, KnownUnits()); err != nil {
		t.Fatal(err)
	}
	want := "Unit B/op better=lower\nUnit B/s better=higher\nUnit allocs/op better=lower\nUnit sec/op better=lower\n"
	if b.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", b.String(), want)
	}
	// Round trip through benchfmt.
	rd := benchfmt.NewReader(strings.NewReader(b.String()+"BenchmarkX 1 1 ns/op\n"), "units")
	for rd.Scan() {
		if se, ok := rd.Result().(*benchfmt.SyntaxError); ok {
			t.Fatal(se)
		}
	}
	for unit, d := range KnownUnits() {
		if got := rd.Units().GetBetter(unit); got != int(d) {
			t.Errorf("%s: read back better=%d, want %d", unit, got, d)
		}
	}
}

// TestWriteUnitMetadataAssume checks the lines a benchmark binary prints for
// its custom units (natspipe's benchkit.PrintUnits): every unit, as
// reported, with assume=, read back by benchfmt under the tidied unit.
func TestWriteUnitMetadataAssume(t *testing.T) {
	var b strings.Builder
	if err := WriteUnitMetadataAssume(&b, pipelineUnits(), "nothing"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Unit eff better=higher assume=nothing",
		"Unit msgs/s better=higher assume=nothing",
		"Unit ns/hop better=lower assume=nothing",
		"Unit of-raw better=higher assume=nothing",
		"Unit p50-ms better=lower assume=nothing",
		"Unit p99-ms better=lower assume=nothing",
	}
	if got := b.String(); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("output:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	// Round trip through benchfmt: the tidied units (ns/hop is sec/hop)
	// read back with both keys.
	rd := benchfmt.NewReader(strings.NewReader(b.String()+"BenchmarkX 1 1 ns/hop\n"), "units")
	for rd.Scan() {
		if se, ok := rd.Result().(*benchfmt.SyntaxError); ok {
			t.Fatal(se)
		}
	}
	for unit, d := range pipelineUnits() {
		_, tidy := benchunit.Tidy(1, unit)
		if got := rd.Units().GetBetter(tidy); got != int(d) {
			t.Errorf("%s: read back better=%d, want %d", unit, got, d)
		}
		if md := rd.Units().Get(tidy, "assume"); md == nil || md.Value != "nothing" {
			t.Errorf("%s: read back assume %v, want nothing", unit, md)
		}
	}
	if err := WriteUnitMetadataAssume(&b, pipelineUnits(), "maybe"); err == nil {
		t.Error("assume=maybe: no error")
	}
}

// TestCallerUnits: the gate knows only the testing package's units. A
// custom unit's direction comes from the files' unit metadata or from
// Options.Units; without either, a drop in msgs/s is read as lower is
// better (an improvement) with a warning; metadata outranks the table; and
// negative values of a unit in the table are refused.
func TestCallerUnits(t *testing.T) {
	drop := pipelineBench(benchP4, map[string]float64{"msgs/s": 0.5})
	base := fixture(1, 10, []fakeBench{pipelineBench(benchP4, nil)})
	cand := fixture(2, 10, []fakeBench{drop})
	r := compare(t, base, cand, Options{Filter: ".unit:msgs/s"})
	if c := find(r, benchP4, "msgs/s"); c == nil || c.Better != LowerIsBetter || c.Verdict != Improved {
		t.Errorf("no table, no metadata: %+v, want lower is better, improved", c)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "unit msgs/s has no better= metadata") {
		t.Errorf("no warning about msgs/s: %q", r.Warnings)
	}
	r = compare(t, base, cand, Options{Filter: ".unit:msgs/s", Units: pipelineUnits()})
	if c := find(r, benchP4, "msgs/s"); c == nil || c.Better != HigherIsBetter || c.Verdict != Regressed || len(r.Warnings) != 0 {
		t.Errorf("with Options.Units: %+v, warnings %q, want higher is better, regressed, no warnings", c, r.Warnings)
	}
	// Metadata in the files outranks the caller's table.
	lower := "Unit msgs/s better=lower"
	r = compare(t, fixture(1, 10, []fakeBench{pipelineBench(benchP4, nil)}, lower), fixture(2, 10, []fakeBench{drop}, lower),
		Options{Filter: ".unit:msgs/s", Units: pipelineUnits()})
	if c := find(r, benchP4, "msgs/s"); c == nil || c.Better != LowerIsBetter {
		t.Errorf("metadata better=lower over the table: %+v", c)
	}
	neg := fixture(1, 8, []fakeBench{{benchP3, []metric{{"msgs/s", -5, 0.1}}}})
	if _, err := Compare(Input{"b", strings.NewReader(neg)}, Input{"n", strings.NewReader(neg)}, Options{}); err != nil {
		t.Errorf("negative msgs/s, not in a table: %v", err)
	}
	if _, err := Compare(Input{"b", strings.NewReader(neg)}, Input{"n", strings.NewReader(neg)}, Options{Units: pipelineUnits()}); !errors.Is(err, ErrBadInput) {
		t.Errorf("negative msgs/s in the table: err = %v, want ErrBadInput", err)
	}
}

func TestParseThreshold(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Threshold
		err  bool
	}{
		{"5%", Threshold{0.05, true}, false},
		{"0.5", Threshold{0.5, false}, false},
		{"0%", Threshold{0, true}, false},
		{"12.5%", Threshold{0.125, true}, false},
		{"1e-5", Threshold{1e-5, false}, false},
		{"-5%", Threshold{}, true},
		{"+5%", Threshold{}, true},
		{"five", Threshold{}, true},
		{"%", Threshold{}, true},
		{"Inf", Threshold{}, true},
		{"NaN%", Threshold{}, true},
	} {
		got, err := ParseThreshold(tt.in)
		if (err != nil) != tt.err || (!tt.err && math.Abs(got.Value-tt.want.Value) > 1e-12) || got.Relative != tt.want.Relative {
			t.Errorf("ParseThreshold(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			if back, _ := ParseThreshold(got.String()); math.Abs(back.Value-got.Value) > 1e-12 || back.Relative != got.Relative {
				t.Errorf("round trip of %q: %v", tt.in, back)
			}
		}
	}
}

func TestParseConfig(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "gate.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f, "gate.conf")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alpha != 0.01 {
		t.Errorf("alpha %g, want 0.01", cfg.Alpha)
	}
	var got []string
	for _, r := range cfg.Rules {
		got = append(got, r.Source+": "+r.String())
	}
	want := []string{
		"gate.conf:4: threshold=3%",
		"gate.conf:5: unit=msgs/s threshold=3%",
		"gate.conf:6: unit=allocs/op threshold=1",
		"gate.conf:7: unit=widgets/s better=higher",
		"gate.conf:8: bench=^BenchmarkP4/ unit=eff threshold=10%",
		"gate.conf:9: bench=/work=cpu threshold=15%",
		"gate.conf:10: unit=sec/op threshold=2e-06",
		"gate.conf:11: unit=p99-ms threshold=10% better=lower",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"unit=msgs/s threshold=3%\nunit=msgs/s threshold=lots\n", "cfg:2: threshold \"lots\""},
		{"\n\n  # fine\nthreshold\n", "cfg:4: field \"threshold\": want key=value"},
		{"colour=blue\n", "cfg:1: unknown key \"colour\""},
		{"unit=eff\n", "cfg:1: rule sets neither threshold nor better"},
		{"better=higher\n", "cfg:1: better needs unit"},
		{"bench=X unit=eff better=higher\n", "cfg:1: better is a property of a unit"},
		{"unit=eff better=up\n", "cfg:1: better: direction \"up\""},
		{"bench=( threshold=1%\n", "cfg:1: bench: error parsing regexp"},
		{"alpha=0.01 threshold=1%\n", "cfg:1: alpha must stand alone"},
		{"alpha=5\n", "cfg:1: alpha \"5\""},
		{"unit=eff unit=eff threshold=1%\n", "cfg:1: key \"unit\" given twice"},
		{"unit= threshold=1%\n", "cfg:1: key \"unit\": empty value"},
	} {
		_, err := ParseConfig(strings.NewReader(tt.text), "cfg")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %q: err = %v, want %q", tt.text, err, tt.want)
		}
	}
	if _, err := ParseRule("alpha=0.1", "x"); err == nil {
		t.Error("ParseRule accepted alpha")
	}
	if _, err := ParseRule("  # nothing", "x"); err == nil {
		t.Error("ParseRule accepted an empty rule")
	}
	if _, err := ReadConfigFile(filepath.Join(t.TempDir(), "none.conf")); err == nil {
		t.Error("ReadConfigFile of a missing file: no error")
	}
}

func mustRule(t *testing.T, s string) Rule {
	t.Helper()
	r, err := ParseRule(s, fmt.Sprintf("test %q", s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
