package analysis

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// handBuilt is a report built by hand, not from traces: a P3 run whose
// bottleneck is S2 and whose messages mostly wait, and a P2 run with a far
// higher bound whose time is mostly service.
func handBuilt() *Report {
	p3 := &Run{
		Label: "p3 core", Variant: "p3", Transport: "core", Window: 6,
		Durations: []float64{1, 4, 1, 1}, Floor: 7, Allocation: []int{1, 1, 1, 1},
		Throughput: 219.4, Bound: 250, Efficiency: 0.8776,
		Latency: Dist{P50: 25.9}, Transit: Dist{Mean: 2},
		Bottleneck: "S2",
		Stages: []Stage{
			{Name: "S1", Defined: 1, Workers: 1, Service: Dist{Mean: 1.1}, Wait: Dist{Mean: 0.5}, Utilization: 0.33},
			{Name: "S2", Defined: 4, Workers: 1, Service: Dist{Mean: 4.1}, Wait: Dist{Mean: 16.3}, Utilization: 0.9},
			{Name: "S3", Defined: 1, Workers: 1, Service: Dist{Mean: 1.1}, Utilization: 0.24},
			{Name: "S4", Defined: 1, Workers: 1, Service: Dist{Mean: 1.1}, Utilization: 0.25},
		},
	}
	p2 := &Run{
		Label: "p2 core", Variant: "p2", Transport: "core", Window: 97,
		Durations: []float64{1, 4, 1, 1}, Floor: 7, Allocation: []int{1, 1, 1, 1},
		Throughput: 2413, Bound: 9143, Efficiency: 0.2639,
		Latency: Dist{P50: 61.5}, Transit: Dist{Mean: 1},
		Bottleneck: "S4",
		Stages: []Stage{
			{Name: "S1", Defined: 1, Workers: 1, Service: Dist{Mean: 10}},
			{Name: "S4", Defined: 1, Workers: 1, Service: Dist{Mean: 10}, Utilization: 3.2},
		},
	}
	return &Report{Runs: []*Run{p3, p2}}
}

// TestNarrative checks that the generated story names each run's bound,
// measured throughput, efficiency and bottleneck, says where the time
// goes, and compares the runs: all from the report's numbers.
func TestNarrative(t *testing.T) {
	n := handBuilt().Narrative()
	if len(n) != 3 {
		t.Fatalf("%d paragraphs, want one per run and a comparison:\n%s", len(n), strings.Join(n, "\n"))
	}
	for _, want := range []string{"p3 core:", "Bound 250.0 msgs/s", "measured 219.4 msgs/s", "efficiency 0.878",
		"Bottleneck S2 (4.00ms a message, 1 worker, utilization 0.90)", "window 6",
		"64% queue wait (most at S2, 16.3ms)", "28% service", "8% transit", "floor of 7.00ms"} {
		if !strings.Contains(n[0], want) {
			t.Errorf("p3's paragraph lacks %q:\n%s", want, n[0])
		}
	}
	for _, want := range []string{"Bound 9143 msgs/s", "Bottleneck S4", "3.2 messages in work on average", "0% queue wait, 95% service"} {
		if !strings.Contains(n[1], want) {
			t.Errorf("p2's paragraph lacks %q:\n%s", want, n[1])
		}
	}
	for _, want := range []string{"efficiency from 0.264 (p2 core) to 0.878 (p3 core)", "bounds span 37x",
		"Bottleneck: S2 in p3 core; S4 in p2 core", "queue wait in p3 core; service in p2 core",
		"windows differ (6 to 97)", "equal offered load"} {
		if !strings.Contains(n[2], want) {
			t.Errorf("the comparison lacks %q:\n%s", want, n[2])
		}
	}
	if one := (&Report{Runs: handBuilt().Runs[:1]}).Narrative(); len(one) != 1 {
		t.Errorf("one run: %d paragraphs, want 1", len(one))
	}
}

// TestWriteTextWidth checks that text fitted to 100 columns keeps every
// line within them, even with long labels and file names, splits the wide
// tables into continued parts that repeat the run, and that width 0 is
// WriteText's full width.
func TestWriteTextWidth(t *testing.T) {
	rep := handBuilt()
	rep.Runs[0].Label = "P3 a rather long label that names the run and its transport core"
	rep.Runs[0].Source = "/tmp/" + strings.Repeat("BenchmarkSuite_work=sleep_impl=p3_", 4) + ".jsonl"
	var narrow, full, def bytes.Buffer
	if err := rep.WriteTextWidth(&narrow, TextWidth); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteTextWidth(&full, 0); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteText(&def); err != nil {
		t.Fatal(err)
	}
	if full.String() != def.String() {
		t.Error("WriteTextWidth with width 0 differs from WriteText")
	}
	widest := 0
	for _, l := range strings.Split(full.String(), "\n") {
		widest = max(widest, utf8.RuneCountInString(l))
	}
	if widest <= TextWidth {
		t.Fatalf("full text is %d wide: the test needs wider tables", widest)
	}
	for i, l := range strings.Split(narrow.String(), "\n") {
		if n := utf8.RuneCountInString(l); n > TextWidth {
			t.Errorf("line %d is %d wide: %s", i+1, n, l)
		}
	}
	out := narrow.String()
	for _, want := range []string{"runs\n", "runs (continued)\n", "stages (continued)\n", "svc-p50", "wait-p99", "util", "transit-p50", "…"} {
		if !strings.Contains(out, want) {
			t.Errorf("fitted text lacks %q:\n%s", want, out)
		}
	}
	if c := strings.Count(out, "P3 a rather long label"); c < 6 {
		t.Errorf("the run's label appears %d times, want it in every part of every table:\n%s", c, out)
	}
}
