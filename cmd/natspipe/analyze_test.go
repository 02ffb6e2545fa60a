package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
