package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/natspipe/natspipe/pipelines"
)

// TestBadPipelineFiles runs natspipe run -f on each bad file of
// testdata/pipelines/bad: each must exit 2 (bad input) before anything
// starts, with exactly this error, naming the file, line, column and field.
func TestBadPipelineFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "pipelines", "bad")
	cases := []struct{ file, want string }{
		{"alloc-mismatch.yaml", "8:10: deployment.alloc: 3 counts for 4 stages: want one per stage"},
		{"bad-cv.yaml", "3:11: stages[1].time: lognormal(5ms,cv=-1): lognormal cv -1: must be > 0 and at most 100"},
		{"duplicate-key.yaml", `4:5: stages[0].name: mapping key "name" already defined at [2:5]`},
		{"empty.yaml", "1:1: empty file: want a pipeline with at least stages"},
		{"messages-not-int.yaml", "3:11: messages: many: want an integer"},
		{"missing-time.yaml", "3:9: stages[1].time: missing: want a duration (10ms) or a distribution such as exp(5ms)"},
		{"negative-time.yaml", `4:11: stages[2].time: negative duration "-5ms"`},
		{"no-stages.yaml", "2:9: stages: none: want at least one stage, each with a time"},
		{"not-yaml.yaml", "1:9: not YAML: sequence end token ']' not found"},
		{"rate-and-load.yaml", "5:9: load.load: given with load.rate: give one"},
		{"uniform-reversed.yaml", "3:11: stages[1].time: uniform(8ms,2ms): high 2ms must be >= low 8ms"},
		{"unknown-distribution.yaml", `2:11: stages[0].time: gamma(5ms): unknown distribution "gamma" (want exp, lognormal, uniform, empirical or a duration)`},
		{"unknown-field.yaml", `4:1: stagez: unknown field "stagez"`},
		{"unknown-stage-field.yaml", `5:5: stages[1].tme: unknown field "tme"`},
		{"unknown-variant.yaml", `4:12: deployment.variant: "p9": want p0, p1, p2, p3, p4`},
		{"zero-workers.yaml", "5:14: stages[1].workers: 0: want 1 to 64"},
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) != len(cases) {
		t.Fatalf("%d bad files in %s, %d cases (%v): every file needs its case", len(files), dir, len(cases), err)
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			for _, cmd := range [][]string{{"run", "-f", path}, {"plan", "-workers", "7", path}} {
				var stdout, stderr bytes.Buffer
				code := dispatch(cmd, &stdout, &stderr)
				want := "natspipe " + cmd[0] + ": " + path + ":" + c.want + "\n" + usageHint(cmd[0]) + "\n"
				if code != 2 || stderr.String() != want || stdout.Len() != 0 {
					t.Errorf("natspipe %s: exit %d, stderr %q, stdout %q; want exit 2, stderr %q", strings.Join(cmd, " "), code, stderr.String(), stdout.String(), want)
				}
			}
		})
	}
}

// TestPipelineFileOverrides: flags and environment variables override the
// file; what neither gives comes from the file.
func TestPipelineFileOverrides(t *testing.T) {
	t.Setenv(pipelines.EnvWork, "cpu") // work from the environment
	t.Setenv(pipelines.EnvDurations, "")
	o, err := layeredRun(t, "-f", filepath.Join("..", "..", "testdata", "pipelines", "skewed.yaml"), "-variant", "p3")
	if err != nil {
		t.Fatal(err)
	}
	if o.variant != "p3" || o.work != "cpu" {
		t.Errorf("overridden by the file: variant %q work %q", o.variant, o.work)
	}
	if o.from["work"] != pipelines.EnvWork || o.from["variant"] != "" || !o.set["work"] || !o.set["variant"] {
		t.Errorf("origins: from %v, set %v", o.from, o.set)
	}
	if o.n != 600 || o.alloc != "1-1-1-5-1-1" || o.load != 0.7 || o.arrivals != "poisson" || o.seed != 7 ||
		o.durations != "5ms,exp(5ms),5ms,uniform(10ms,40ms),5ms,2ms" {
		t.Errorf("from the file: %+v", o)
	}
}

// TestRunPipelineFile runs a pipeline file end to end (P0, short stages
// given by -durations over the file's).
func TestRunPipelineFile(t *testing.T) {
	var stdout, stderr bytes.Buffer
	path := filepath.Join("..", "..", "testdata", "pipelines", "seed.yaml")
	code := dispatch([]string{"run", "-f", path, "-variant", "p0", "-n", "20", "-durations", "1ms,exp(2ms),1ms,1ms"}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "p0: 20/20 msgs") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
}

