package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/natspipe/natspipe/analysis"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p0"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// writeAnalyzeTraces runs P0 twice for real (no NATS needed), with stage
// times 1,2,0,1 ms and 2,2,0,1 ms, and writes the traces into a new directory
// as fast.jsonl/.csv and slow.jsonl/.csv.
func writeAnalyzeTraces(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, first := range map[string]time.Duration{"fast": time.Millisecond, "slow": 2 * time.Millisecond} {
		spec := pipelines.Spec{Durations: []time.Duration{first, 2 * time.Millisecond, 0, time.Millisecond}, Work: pipelines.Sleep}
		r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p0", Bound: p0.Bound(spec)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := p0.New(spec, r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Run(context.Background(), p, 25)
		if err != nil {
			t.Fatal(err)
		}
		if err := trace.WriteDir(dir, name, res); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func analyzeCapture(run func([]string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func analyzeCmd(args []string, out, errb *bytes.Buffer) int { return runAnalyze(args, out, errb) }
func reportCmd(args []string, out, errb *bytes.Buffer) int  { return runReport(args, out, errb) }

func TestAnalyzeText(t *testing.T) {
	dir := writeAnalyzeTraces(t)
	fast, slow := filepath.Join(dir, "fast.jsonl"), filepath.Join(dir, "slow.jsonl")
	code, out, errs := analyzeCapture(analyzeCmd, fast, slow)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// The stage marked is the one the analysis names the bottleneck: S2 most
	// often, but these are real runs with 1 and 2 ms stages, and a loaded
	// machine can stretch any of them.
	tr, err := trace.ReadFile(fast)
	if err != nil {
		t.Fatal(err)
	}
	a, err := analysis.AnalyzeTrace(tr, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Bottleneck == "" {
		t.Fatal("the analysis names no bottleneck")
	}
	for _, want := range []string{"configurations\n", "runs\n", "stages\n", "fast ", "slow ", a.Bottleneck + "*", "5.00ms", "fast.jsonl"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nopen loop\n") {
		t.Error("closed-loop runs printed an open-loop table")
	}
	// A directory reads its .jsonl traces only; flags may follow the traces.
	code, out, errs = analyzeCapture(analyzeCmd, dir, "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		Runs []struct {
			Label      string
			Bottleneck string
			Completed  int
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-json output: %v\n%s", err, out)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Label != "fast" || rep.Runs[1].Completed != 25 || rep.Runs[1].Bottleneck == "" {
		t.Errorf("-json: %+v", rep)
	}
	// CSV traces analyse too, with labels and workers given.
	code, out, errs = analyzeCapture(analyzeCmd, "-labels", "a", "-workers", "1,2,1,1", filepath.Join(dir, "slow.csv"))
	if code != 0 {
		t.Fatalf("csv: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "2 (seen 1)") || !strings.Contains(out, "\na ") {
		t.Errorf("csv with -labels and -workers:\n%s", out)
	}
}

func TestAnalyzeWritesReport(t *testing.T) {
	dir := writeAnalyzeTraces(t)
	out := filepath.Join(t.TempDir(), "report")
	code, stdout, errs := analyzeCapture(analyzeCmd, "-o", out, "-timeline", "5", filepath.Join(dir, "fast.jsonl"), filepath.Join(dir, "slow.jsonl"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "report: "+filepath.Join(out, "report.html")) {
		t.Errorf("stdout does not name the report:\n%s", stdout)
	}
	for _, f := range []string{"report.html", "analysis.json", "latency.png", "latency.svg", "stages.png", "throughput.svg", "timeline-fast.png", "timeline-slow.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	out2 := filepath.Join(t.TempDir(), "r2")
	code, stdout, errs = analyzeCapture(reportCmd, "-o", out2, "-timeline", "3", filepath.Join(dir, "slow.csv"))
	if code != 0 || strings.TrimSpace(stdout) != filepath.Join(out2, "report.html") {
		t.Fatalf("report: exit %d, stdout %q, stderr %s", code, stdout, errs)
	}
	if _, err := os.Stat(strings.TrimSpace(stdout)); err != nil {
		t.Error(err)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	dir := writeAnalyzeTraces(t)
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	data, err := os.ReadFile(filepath.Join(dir, "fast.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, data[:len(data)-40], 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, c := range []struct {
		name string
		run  func([]string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		code int
		want string
	}{
		{"no traces", analyzeCmd, nil, 2, "no trace files"},
		{"bad flag", analyzeCmd, []string{"-nope", bad}, 2, "-nope"},
		{"bad workers", analyzeCmd, []string{"-workers", "1,x", bad}, 2, "-workers"},
		{"labels count", analyzeCmd, []string{"-labels", "a,b,c", dir}, 2, "3 names for 2 traces"},
		{"truncated", analyzeCmd, []string{bad}, 1, "bad.jsonl:26: truncated trace"},
		{"missing", analyzeCmd, []string{filepath.Join(dir, "nope.jsonl")}, 1, "nope.jsonl"},
		{"empty dir", analyzeCmd, []string{empty}, 1, "no .jsonl or .csv traces"},
		{"report without -o", reportCmd, []string{dir}, 2, "-o DIR is required"},
		{"report has no -json", reportCmd, []string{"-json", "-o", empty, dir}, 2, "-json"},
		{"report has no -wide", reportCmd, []string{"-wide", "-o", empty, dir}, 2, "-wide"},
		{"size without height", reportCmd, []string{"-size", "8x", "-o", empty, dir}, 2, `-size: size "8x": want WIDTHxHEIGHT`},
		{"size unit", reportCmd, []string{"-size", "8x5ft", "-o", empty, dir}, 2, "unit in, cm, mm, pt or px"},
		{"size too small", analyzeCmd, []string{"-size", "100x80", "-o", empty, dir}, 2, "between 2in and 40in"},
		{"size too large", reportCmd, []string{"-size", "50x5in", "-o", empty, dir}, 2, "between 2in and 40in"},
	} {
		code, _, errs := analyzeCapture(c.run, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, code, errs, c.code, c.want)
		}
	}
	if code, _, _ := analyzeCapture(analyzeCmd, "-h"); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
}

// TestAnalyzeWidth checks that analyze fits its text to 100 columns by
// default, even for benchmark traces' long file names, and that -wide
// prints the full tables.
func TestAnalyzeWidth(t *testing.T) {
	dir := writeAnalyzeTraces(t)
	long := t.TempDir()
	for _, name := range []string{"fast", "slow"} {
		data, err := os.ReadFile(filepath.Join(dir, name+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		file := "BenchmarkSuite_work=sleep_impl=p0_transport=core_durations=" + name + "_with_a_long_name.jsonl"
		if err := os.WriteFile(filepath.Join(long, file), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	widest := func(out string) int {
		w := 0
		for _, l := range strings.Split(out, "\n") {
			w = max(w, utf8.RuneCountInString(l))
		}
		return w
	}
	code, out, errs := analyzeCapture(analyzeCmd, long)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if w := widest(out); w > analysis.TextWidth {
		t.Errorf("analyze prints lines %d wide, want at most %d:\n%s", w, analysis.TextWidth, out)
	}
	for _, want := range []string{"runs (continued)\n", "transit-p50", "wait-p99", "_with_a_long_name.jsonl"} {
		if !strings.Contains(out, want) {
			t.Errorf("fitted output lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = analyzeCapture(analyzeCmd, "-wide", long)
	if code != 0 {
		t.Fatalf("-wide: exit %d: %s", code, errs)
	}
	if w := widest(out); w <= analysis.TextWidth || strings.Contains(out, "(continued)") {
		t.Errorf("-wide prints lines %d wide, split: %v; want the full tables", w, strings.Contains(out, "(continued)"))
	}
}

// TestReportSize checks that -size sets the charts' size: 384x288 pixels,
// or 4x3in, which is the same.
func TestReportSize(t *testing.T) {
	dir := writeAnalyzeTraces(t)
	for _, size := range []string{"384x288", "4x3in"} {
		out := filepath.Join(t.TempDir(), "r")
		if code, _, errs := analyzeCapture(reportCmd, "-size", size, "-o", out, dir); code != 0 {
			t.Fatalf("-size %s: exit %d: %s", size, code, errs)
		}
		f, err := os.Open(filepath.Join(out, "efficiency.png"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 384 || cfg.Height != 288 {
			t.Errorf("-size %s: efficiency.png %dx%d (%v), want 384x288", size, cfg.Width, cfg.Height, err)
		}
	}
}

// TestAnalyzeSkipsUnusableTraces: in a directory with a good trace, one
// with no completed message and one with stamps out of order, analyze and
// report show the good one and name the others on stderr with the reason;
// with no usable trace they fail.
func TestAnalyzeSkipsUnusableTraces(t *testing.T) {
	src := writeAnalyzeTraces(t)
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(src, "fast.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lost := `{"type":"header","format":"natspipe-trace","version":1,"variant":"p3","stages":1,"durations_ns":[1000000],"n":1,"messages":1,"lost":[0]}` + "\n" +
		`{"type":"msg","seq":0,"intended":5,"sent":0,"received":0}` + "\n"
	disordered := `{"type":"header","format":"natspipe-trace","version":1,"variant":"p3","stages":1,"durations_ns":[0],"n":1,"messages":1}` + "\n" +
		`{"type":"msg","seq":0,"id":"a","intended":1,"sent":1,"received":5,"stages":[{"stage":1,"worker":"w","arrived":1,"started":1,"finished":9223372036854775807}]}` + "\n"
	for name, data := range map[string]string{"a-good.jsonl": string(good), "b-lost.jsonl": lost, "c-disordered.jsonl": disordered} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantErr := []string{
		"natspipe %s: skipped " + filepath.Join(dir, "b-lost.jsonl") + ": no completed messages (1 in the trace, 1 lost)\n",
		"natspipe %s: skipped " + filepath.Join(dir, "c-disordered.jsonl") + ":2: malformed trace: seq 0: received 5, before stage S1 finished 9223372036854775807 (stamps out of order)\n",
	}
	out := t.TempDir()
	for _, c := range []struct {
		name string
		run  func([]string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		want string
	}{
		{"analyze", analyzeCmd, []string{dir}, "p0"},
		{"report", reportCmd, []string{"-o", out, dir}, filepath.Join(out, "report.html")},
	} {
		code, stdout, errs := analyzeCapture(c.run, c.args...)
		if code != 0 || !strings.Contains(stdout, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q", c.name, code, stdout, errs, c.want)
		}
		for _, w := range wantErr {
			if w = fmt.Sprintf(w, c.name); !strings.Contains(errs, w) {
				t.Errorf("%s: stderr %q\nwant %q", c.name, errs, w)
			}
		}
		if strings.Contains(stdout, "p3") {
			t.Errorf("%s: a skipped trace is in the output:\n%s", c.name, stdout)
		}
	}
	// -labels name the traces given, skipped ones included.
	code, stdout, errs := analyzeCapture(analyzeCmd, "-labels", "first,second", filepath.Join(dir, "b-lost.jsonl"), filepath.Join(dir, "a-good.jsonl"))
	if code != 0 || !strings.Contains(stdout, "second") || strings.Contains(stdout, "first") {
		t.Errorf("labels: exit %d, stderr %q, stdout:\n%s", code, errs, stdout)
	}
	for _, run := range []func([]string, *bytes.Buffer, *bytes.Buffer) int{analyzeCmd, reportCmd} {
		code, _, errs := analyzeCapture(run, "-o", t.TempDir(), filepath.Join(dir, "b-lost.jsonl"), filepath.Join(dir, "c-disordered.jsonl"))
		if code != 1 || !strings.Contains(errs, "no usable traces (2 skipped)") {
			t.Errorf("none usable: exit %d, stderr %q; want 1 and \"no usable traces (2 skipped)\"", code, errs)
		}
	}
}

// accountResult is a P4 run of 8 messages through 2 stages, built by hand
// with every kind of account: seq 2 and 5 lost, seq 3 late, two duplicate
// completions, two strays, a rejection and a worker that died, on this
// process's clocks as a real run's are.
func accountResult() *pipelines.Result {
	start := time.Now()
	t0 := pipelines.Stamp(start)
	ms := int64(time.Millisecond)
	res := &pipelines.Result{
		Variant: "p4",
		Spec:    pipelines.Spec{Durations: []time.Duration{time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep},
		Bound:   500,
		Window:  4,
		Elapsed: 100 * time.Millisecond,
		Account: pipelines.Account{
			N: 8, Stages: 2, Start: start, Completed: 6,
			Lost: []uint64{2, 5}, Late: 1, LateSeqs: []uint64{3},
			Duplicates: 2, DuplicateSeqs: []uint64{4, 1},
			Strays: 2, StrayList: []pipelines.Stray{{ID: "otherrun", Seq: 3}, {ID: "old", Seq: 12}},
			Rejected: 1, RejectErrs: []string{"S2: decode envelope: truncated"},
			Incidents: []pipelines.Incident{{At: start.Add(1500 * time.Millisecond), Worker: "p4-S2-w2", Kind: pipelines.WorkerDied,
				Held: 2, Detail: "process p4-S2-w2: killed by signal killed"}},
			LossTimeout: 5 * time.Second,
		},
		Latency: pipelines.NewLatencyHistogram(),
	}
	for seq := range 8 {
		at := t0 + int64(seq)*5*ms
		r := pipelines.Record{Intended: at}
		r.Seq = uint64(seq)
		if seq != 2 && seq != 5 {
			r.ID, r.Sent, r.Received = fmt.Sprintf("id%d", seq), at, at+5*ms
			r.Stages = []pipelines.StageRecord{
				{Stage: 1, Worker: "p4-S1-w1", Arrived: at + ms/10, Started: at + ms/5, Finished: at + ms + ms/5},
				{Stage: 2, Worker: "p4-S2-w1", Arrived: at + ms + ms/2, Started: at + 2*ms, Finished: at + 4*ms},
			}
		}
		res.Records = append(res.Records, r)
	}
	return res
}

// TestAnalyzeAccount: natspipe analyze prints each run's account in the
// very lines of the run's Report (what natspipe run printed), under a
// heading naming the run (with -wide; the default wraps lines past 100
// columns); its runs table counts lost as the run did (not
// late, not unaccounted); -json carries the account.
func TestAnalyzeAccount(t *testing.T) {
	res := accountResult()
	dir := t.TempDir()
	if err := trace.WriteDir(dir, "acct", res); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "acct.jsonl")
	// -wide: lines as long as natspipe run printed them; the default wraps
	// them at 100 columns.
	code, out, errs := analyzeCapture(analyzeCmd, "-wide", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(res.Report(), "\n")[1:]
	want := "account of p4 (acct.jsonl): 6/8 completed, " + res.Account.Counts() + "\n" + strings.Join(lines, "\n") + "\n"
	if !strings.Contains(out, "\naccounts\n"+want) {
		t.Errorf("analyze output lacks the account:\n%s\nwant:\n%s", out, want)
	}
	for _, l := range []string{"lost (2, never reached S2): seq 2, 5", "late (1, back after the 5s loss timeout): seq 3",
		"duplicates (2): seq 1, 4", "strays (2, envelopes of no message of this run, id/seq): otherrun/3, old/12",
		"incident at +1.5s: worker p4-S2-w2 died: process p4-S2-w2: killed by signal killed"} {
		if !strings.Contains(want, l) {
			t.Errorf("Report lacks %q:\n%s", l, want)
		}
	}
	// The runs table: msgs 6, lost 2, late 1, unacct 0.
	if !regexpMatch(`(?m)^p4\s+6\s+2\s+1\s+0\s`, out) {
		t.Errorf("runs table does not say 6 completed, 2 lost, 1 late, 0 unaccounted:\n%s", out)
	}

	code, js, errs := analyzeCapture(analyzeCmd, "-json", path)
	if code != 0 {
		t.Fatalf("-json: exit %d: %s", code, errs)
	}
	var rep struct {
		Runs []struct {
			Lost, Late, Unaccounted int
			Account                 struct {
				Lost       []uint64 `json:"lost"`
				LateSeqs   []uint64 `json:"late_seqs"`
				Duplicates []uint64 `json:"duplicate_seqs"`
				Strays     []struct {
					ID string `json:"id"`
				} `json:"stray_list"`
				Incidents []struct {
					Worker, Kind, Text string
				} `json:"incidents"`
			} `json:"account"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	r := rep.Runs[0]
	a := r.Account
	if r.Lost != 2 || r.Late != 1 || r.Unaccounted != 0 || fmt.Sprint(a.Lost) != "[2 5]" || fmt.Sprint(a.LateSeqs) != "[3]" ||
		fmt.Sprint(a.Duplicates) != "[4 1]" || len(a.Strays) != 2 || len(a.Incidents) != 1 || a.Incidents[0].Kind != "died" ||
		!strings.Contains(a.Incidents[0].Text, "killed by signal") {
		t.Errorf("json account: %+v", r)
	}
}

// TestAnalyzeOldTrace: a trace written before the account's lists existed
// (a lost list that holds every message not back, late, duplicate and
// stray counts only) is analysed with what it has.
func TestAnalyzeOldTrace(t *testing.T) {
	const old = `{"type":"header","format":"natspipe-trace","version":1,"variant":"p3","stages":1,"durations_ns":[1000000],` +
		`"n":3,"messages":3,"window":2,"bound":1000,"completed":2,"lost":[1],"late":1,"duplicates":2,"strays":0,"rejected":0,"throughput":0}` + "\n" +
		`{"type":"msg","seq":0,"id":"a","intended":100,"sent":100,"received":2000000,"stages":[{"stage":1,"worker":"w","arrived":200,"started":300,"finished":1000300}]}` + "\n" +
		`{"type":"msg","seq":1,"intended":200,"sent":0,"received":0}` + "\n" +
		`{"type":"msg","seq":2,"id":"c","intended":300,"sent":300,"received":3000000,"stages":[{"stage":1,"worker":"w","arrived":1000400,"started":1000500,"finished":2000500}]}` + "\n"
	path := filepath.Join(t.TempDir(), "old.jsonl")
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := analyzeCapture(analyzeCmd, path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "accounts\naccount of p3 (old.jsonl): 2/3 completed, lost 1, late 1, duplicates 2, strays 0, rejected 0\n" +
		"lost (1, never reached S1): seq 1\nlate (1, back after the loss timeout)\nduplicates (2)\n"
	if !strings.Contains(out, want) {
		t.Errorf("old trace's account:\n%s\nwant:\n%s", out, want)
	}
	if !regexpMatch(`(?m)^p3\s+2\s+1\s+1\s+0\s`, out) {
		t.Errorf("runs table does not say 2 completed, 1 lost, 1 late, 0 unaccounted:\n%s", out)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
