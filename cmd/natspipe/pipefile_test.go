package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/pipefile"
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
				want := "natspipe " + cmd[0] + ": " + path + ":" + c.want + "\n"
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
	p, err := pipefile.Load(filepath.Join("..", "..", "testdata", "pipelines", "skewed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(pipelines.EnvWork, "cpu") // work from the environment
	o := runOptions{variant: "p3", n: 300, work: "cpu", alloc: "1-4-1-1", durations: "1ms"}
	applyPipelineFile(&o, p, map[string]bool{"variant": true}) // -variant p3 given
	if o.variant != "p3" || o.work != "cpu" {
		t.Errorf("overridden by the file: variant %q work %q", o.variant, o.work)
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
