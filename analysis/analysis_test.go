package analysis

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines/trace"
)

const msNS = int64(time.Millisecond)

// handTrace is a two-stage run with known timings. Five messages, sent
// 1.25 ms apart from T; a sixth is lost. Each message: S1 (worker a) works
// 0..1 ms after its send; S2 (workers b1, b2 alternating) arrives at 1.25,
// starts at 1.5 and ends at 4.5; the sink receives it at 5. So:
//   - wall time: 0 .. 5*1.25+5 = 10 ms;
//   - S1 busy 5 ms, 1 worker: utilization 0.5; S2 busy 15 ms, 2 workers: 0.75;
//   - S2 waits 0.25 ms; transit 5 - (1 + 3.25) = 0.75 ms; latency 4.5 ms.
//
// With open set, message k's send is k*0.1 ms late against its intended time.
func handTrace(open bool) *trace.Trace {
	T := time.Unix(1700000000, 0)
	t0 := T.UnixNano()
	at := func(msx4 int64) int64 { return msx4 * msNS / 4 } // quarter milliseconds
	tr := &trace.Trace{Meta: trace.Meta{
		Variant: "p4", Stages: 2, Durations: []time.Duration{time.Millisecond, 3 * time.Millisecond},
		Work: "sleep", N: 6, Window: 4, Bound: 400, Start: T, StartStamp: t0,
	}}
	if open {
		tr.Meta.Window, tr.Meta.Rate = 0, 800
	}
	for k := int64(0); k < 5; k++ {
		intended := t0 + k*at(5)
		sent := intended
		if open {
			sent += k * msNS / 10
		}
		w := "b1"
		if k%2 == 1 {
			w = "b2"
		}
		tr.Messages = append(tr.Messages, trace.Message{
			Seq: uint64(k), ID: "m" + string(rune('0'+k)), Intended: intended, Sent: sent, Received: sent + at(20),
			Stages: []trace.Stage{
				{Stage: 1, Worker: "a", Arrived: sent, Started: sent, Finished: sent + at(4)},
				{Stage: 2, Worker: w, Arrived: sent + at(5), Started: sent + at(6), Finished: sent + at(18)},
			},
		})
	}
	tr.Messages = append(tr.Messages, trace.Message{Seq: 5, Intended: t0 + 5*at(5)})
	tr.Meta.Lost = []uint64{5}
	return tr
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-12)
}