// TestPlanSeed: natspipe plan -workers 7 on the study's pipeline prints
// 1-4-1-1 first.
func TestPlanSeed(t *testing.T) {
	var stdout, stderr bytes.Buffer
	path := filepath.Join("..", "..", "testdata", "pipelines", "seed.yaml")
	if code := dispatch([]string{"plan", "-workers", "7", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rows []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[0] == "1" {
			rows = append(rows, l)
		}
	}
	if len(rows) != 1 || !strings.HasPrefix(strings.Join(strings.Fields(rows[0]), " "), "1 1-4-1-1 7 100.0 ") {
		t.Errorf("first row %q, want 1-4-1-1 at 100 msgs/s\n%s", rows, stdout.String())
	}
	stdout.Reset()
	if code := dispatch([]string{"plan", "-target", "150", path}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "fewest workers reaching 150 msgs/s: 12") {
		t.Errorf("-target 150: exit %d\n%s", code, stdout.String())
	}
	for _, bad := range [][]string{{"plan", path}, {"plan", "-workers", "3", path}, {"plan", "-workers", "7"}, {"plan", "-workers", "7", "-load", "2", path}} {
		if code := dispatch(bad, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", bad, code)
		}
	}
}

// TestPlanVerify runs natspipe plan -verify on a small pipeline: the top
// allocations run for real (worker processes, open and closed loop) and
// their measured throughput and latency print beside the predictions.
// How close they come is the machine's business; the test holds the runs
// to their bounds and the table to its shape.
func TestPlanVerify(t *testing.T) {
	allocRow := regexp.MustCompile(`^[0-9]+(-[0-9]+)+$`)
	t.Setenv(envCLIChild, "1") // the workers the runs start are this binary
	path := filepath.Join(t.TempDir(), "small.yaml")
	src := "name: small\nstages:\n  - time: 1ms\n  - time: exp(4ms)\n  - time: 1ms\nmessages: 60\nseed: 5\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"plan", "-workers", "4", "-verify", "2", "-load", "0.5", "-n", "60", path}, &stdout, &stderr)
	out := stdout.String()
	t.Log(out)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	// Two tables: open loop (10 columns) and capacity (6 columns), each
	// headed by a line starting "alloc".
	var open, capacity [][]string
	table := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "alloc":
			table++
		case len(f) == 0 || !allocRow.MatchString(f[0]):
		case table == 1 && len(f) == 10:
			open = append(open, f)
		case table == 2 && len(f) == 6:
			capacity = append(capacity, f)
		}
	}
	if len(open) != 2 || open[0][0] != "1-2-1" || len(capacity) != 2 || capacity[0][0] != "1-2-1" {
		t.Fatalf("verified rows %q and %q, want 1-2-1 first and one more in each", open, capacity)
	}
	for _, r := range capacity {
		bound, err1 := strconv.ParseFloat(r[1], 64)
		thr, err2 := strconv.ParseFloat(r[2], 64)
		if err1 != nil || err2 != nil || thr <= 0 || thr > bound*1.02 {
			t.Errorf("%s: capacity %s msgs/s against bound %s", r[0], r[2], r[1])
		}
	}
	for _, r := range open {
		if r[5] == "inf" {
			if r[6] != "-" {
				t.Errorf("%s: over capacity at the rate, yet an open-loop latency %s", r[0], r[6])
			}
			continue
		}
		offered, err1 := strconv.ParseFloat(r[1], 64)
		sent, err2 := strconv.ParseFloat(r[2], 64)
		thr, err3 := strconv.ParseFloat(r[3], 64)
		// Under capacity the pipeline passes what the source sent; the
		// source's Poisson draws stay within a few 1/sqrt(60) of the rate.
		if err1 != nil || err2 != nil || err3 != nil || sent < offered/2 || sent > offered*2 || thr <= 0 || thr > sent*1.5 {
			t.Errorf("%s: offered %s, sent %s, measured %s msgs/s", r[0], r[1], r[2], r[3])
		}
		if lat, err := strconv.ParseFloat(r[6], 64); err != nil || lat < 6 {
			t.Errorf("%s: measured mean latency %s ms, below the 6 ms of mean service", r[0], r[6])
		}
	}
}
