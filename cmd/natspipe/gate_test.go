package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeGateBench writes count repetitions of one synthetic benchmark per
// name in Go benchmark format, with 3% gaussian noise from a seeded PCG.
// scale multiplies a unit's true value; allocs adds to allocs/op.
func writeGateBench(t *testing.T, seed uint64, count int, names []string, scale map[string]float64, allocs float64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	var b strings.Builder
	b.WriteString("Unit msgs/s better=higher\nUnit eff better=higher\n")
	b.WriteString("goos: linux\ngoarch: amd64\npkg: github.com/natspipe/natspipe/bench\ncpu: Fake CPU\n")
	for _, name := range names {
		for range count {
			v := func(unit string, x float64) float64 {
				if f, ok := scale[unit]; ok {
					x *= f
				}
				return x * (1 + 0.03*rng.NormFloat64())
			}
			fmt.Fprintf(&b, "%s \t100\t%.0f ns/op\t%.3f msgs/s\t%.4f eff\t%g allocs/op\n",
				name, v("ns/op", 10e6), v("msgs/s", 100), v("eff", 0.95), 40+allocs)
		}
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("bench-%d.txt", seed))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	gateTestP4 = "BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep-4"
	gateTestP3 = "BenchmarkP3/mode=sync/work=sleep-4"
)

func runGateCapture(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runGate(args, &o, &e)
	return code, o.String(), e.String()
}

func TestGateAA(t *testing.T) {
	failed := 0
	for seed := range uint64(20) {
		base := writeGateBench(t, 2*seed, 10, []string{gateTestP4, gateTestP3}, nil, 0)
		cand := writeGateBench(t, 2*seed+1, 10, []string{gateTestP4, gateTestP3}, nil, 0)
		if code, out, errOut := runGateCapture(base, cand); code != 0 {
			failed++
			t.Logf("seed %d: exit %d\n%s%s", seed, code, out, errOut)
		}
	}
	// The false-alarm rate per run is well under 1% (see the gate
	// package's TestAA); 20 runs should not see more than one.
	if failed > 1 {
		t.Errorf("%d of 20 A/A runs failed", failed)
	}
}

func TestGateRegressions(t *testing.T) {
	for _, tt := range []struct {
		name   string
		unit   string
		scale  map[string]float64
		allocs float64
	}{
		{"sec/op +10%", "sec/op", map[string]float64{"ns/op": 1.10}, 0},
		{"msgs/s -10%", "msgs/s", map[string]float64{"msgs/s": 0.90}, 0},
		{"eff -10%", "eff", map[string]float64{"eff": 0.90}, 0},
		{"allocs/op +1", "allocs/op", nil, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := writeGateBench(t, 1, 10, []string{gateTestP4}, nil, 0)
			cand := writeGateBench(t, 2, 10, []string{gateTestP4}, tt.scale, tt.allocs)
			code, out, errOut := runGateCapture(base, cand)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			if !strings.Contains(out, gateTestP4+" "+tt.unit+": ") || !strings.Contains(out, "gate: FAIL") {
				t.Errorf("stdout does not name %s %s:\n%s", gateTestP4, tt.unit, out)
			}
			if errOut != "" {
				t.Errorf("stderr not empty: %s", errOut)
			}
		})
	}
}

func TestGateImprovementPasses(t *testing.T) {
	base := writeGateBench(t, 1, 10, []string{gateTestP4}, nil, 0)
	cand := writeGateBench(t, 2, 10, []string{gateTestP4}, map[string]float64{"ns/op": 0.90, "msgs/s": 1.10}, 0)
	code, out, _ := runGateCapture(base, cand)
	if code != 0 {
		t.Errorf("exit %d, want 0:\n%s", code, out)
	}
	for _, unit := range []string{"sec/op", "msgs/s"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(gateTestP4) + ` +` + regexp.QuoteMeta(unit) + ` .* improved$`).MatchString(out) {
			t.Errorf("%s is not reported improved:\n%s", unit, out)
		}
	}
}

