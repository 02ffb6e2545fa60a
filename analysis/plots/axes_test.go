package plots

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/natspipe/natspipe/analysis"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// variants is a P0..P4-like report: one simulated run per variant, with
// the bounds of the seed study at 1,4,1,1 ms (P2's 64 in flight far above
// the rest), so they span more than 10x.
func variants(t *testing.T) *analysis.Report {
	t.Helper()
	ds := []time.Duration{time.Millisecond, 4 * time.Millisecond, time.Millisecond, time.Millisecond}
	var trs []*trace.Trace
	for i, v := range []struct {
		name  string
		alloc []int
		bound float64
	}{{"p0", []int{1, 1, 1, 1}, 142.9}, {"p1", []int{1, 1, 1, 1}, 142.9}, {"p2", []int{1, 1, 1, 1}, 9143}, {"p3", []int{1, 1, 1, 1}, 250}, {"p4", []int{1, 4, 1, 1}, 1000}} {
		tr := simulate(ds, v.alloc, 120, 4+4*i)
		tr.Meta.Variant, tr.Meta.Bound = v.name, v.bound
		trs = append(trs, tr)
	}
	rep, err := analysis.Analyze(trs, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestThroughputLogAxis checks that the throughput axis goes logarithmic
// when the values span more than 10x (P2's bound next to P0's), and stays
// linear from 0 when they do not (an allocation sweep); tick labels have
// no spurious decimals either way.
func TestThroughputLogAxis(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  *analysis.Report
		log  bool
	}{{"variants", variants(t), true}, {"sweep", sweep(t), false}} {
		ch, err := Throughput(tc.rep)
		if err != nil {
			t.Fatal(err)
		}
		y := ch.Plot.Y
		_, isLog := y.Scale.(plot.LogScale)
		if isLog != tc.log {
			t.Errorf("%s: log axis %v, want %v (y %g..%g)", tc.name, isLog, tc.log, y.Min, y.Max)
		}
		lo, hi := tc.rep.Runs[0].Throughput, 0.0
		for _, r := range tc.rep.Runs {
			lo, hi = min(lo, r.Throughput), max(hi, r.Throughput, r.Bound)
		}
		if y.Min > lo || y.Max < hi || (!tc.log && y.Min != 0) {
			t.Errorf("%s: y axis %g..%g does not show %g..%g", tc.name, y.Min, y.Max, lo, hi)
		}
		if tc.log && !strings.Contains(y.Label.Text, "log") {
			t.Errorf("%s: y label %q does not say the axis is logarithmic", tc.name, y.Label.Text)
		}
		labelled := 0
		for _, tk := range y.Tick.Marker.Ticks(y.Min, y.Max) {
			if tk.Label == "" {
				continue
			}
			labelled++
			if strings.Contains(tk.Label, ".") && tk.Value == float64(int64(tk.Value)) {
				t.Errorf("%s: tick %g labelled %q, want no decimals", tc.name, tk.Value, tk.Label)
			}
		}
		if labelled < 2 {
			t.Errorf("%s: %d labelled ticks, want at least 2", tc.name, labelled)
		}
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{500: "500", 0: "0", 0.25: "0.25", 0.1 + 0.2: "0.3", 10000: "10000", 1.5: "1.5", 120: "120"} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	var labels []string
	for _, tk := range (logTicks{}).Ticks(100, 20000) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "100 200 500 1000 2000 5000 10000 20000" {
		t.Errorf("labels %s", got)
	}
}

// TestEfficiencyChart checks the efficiency bars: one per run in the
// run's colour, against the line at 1.
func TestEfficiencyChart(t *testing.T) {
	rep := variants(t)
	ch, err := Efficiency(rep)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Plot.Y.Min != 0 || ch.Plot.Y.Max < 1 {
		t.Errorf("y axis %g..%g, want 0 to past 1", ch.Plot.Y.Min, ch.Plot.Y.Max)
	}
	dir := t.TempDir()
	if err := ch.Save(dir, 6*vg.Inch, 4*vg.Inch); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "efficiency.png"), 576, 384, palette(0), palette(1), palette(2), palette(3), palette(4), grey())
}

// TestLatencyAtLoad checks the open-loop chart: only the open-loop runs,
// their load in the labels and title, and none for closed-loop runs only.
func TestLatencyAtLoad(t *testing.T) {
	if ch, err := LatencyAtLoad(sweep(t)); ch != nil || err != nil {
		t.Errorf("closed-loop runs: chart %v, error %v; want neither", ch, err)
	}
	ds := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	var trs []*trace.Trace
	for i, bound := range []float64{500, 1000} {
		tr := simulate(ds, []int{1, i + 1}, 80, 4)
		tr.Meta.Variant, tr.Meta.Window, tr.Meta.Bound, tr.Meta.Rate = "p"+string(rune('3'+i)), 0, bound, 0.8*bound
		trs = append(trs, tr)
	}
	trs = append(trs, simulate(ds, []int{1, 1}, 80, 4)) // closed loop: left out
	rep, err := analysis.Analyze(trs, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := LatencyAtLoad(rep)
	if err != nil || ch == nil {
		t.Fatalf("chart %v, error %v", ch, err)
	}
	if !strings.Contains(ch.Title, "80% of each bound") {
		t.Errorf("title %q does not give the equal load", ch.Title)
	}
	ticks := ch.Plot.X.Tick.Marker.Ticks(ch.Plot.X.Min, ch.Plot.X.Max)
	if len(ticks) != 2 || !strings.Contains(ticks[0].Label, "load 0.80") {
		t.Errorf("x ticks %v, want the 2 open-loop runs with their load", ticks)
	}
	lat, err := Latency(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lat.Plot.Title.Text, "window") || !strings.Contains(lat.Caption, "window") {
		t.Errorf("latency chart with a closed-loop run does not say latency includes the window: %q / %q", lat.Plot.Title.Text, lat.Caption)
	}
	dir := t.TempDir()
	if err := ch.Save(dir, 6*vg.Inch, 4*vg.Inch); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "latency-load.png"), 576, 384, palette(0), palette(1))
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string][2]vg.Length{
		"8x5in": {8 * vg.Inch, 5 * vg.Inch}, "768x480": {8 * vg.Inch, 5 * vg.Inch}, "768x480px": {8 * vg.Inch, 5 * vg.Inch},
		"20x12.5cm": {20 * vg.Centimeter, 12.5 * vg.Centimeter}, "576x360pt": {8 * vg.Inch, 5 * vg.Inch},
	} {
		w, h, err := ParseSize(in)
		if err != nil || w != want[0] || h != want[1] {
			t.Errorf("ParseSize(%q) = %v, %v, %v; want %v", in, w, h, err, want)
		}
	}
	for _, bad := range []string{"", "8", "8x", "x5", "8x5ft", "-8x5in", "1x5in", "100x5in", "8 x 5", "8x5inch", "0x0"} {
		if _, _, err := ParseSize(bad); err == nil || !strings.Contains(err.Error(), "size") {
			t.Errorf("ParseSize(%q): error %v, want one naming the size", bad, err)
		}
	}
}
