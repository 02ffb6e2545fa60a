package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natspipe/natspipe/internal/benchkit"
)

// TestRunBadInput runs natspipe run with each bad flag, argument and
// variable, and checks that it exits 2 with a message naming the input, its
// value and what is wanted, before starting anything: no server (its
// address would be printed), no result, no trace directory.
func TestRunBadInput(t *testing.T) {
	benchkit.CheckLeaks(t)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	noExec := filepath.Join(tmp, "worker.txt")
	if err := os.WriteFile(noExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"huge n", []string{"-n", "9000000000000"}, nil, "-n 9000000000000: want 1 to 5000000 messages"},
		{"n out of memory", []string{"-n", "100000000"}, nil, "-n 100000000: want 1 to 5000000 messages"},
		{"n zero", []string{"-n", "0"}, nil, "-n 0: want 1 to 5000000 messages"},
		{"n times stages", []string{"-n", "1000000", "-durations", strings.Repeat("0,", 63) + "0"}, nil,
			"-n 1000000 with 64 stages: want at most 312500 messages (messages x stages at most 20000000)"},
		{"n overflows int", []string{"-n", "1e30"}, nil, `invalid value "1e30" for flag -n`},
		{"negative timeout", []string{"-timeout", "-1s"}, nil, "-timeout -1s: want 0 (derived from the bound) or a positive duration up to 168h0m0s"},
		{"absurd timeout", []string{"-timeout", "169h"}, nil, "-timeout 169h0m0s: want 0 (derived from the bound) or a positive duration up to 168h0m0s"},
		{"alloc stages", []string{"-alloc", "1-4-1"}, nil, "-alloc: allocation 1-4-1: 3 stages, the pipeline has 4"},
		{"alloc per stage", []string{"-alloc", "1-65-1-1"}, nil, "-alloc: allocation 1-65-1-1: stage S2 has 65 workers, want 1 to 64"},
		{"alloc total", []string{"-alloc", "64-64-64-64-64"}, nil, "-alloc: allocation 64-64-64-64-64: 320 workers, at most 256"},
		{"alloc zero", []string{"-alloc", "1-0-1-1"}, nil, `-alloc: allocation "1-0-1-1": stage S2: "0" is not a worker count >= 1`},
		{"variant", []string{"-variant", "p5"}, nil, `-variant "p5": want p0, p1, p2, p3 or p4`},
		{"transport", []string{"-transport", "mqtt"}, nil, `-transport "mqtt": want core`},
		{"negative payload", []string{"-payload", "-1"}, nil, "-payload -1: want 0 to 921600 bytes"},
		{"huge payload", []string{"-payload", "921601"}, nil, "-payload 921601: want 0 to 921600 bytes"},
		{"negative window", []string{"-window", "-1"}, nil, "-window -1: want 0 (sized by Little's law) to 1000000"},
		{"huge window", []string{"-window", "1000001"}, nil, "-window 1000001: want 0 (sized by Little's law) to 1000000"},
		{"inflight zero", []string{"-inflight", "0"}, nil, "-inflight 0: want 1 to 10000"},
		{"inflight huge", []string{"-inflight", "10001"}, nil, "-inflight 10001: want 1 to 10000"},
		{"negative concurrency", []string{"-concurrency", "-1"}, nil, "-concurrency -1: want 0 (default 4) to 1024"},
		{"huge concurrency", []string{"-mode", "async", "-concurrency", "1025"}, nil, "-concurrency 1025: want 0 (default 4) to 1024"},
		{"sync concurrency", []string{"-variant", "p3", "-concurrency", "4"}, nil, "-concurrency 4: a sync worker works on one message at a time; add -mode async"},
		{"mode", []string{"-mode", "bogus"}, nil, `-mode: mode "bogus": want "sync" or "async"`},
		{"work", []string{"-work", "bogus"}, nil, `-work: work model "bogus": want "sleep" or "cpu"`},
		{"arrivals", []string{"-arrivals", "bogus"}, nil, `-arrivals "bogus": want "fixed" or "poisson"`},
		{"durations empty", []string{"-durations", ""}, nil, `-durations "": durations: empty list`},
		{"durations negative", []string{"-durations", "0ms,-5ms"}, nil, `-durations "0ms,-5ms": durations: stage S2: negative duration "-5ms"`},
		{"durations too long", []string{"-durations", "1h1ms"}, nil, `-durations "1h1ms": durations: stage S1: "1h1ms" is longer than 1h0m0s`},
		{"durations NaN", []string{"-durations", "NaN"}, nil, `-durations "NaN": durations: stage S1: bad duration "NaN"`},
		{"durations too many", []string{"-durations", strings.Repeat("1,", 64) + "1"}, nil, `durations: 65 stages, at most 64`},
		{"rate NaN", []string{"-rate", "NaN"}, nil, "-rate NaN: want a finite rate in msgs/s, above 0 and at most 1e+09 (0: closed loop)"},
		{"rate Inf", []string{"-rate", "Inf"}, nil, "-rate +Inf: want a finite rate"},
		{"rate negative", []string{"-rate", "-5"}, nil, "-rate -5: want a finite rate"},
		{"load negative", []string{"-load", "-0.5"}, nil, "-load -0.5: want a finite fraction of the bound, above 0 and at most 10 (above 1 overloads; 0: closed loop)"},
		{"load huge", []string{"-load", "11"}, nil, "-load 11: want a finite fraction of the bound"},
		{"load NaN", []string{"-load", "NaN"}, nil, "-load NaN: want a finite fraction"},
		{"rate and load", []string{"-rate", "10", "-load", "0.5"}, nil, "-rate 10 and -load 0.5: give one"},
		{"load unbounded", []string{"-variant", "p0", "-durations", "0", "-load", "0.5"}, nil, `-load 0.5: the bound of -variant p0 with -durations "0" is unlimited; give -rate instead`},
		{"run too long", []string{"-variant", "p0", "-durations", "1h", "-n", "1000"}, nil, "-n 1000 at the bound of 0.000278 msgs/s takes 1000.0h: want at most 168h0m0s"},
		{"rate too slow", []string{"-variant", "p0", "-rate", "0.0001", "-n", "1000"}, nil, "-n 1000 at 0.0001 msgs/s takes 2777.8h: want at most 168h0m0s"},
		{"loss timeout negative", []string{"-loss-timeout", "-1s"}, nil, "-loss-timeout -1s: want 0 (derived) or a positive duration up to 168h0m0s"},
		{"positional", []string{"extra"}, nil, `unexpected arguments ["extra"]`},
		{"bad flag", []string{"-bogus"}, nil, "flag provided but not defined: -bogus"},
		{"url scheme", []string{"-url", "http://localhost:4222"}, nil, `-url (NATS_URL): url "http://localhost:4222": scheme "http": want nats, tls, ws or wss`},
		{"worker missing", []string{"-worker", filepath.Join(tmp, "none")}, nil, "-worker: stat " + filepath.Join(tmp, "none") + ": no such file or directory"},
		{"worker not executable", []string{"-worker", noExec}, nil, "-worker: " + noExec + ": not an executable file"},
		{"trace-name alone", []string{"-trace", "", "-trace-name", "x"}, nil, `-trace-name "x": needs -trace DIR (or NATSPIPE_TRACE)`},
		{"trace unwritable", []string{"-trace", filepath.Join(file, "traces")}, nil,
			"-trace: trace directory " + filepath.Join(file, "traces") + ": mkdir " + file + ": not a directory"},
		{"clock", nil, map[string]string{"NATSPIPE_CLOCK": "bogus"}, `NATSPIPE_CLOCK="bogus": stamp clock "bogus": want "monotonic" or "wall"`},
		{"env durations", nil, map[string]string{"NATSPIPE_DURATIONS": "1h1ms"}, `NATSPIPE_DURATIONS="1h1ms": durations: stage S1: "1h1ms" is longer than 1h0m0s`},
		{"env work", nil, map[string]string{"NATSPIPE_WORK": "gpu"}, `NATSPIPE_WORK="gpu": work model "gpu": want "sleep" or "cpu"`},
		{"env payload", nil, map[string]string{"NATSPIPE_PAYLOAD": "-1"}, `NATSPIPE_PAYLOAD="-1": want an integer in [0, 921600]`},
		{"env slowdown", nil, map[string]string{"NATSPIPE_SLOWDOWN": "S9=1ms"}, `NATSPIPE_SLOWDOWN="S9=1ms": slowdown: stage "S9": want S1..S4`},
		{"env slowdown long", nil, map[string]string{"NATSPIPE_SLOWDOWN": "S2=2h"}, `NATSPIPE_SLOWDOWN="S2=2h": slowdown "S2=2h": want a duration in [0, 1h0m0s]`},
		{"env url", nil, map[string]string{"NATS_URL": "http://localhost:4222"}, `(NATS_URL): url "http://localhost:4222": scheme "http"`},
		{"env trace", nil, map[string]string{"NATSPIPE_TRACE": filepath.Join(file, "t")}, "NATSPIPE_TRACE: trace directory " + filepath.Join(file, "t") + ": mkdir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			// Every case but the trace ones would write its trace here if
			// it got as far as the run; a case that wrongly passed would
			// fail fast, its workers exiting at once.
			out := filepath.Join(t.TempDir(), "traces")
			args := append([]string{"run", "-worker", "/bin/false"}, tc.args...)
			if !strings.HasPrefix(tc.name, "trace") && tc.name != "env trace" {
				args = append([]string{"run", "-worker", "/bin/false", "-trace", out}, tc.args...)
			}
			var stdout, stderr bytes.Buffer
			code := dispatch(args, &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("something started; stdout:\n%s", stdout.String())
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("trace directory %s created (stat: %v)", out, err)
			}
		})
	}
}