func TestGateFlags(t *testing.T) {
	base := writeGateBench(t, 1, 10, []string{gateTestP4, gateTestP3}, nil, 0)
	slow := writeGateBench(t, 2, 10, []string{gateTestP4, gateTestP3}, map[string]float64{"ns/op": 1.10}, 0)
	conf := filepath.Join(t.TempDir(), "gate.conf")
	if err := os.WriteFile(conf, []byte("# loose for P4\nbench=^BenchmarkP4/ unit=ns/op threshold=20%\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"default", []string{base, slow}, 1},
		{"-threshold", []string{"-threshold", "20%", base, slow}, 0},
		{"-unit-threshold", []string{"-unit-threshold", "sec/op=20%", base, slow}, 0},
		{"-unit-threshold other unit", []string{"-unit-threshold", "msgs/s=20%", base, slow}, 1},
		{"-rule", []string{"-rule", "bench=. unit=ns/op threshold=15%", base, slow}, 0},
		{"-config covers P4 only", []string{"-config", conf, base, slow}, 1},
		{"-config plus -filter", []string{"-config", conf, "-filter", ".name:/^P4/", base, slow}, 0},
		{"flags after files", []string{base, slow, "-threshold", "20%"}, 0},
		{"-better flips sec/op", []string{"-better", "sec/op=higher", base, slow}, 0},
		{"-filter other unit", []string{"-filter", ".unit:msgs/s", base, slow}, 0},
	} {
		code, out, errOut := runGateCapture(tt.args...)
		if code != tt.want {
			t.Errorf("%s: exit %d, want %d\n%s%s", tt.name, code, tt.want, out, errOut)
		}
	}
}

func TestGateSmallSamples(t *testing.T) {
	base := writeGateBench(t, 1, 4, []string{"BenchmarkX"}, nil, 0)
	cand := writeGateBench(t, 2, 10, []string{"BenchmarkX"}, map[string]float64{"msgs/s": 0.5}, 0)
	code, out, errOut := runGateCapture(base, cand)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
	}
	const want = "BenchmarkX msgs/s: 4 baseline samples, need at least 6 (use -count 6 or more)"
	if !strings.Contains(out, want) || strings.Contains(out, "REGRESSED") {
		t.Errorf("stdout should refuse, not judge:\n%s", out)
	}
	if !strings.Contains(errOut, "refused") {
		t.Errorf("stderr should explain exit 2: %q", errOut)
	}
	if code, out, _ := runGateCapture("-allow-small", base, cand); code != 0 || !strings.Contains(out, want) {
		t.Errorf("-allow-small: exit %d, want 0 with the warning\n%s", code, out)
	}
}

func TestGateMissing(t *testing.T) {
	base := writeGateBench(t, 1, 6, []string{gateTestP3, "BenchmarkGone"}, nil, 0)
	cand := writeGateBench(t, 2, 6, []string{gateTestP3}, nil, 0)
	code, out, _ := runGateCapture(base, cand)
	if code != 0 || !strings.Contains(out, "Only in baseline (1):") || !strings.Contains(out, "BenchmarkGone: sec/op") {
		t.Errorf("exit %d, want 0 listing BenchmarkGone:\n%s", code, out)
	}
	if code, _, _ := runGateCapture("-strict-missing", base, cand); code != 1 {
		t.Errorf("-strict-missing: exit %d, want 1", code)
	}
}