func TestKnownTimings(t *testing.T) {
	r, err := AnalyzeTrace(handTrace(false), Options{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want float64) {
		t.Helper()
		if !near(got, want, 1e-9) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("wall ms", r.Wall, 10)
	check("S1 utilization", r.Stages[0].Utilization, 0.5)
	check("S2 utilization", r.Stages[1].Utilization, 0.75)
	check("S1 busy ms", r.Stages[0].Busy, 5)
	check("S2 busy ms", r.Stages[1].Busy, 15)
	check("S2 wait p50", r.Stages[1].Wait.P50, 0.25)
	check("S2 wait p99", r.Stages[1].Wait.P99, 0.25)
	check("S1 wait max", r.Stages[0].Wait.Max, 0)
	check("S2 service p90", r.Stages[1].Service.P90, 3)
	check("transit p50", r.Transit.P50, 0.75)
	check("latency max (exact)", r.Latency.Max, 4.5)
	check("floor", r.Floor, 4)
	// 5 completions (< 20): all of them over the time since the start.
	check("throughput", r.Throughput, 500)
	check("efficiency", r.Efficiency, 500.0/400)
	if !near(r.Latency.P50, 4.5, 1e-3) || !near(r.Latency.P999, 4.5, 1e-3) {
		t.Errorf("latency p50 %v p99.9 %v, want 4.5 within HDR precision", r.Latency.P50, r.Latency.P999)
	}
	if r.Bottleneck != "S2" {
		t.Errorf("bottleneck %s, want S2", r.Bottleneck)
	}
	if r.Completed != 5 || r.Lost != 1 || r.Messages != 6 {
		t.Errorf("completed %d lost %d messages %d, want 5 1 6", r.Completed, r.Lost, r.Messages)
	}
	if got := r.AllocationString(); got != "1-2" {
		t.Errorf("allocation %s, want 1-2", got)
	}
	if r.OpenLoop != nil {
		t.Error("closed-loop run has open-loop figures")
	}

	// Given workers override what was seen: S2 with 3 workers is 0.5 busy,
	// and S1 (first at the tie) is the bottleneck.
	r, err = AnalyzeTrace(handTrace(false), Options{Workers: []int{0, 3}})
	if err != nil {
		t.Fatal(err)
	}
	check("S2 utilization, 3 workers", r.Stages[1].Utilization, 0.5)
	if r.Stages[1].WorkersSeen != 2 || r.Stages[1].Workers != 3 || r.Bottleneck != "S1" {
		t.Errorf("workers %d seen %d bottleneck %s, want 3 2 S1", r.Stages[1].Workers, r.Stages[1].WorkersSeen, r.Bottleneck)
	}
}

func TestOpenLoop(t *testing.T) {
	r, err := AnalyzeTrace(handTrace(true), Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := r.OpenLoop
	if o == nil {
		t.Fatal("no open-loop figures")
	}
	// From the intended send, message k takes 4.5 + 0.1k ms; from the
	// actual send, 4.5 ms; the sends are 0 .. 0.4 ms late.
	if !near(r.Latency.Max, 4.9, 1e-9) || !near(o.FromSend.Max, 4.5, 1e-9) || !near(o.PublishDelay.Max, 0.4, 1e-9) {
		t.Errorf("latency max %v, from send %v, publish delay %v; want 4.9, 4.5, 0.4", r.Latency.Max, o.FromSend.Max, o.PublishDelay.Max)
	}
	if !near(r.Latency.P50, 4.7, 1e-3) || !near(o.PublishDelay.P50, 0.2, 1e-3) {
		t.Errorf("latency p50 %v, publish delay p50 %v; want 4.7, 0.2", r.Latency.P50, o.PublishDelay.P50)
	}
	if !near(o.Offered, 800, 1e-9) || o.Rate != 800 {
		t.Errorf("offered %v rate %v, want 800", o.Offered, o.Rate)
	}
}

func TestExactDist(t *testing.T) {
	var vs []int64
	for i := 100; i >= 1; i-- {
		vs = append(vs, int64(i)*msNS)
	}
	d := exactDist(vs)
	want := Dist{Count: 100, Mean: 50.5, P50: 50, P90: 90, P99: 99, P999: 100, Max: 100}
	if d != want {
		t.Errorf("got %+v, want %+v", d, want)
	}
	if (exactDist(nil) != Dist{}) {
		t.Error("empty distribution not zero")
	}
}

func TestSteadyThroughput(t *testing.T) {
	// 101 completions 1 ms apart after a 50 ms fill: the middle runs at 1000/s.
	var recv []int64
	for i := 0; i < 101; i++ {
		recv = append(recv, int64(50+i)*msNS)
	}
	if got := steadyThroughput(recv, 0, 4); !near(got, 1000, 1e-9) {
		t.Errorf("steady throughput %v, want 1000", got)
	}
	if got := steadyThroughput(nil, 0, 0); got != 0 {
		t.Errorf("no completions: %v, want 0", got)
	}
}

func TestLabels(t *testing.T) {
	a, b := handTrace(false), handTrace(false)
	b.Meta.Variant = "p3"
	rep, err := Analyze([]*trace.Trace{a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs[0].Label != "p4" || rep.Runs[1].Label != "p3" {
		t.Errorf("labels %q %q, want p4 p3", rep.Runs[0].Label, rep.Runs[1].Label)
	}
	// P0 has no transport: next to runs over one transport, nobody's label
	// names it; over two, the brokered runs' labels do.
	p0, core, js := handTrace(false), handTrace(false), handTrace(false)
	p0.Meta.Variant, core.Meta.Transport, js.Meta.Transport = "p0", "core", "js"
	for _, tc := range []struct {
		trs  []*trace.Trace
		want []string
	}{{[]*trace.Trace{p0, core}, []string{"p0", "p4"}}, {[]*trace.Trace{p0, core, js}, []string{"p0", "p4 core", "p4 js"}}} {
		rep, err := Analyze(tc.trs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rep.Runs {
			if r.Label != tc.want[i] {
				t.Errorf("run %d labelled %q, want %q (labels %v)", i, r.Label, tc.want[i], tc.want)
			}
		}
	}
	// Same variant: told apart by allocation.
	c := handTrace(false)
	for i := range c.Messages {
		if len(c.Messages[i].Stages) > 0 {
			c.Messages[i].Stages[1].Worker = "b"
		}
	}
	rep, err = Analyze([]*trace.Trace{a, c}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs[0].Label != "p4 1-2" || rep.Runs[1].Label != "p4 1-1" {
		t.Errorf("labels %q %q, want allocations", rep.Runs[0].Label, rep.Runs[1].Label)
	}
	// Same everything: by what tells the files apart.
	a.Source, b.Source = "x/BenchmarkP4_work=sleep_n=1.jsonl", "x/BenchmarkP4_work=sleep_n=2.jsonl"
	b.Meta.Variant = "p4"
	rep, err = Analyze([]*trace.Trace{a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs[0].Label != "n=1" || rep.Runs[1].Label != "n=2" {
		t.Errorf("labels %q %q, want n=1 n=2", rep.Runs[0].Label, rep.Runs[1].Label)
	}
	b.Source = "y/BenchmarkP4_work=sleep_n=1.jsonl"
	rep, err = Analyze([]*trace.Trace{a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs[0].Label != "p4 #1" || rep.Runs[1].Label != "p4 #2" {
		t.Errorf("labels %q %q, want p4 #1, p4 #2", rep.Runs[0].Label, rep.Runs[1].Label)
	}
	if _, err := Analyze([]*trace.Trace{a}, Options{Labels: []string{"x", "y"}}); err == nil {
		t.Error("2 labels for 1 trace: no error")
	}
	if _, err := Analyze(nil, Options{}); err == nil {
		t.Error("no traces: no error")
	}
}

func TestTextAndJSON(t *testing.T) {
	rep, err := Analyze([]*trace.Trace{handTrace(false), handTrace(true)}, Options{Labels: []string{"closed", "open"}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{"runs\n", "stages\n", "open loop\n", "closed ", "S2*", "0.750", "500.0", "1.250", "4.50ms"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// Columns align: every row of the runs table is as wide as its header.
	lines := strings.Split(text, "\n")
	i := slices.Index(lines, "runs")
	if w := len([]rune(lines[i+1])); len([]rune(lines[i+2])) != w || len([]rune(lines[i+3])) != w {
		t.Errorf("runs table not aligned:\n%s", strings.Join(lines[i:i+4], "\n"))
	}
	buf.Reset()
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Runs) != 2 || back.Runs[0].Stages[1].Utilization != 0.75 || back.Runs[1].OpenLoop == nil ||
		back.Runs[0].Bottleneck != "S2" || back.Runs[0].Throughput != 500 {
		t.Errorf("JSON round trip lost data: %s", buf.String())
	}
}

func TestMillis(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.85: "850µs", 7.123: "7.12ms", 41: "41.0ms", 250: "250ms", 1234: "1.23s"} {
		if got := Millis(v); got != want {
			t.Errorf("Millis(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestAccountFromHeader: the runs' lost, late and unaccounted counts are
// the header's account, not the messages that did not come back: a run
// that ended early lists seq 5 as unaccounted, not lost. The account's
// text is its heading and the header account's lines.
func TestAccountFromHeader(t *testing.T) {
	tr := handTrace(false)
	tr.Source = "/tmp/early.jsonl"
	m := &tr.Meta
	m.Lost, m.Unaccounted, m.EndedBy = nil, []uint64{5}, "fault: nats: connection closed"
	m.Completed, m.Late, m.LateSeqs, m.LossTimeout = 5, 1, []uint64{4}, time.Second
	r, err := AnalyzeTrace(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 5 || r.Lost != 0 || r.Late != 1 || r.Unaccounted != 1 {
		t.Errorf("completed %d lost %d late %d unaccounted %d, want 5 0 1 1", r.Completed, r.Lost, r.Late, r.Unaccounted)
	}
	want := []string{
		"account of p4 (early.jsonl): 5/6 completed, lost 0 + 1 unaccounted at the end, late 1, duplicates 0, strays 0, rejected 0 (ENDED EARLY)",
		"ended early: fault: nats: connection closed",
		"unaccounted at the end (1, sent, neither back from S2 nor declared lost): seq 5",
		"late (1, back after the 1s loss timeout): seq 4",
	}
	if got := r.AccountText(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("account text:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var b bytes.Buffer
	if err := (&Report{Runs: []*Run{r}}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\naccounts\n"+strings.Join(want, "\n")+"\n") {
		t.Errorf("text report lacks the account:\n%s", b.String())
	}

	// A CSV trace has no header: every message not back counts as lost,
	// and the heading says so.
	var csv bytes.Buffer
	if err := tr.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	ct, err := trace.ReadCSV(&csv, "early.csv")
	if err != nil {
		t.Fatal(err)
	}
	r, err = AnalyzeTrace(ct, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lost != 1 || r.Unaccounted != 0 || !strings.HasSuffix(r.AccountText()[0], "(no header: lost counts every message not back)") {
		t.Errorf("csv: lost %d unaccounted %d, account %q", r.Lost, r.Unaccounted, r.AccountText())
	}
}