// TestRunExitCodes holds the line between bad input (2) and a failed run
// (1), and checks a good run still passes with its trace written.
func TestRunExitCodes(t *testing.T) {
	benchkit.CheckLeaks(t)
	dir := filepath.Join(t.TempDir(), "new", "traces")
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "-variant", "p0", "-durations", "0,1ms", "-n", "5", "-trace", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("good run: exit %d; stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "p0.jsonl")); err != nil {
		t.Errorf("good run: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".natspipe-probe-*")); len(left) > 0 {
		t.Errorf("probe files left: %v", left)
	}

	// A server that refuses connections is the run's failure, not the input's.
	stdout.Reset()
	stderr.Reset()
	if code := dispatch([]string{"run", "-variant", "p1", "-n", "5", "-url", "nats://127.0.0.1:1"}, &stdout, &stderr); code != 1 {
		t.Errorf("unreachable server: exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "nats server: connect natspipe-probe to nats://127.0.0.1:1") {
		t.Errorf("unreachable server: stderr:\n%s", stderr.String())
	}

	for _, args := range [][]string{nil, {"bogus"}} {
		stderr.Reset()
		if code := dispatch(args, &stdout, &stderr); code != 2 {
			t.Errorf("natspipe %q: exit %d, want 2", args, code)
		}
	}
	stderr.Reset()
	if code := dispatch([]string{"run", "-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("run -h: exit %d, want 0", code)
	}
}

// TestRunEdgeValuesAccepted checks that values at the documented limits,
// and the ones a reader might expect to be refused, pass validation: with
// an unwritable trace directory, the last check before anything starts,
// each must get as far as that check.
func TestRunEdgeValuesAccepted(t *testing.T) {
	benchkit.CheckLeaks(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-load", "1.5"},                        // overload is allowed in open loop
		{"-load", "10", "-arrivals", "poisson"}, // MaxLoad
		{"-seed", "7"},                          // ignored in closed loop, allowed
		{"-arrivals", "poisson"},                // likewise
		{"-durations", "1h,0,0,0", "-n", "100"}, // a stage at MaxStageDuration, 100 h at the bound
		{"-n", "5000000"},                       // MaxMessages at four stages
		{"-n", "312500", "-variant", "p2", "-durations", strings.Repeat("0,", 63) + "0"},
		{"-timeout", "168h"},        // MaxRun
		{"-window", "1000000"},      // MaxWindow
		{"-rate", "1e9", "-n", "1"}, // MaxRate
		{"-inflight", "10000", "-variant", "p2"},
		{"-mode", "async", "-concurrency", "1024"},
		{"-alloc", "64-64-64-64"},
		{"-payload", "921600"},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch(append([]string{"run", "-trace", filepath.Join(file, "t")}, args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-trace: trace directory") || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want it refused only for its trace directory", args, code, stdout.String(), stderr.String())
		}
	}
}