func TestGateErrors(t *testing.T) {
	good := writeGateBench(t, 1, 6, []string{gateTestP3}, nil, 0)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	badConf := filepath.Join(dir, "bad.conf")
	os.WriteFile(empty, []byte("goos: linux\nPASS\n"), 0o644)
	os.WriteFile(badConf, []byte("unit=eff threshold=10%\nunit=eff threshold=ten\n"), 0o644)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no files", nil, "want 2 files"},
		{"one file", []string{good}, "want 2 files"},
		{"unknown flag", []string{"-bogus", good, good}, "flag provided but not defined"},
		{"bad alpha", []string{"-alpha", "2", good, good}, "-alpha 2"},
		{"bad threshold", []string{"-threshold", "x", good, good}, "-threshold"},
		{"bad unit threshold", []string{"-unit-threshold", "msgs/s", good, good}, "want unit=threshold"},
		{"bad better", []string{"-better", "msgs/s=up", good, good}, `-better "msgs/s=up"`},
		{"bad rule", []string{"-rule", "bench=( threshold=1%", good, good}, "-rule"},
		{"bad config", []string{"-config", badConf, good, good}, "bad.conf:2:"},
		{"missing config", []string{"-config", filepath.Join(dir, "none.conf"), good, good}, "none.conf"},
		{"bad filter", []string{"-filter", "(", good, good}, "filter"},
		{"unreadable", []string{filepath.Join(dir, "none.txt"), good}, "none.txt"},
		{"no benchmarks", []string{good, empty}, "no benchmark results"},
		{"bad min-samples", []string{"-min-samples", "1", good, good}, "-min-samples"},
	} {
		code, out, errOut := runGateCapture(tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tt.name, code, errOut, tt.want)
		}
		if out != "" {
			t.Errorf("%s: stdout should be empty, got %q", tt.name, out)
		}
	}
	if code, out, errOut := runGateCapture("-h"); code != 0 || !strings.HasPrefix(out, "usage: natspipe gate") || errOut != "" {
		t.Errorf("-h: exit %d, stdout %q, stderr %q; want the help on stdout", code, out, errOut)
	}
}

func TestGatePrintUnits(t *testing.T) {
	code, out, _ := runGateCapture("-print-units", "-better", "widgets/s=higher")
	if code != 0 || !strings.Contains(out, "Unit msgs/s better=higher\n") || !strings.Contains(out, "Unit widgets/s better=higher\n") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// TestGateNaN: a NaN in a benchmark file made the gate spin forever in
// go-moremath's Mann-Whitney U test. It must exit 2 naming the file and
// line. The bound only tells a hang from an answer (which takes
// milliseconds); it is not a speed requirement.
func TestGateNaN(t *testing.T) {
	base := writeGateBench(t, 1, 8, []string{gateTestP3}, nil, 0)
	data, err := os.ReadFile(writeGateBench(t, 2, 8, []string{gateTestP3}, nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	const line = 9 // the third result: 2 unit lines, 4 configuration lines
	if !strings.HasPrefix(lines[line-1], gateTestP3) {
		t.Fatalf("line %d is not a result: %q", line, lines[line-1])
	}
	lines[line-1] = gateTestP3 + " \t100\t10000000 ns/op\tNaN msgs/s\t0.95 eff\t40 allocs/op"
	nan := filepath.Join(t.TempDir(), "nan.txt")
	if err := os.WriteFile(nan, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code        int
		out, errOut string
	}
	for _, args := range [][]string{{base, nan}, {nan, base}, {"-filter", ".unit:eff", base, nan}} {
		done := make(chan result, 1)
		go func() {
			code, out, errOut := runGateCapture(args...)
			done <- result{code, out, errOut}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("gate %q: no answer within 10s (hung)", args)
		}
		side := "candidate"
		if args[0] == nan {
			side = "baseline"
		}
		want := fmt.Sprintf("natspipe gate: %s:%d: %s %s: bad benchmark input: NaN msgs/s is not a finite number\n", nan, line, side, gateTestP3)
		if r.code != 2 || r.errOut != want || r.out != "" {
			t.Errorf("gate %q: exit %d, stdout %q, stderr %q; want exit 2, no stdout, stderr %q", args, r.code, r.out, r.errOut, want)
		}
	}
}

// TestGateProjectUnits: natspipe gate passes natspipe's unit table to the
// gate library, which knows only Go's standard units: files without unit
// metadata still have msgs/s judged higher-is-better.
func TestGateProjectUnits(t *testing.T) {
	strip := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`(?m)^Unit .*\n`)
		out := re.ReplaceAllString(string(data), "")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	base := strip(writeGateBench(t, 1, 10, []string{gateTestP4}, nil, 0))
	cand := strip(writeGateBench(t, 2, 10, []string{gateTestP4}, map[string]float64{"msgs/s": 0.8}, 0))
	code, out, errOut := runGateCapture("-filter", ".unit:msgs/s", base, cand)
	if code != gateExitRegression || !strings.Contains(out, "REGRESSED") || strings.Contains(out+errOut, "assuming lower is better") {
		t.Errorf("msgs/s -20%% without unit metadata: exit %d, want %d\n%s%s", code, gateExitRegression, out, errOut)
	}
}
