package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	for _, want := range []string{"configurations\n", "runs\n", "stages\n", "fast ", "slow ", "S2*", "5.00ms", "fast.jsonl"} {
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
