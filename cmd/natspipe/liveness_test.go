package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/syncbuf"
)

// TestRunLivenessBounds: -liveness out of 100ms..1h, or not a duration, is
// a usage error (exit 2) naming the flag, before anything starts.
func TestRunLivenessBounds(t *testing.T) {
	for _, c := range []struct{ val, want string }{
		{"50ms", "natspipe run: -liveness 50ms: want 100ms to 1h0m0s"},
		{"0s", "natspipe run: -liveness 0s: want 100ms to 1h0m0s"},
		{"-1s", "natspipe run: -liveness -1s: want 100ms to 1h0m0s"},
		{"2h", "natspipe run: -liveness 2h0m0s: want 100ms to 1h0m0s"},
		{"soon", `invalid value "soon" for flag -liveness`},
	} {
		var out, errb strings.Builder
		code := runRun([]string{"-variant", "p3", "-liveness", c.val}, &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), c.want) || out.Len() != 0 {
			t.Errorf("-liveness %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.val, code, out.String(), errb.String(), c.want)
		}
	}
}

// TestRunLiveness: natspipe run -liveness 300ms names a P3 worker stopped
// (SIGSTOP) for about a second unresponsive, and back when it resumes; at
// the default 2s it would say nothing of so short a stop.
func TestRunLiveness(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	t.Setenv(envCLIChild, "1") // the workers this run starts are this binary
	var stdout, stderr syncbuf.Buffer
	const n = 400 // at 2 ms a message: about 0.8 s, plus the stop
	code := make(chan int, 1)
	go func() {
		code <- runRun([]string{"-variant", "p3", "-durations", "1ms,2ms,1ms", "-n", strconv.Itoa(n), "-liveness", "300ms"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	const victim = "p3-S2-w1"
	// Stop it once messages flow, for a second.
	pid, sp := watchRun(t, &stdout, &stderr, deadline, victim, 3)
	for sp.Completions() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d completions", sp.Completions())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	_, out := waitRun(t, code, &stdout)
	if !strings.Contains(out, "worker "+victim+" unresponsive for") && !strings.Contains(out, "worker "+victim+" stuck") {
		t.Errorf("the 1 s stop of %s was not named at -liveness 300ms", victim)
	}
	if !strings.Contains(out, "worker "+victim+" came back after") {
		t.Errorf("%s was not named back after it resumed", victim)
	}
}
