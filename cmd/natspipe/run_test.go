package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/syncbuf"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// envCLIChild makes the test binary run as natspipe itself: natspipe run
// starts its P3/P4 workers as "<own executable> worker ...".
const envCLIChild = "NATSPIPE_CLI_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envCLIChild) == "1" {
		os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
	}
	// The tests give natspipe its command lines: the variables that stand
	// for run flags, which a benchmark run sets for the benchmarks
	// (NATSPIPE_TRANSPORT=all go test -bench=. ./... runs these tests too),
	// would change or refuse them. A test of a variable sets it itself.
	for _, e := range runEnvs() {
		os.Unsetenv(e.name)
	}
	os.Exit(m.Run())
}

// findWorker returns the pid of the worker process named name serving the
// pipeline under prefix, from /proc (as pgrep -f would); 0 if none.
func findWorker(prefix, name string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		cmd := "\x00" + string(b)
		if strings.Contains(cmd, "\x00-prefix\x00"+prefix+"\x00") && strings.Contains(cmd, "\x00-name\x00"+name+"\x00") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
			return pid
		}
	}
	return 0
}

// waitRun waits, at most 2 minutes, for the natspipe run whose exit code
// comes on code, and returns it with the run's stdout, which it logs.
func waitRun(t *testing.T, code <-chan int, stdout *syncbuf.Buffer) (int, string) {
	t.Helper()
	var rc int
	select {
	case rc = <-code:
	case <-time.After(2 * time.Minute):
		t.Fatal("natspipe run did not end within 2 minutes")
	}
	out := stdout.String()
	t.Logf("exit %d, stdout:\n%s", rc, out)
	return rc, out
}

// watchRun waits, until deadline, for a natspipe run writing to stdout to
// print its server line and for its worker victim's process, and returns
// that process and a spy on stage 1 (S2) of its stages stages.
func watchRun(t *testing.T, stdout, stderr *syncbuf.Buffer, deadline time.Time, victim string, stages int) (int, *varianttest.Spy) {
	t.Helper()
	header := regexp.MustCompile(`at (\S+), subjects (\S+)\.\*`)
	var url, prefix string
	for url == "" {
		if m := header.FindStringSubmatch(stdout.String()); m != nil {
			url, prefix = m[1], m[2]
		} else if time.Now().After(deadline) {
			t.Fatalf("natspipe run printed no server line:\n%s\n%s", stdout.String(), stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	pid := 0
	for pid == 0 {
		if pid = findWorker(prefix, victim); pid == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no process for worker %s", victim)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return pid, varianttest.NewSpy(t, natsconn.Config{URL: url}, bus.Subjects{Prefix: prefix}, 1, stages)
}

// parseSeqs reads the seqs of the report line that starts with prefix
// ("lost (3, never reached S4): seq 1, 2, 3").
func parseSeqs(t *testing.T, report, prefix string) []uint64 {
	t.Helper()
	for _, line := range strings.Split(report, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		_, list, ok := strings.Cut(line, ": seq ")
		if !ok {
			t.Fatalf("report line %q has no seq list", line)
		}
		var seqs []uint64
		for _, f := range strings.Split(list, ", ") {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatalf("report line %q: %v", line, err)
			}
			seqs = append(seqs, n)
		}
		return seqs
	}
	return nil
}

// TestRunWorkerKilled runs natspipe run (P4, 1-4-1-1) and SIGKILLs an S2
// worker while it holds messages: the run goes on with the other workers,
// the summary names the dead worker, and the lost set it prints is the
// trace's, seq for seq.
func TestRunWorkerKilled(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to find the worker process")
	}
	benchkit.CheckLeaks(t)
	t.Setenv(envCLIChild, "1") // the workers this run starts are this binary
	dir := t.TempDir()
	var stdout, stderr syncbuf.Buffer
	const n = 800
	code := make(chan int, 1)
	go func() {
		code <- runRun([]string{"-variant", "p4", "-alloc", "1-4-1-1", "-durations", "2ms,8ms,2ms,2ms",
			"-n", strconv.Itoa(n), "-trace", dir, "-trace-name", "kill", "-loss-timeout", "1s"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	const victim = "p4-S2-w2"
	pid, sp := watchRun(t, &stdout, &stderr, deadline, victim, 4)
	for sp.Completions() < n/5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d completions", sp.Completions())
		}
		time.Sleep(5 * time.Millisecond)
	}
	held, _ := sp.KillHolding(t, pid, 30*time.Second)
	t.Logf("killed %s (pid %d) holding at least %v", victim, pid, held)
	rc, out := waitRun(t, code, &stdout)
	if rc != 1 {
		t.Errorf("exit status %d, want 1 (messages lost)", rc)
	}
	if !strings.Contains(out, "worker "+victim+" died: process "+victim) || !strings.Contains(out, "killed by signal killed") {
		t.Errorf("summary does not name the dead worker and its exit")
	}
	if strings.Contains(out, "ended early") {
		t.Errorf("the run did not go on with the other workers")
	}
	lost := parseSeqs(t, out, "lost (")
	if len(lost) == 0 {
		t.Fatal("summary lists no lost message")
	}
	for _, seq := range held {
		if !slices.Contains(lost, seq) {
			t.Errorf("seq %d, held by the victim, is not in the summary's lost set", seq)
		}
	}
	tr, err := trace.ReadFile(filepath.Join(dir, "kill.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []uint64
	for _, m := range tr.Messages {
		if !m.Completed() {
			missing = append(missing, m.Seq)
		}
	}
	if !slices.Equal(lost, tr.Meta.Lost) || !slices.Equal(lost, missing) {
		t.Errorf("summary's lost set %v, trace header's %v, trace messages never received %v", lost, tr.Meta.Lost, missing)
	}
	if len(tr.Meta.Incidents) == 0 || tr.Meta.Incidents[0].Worker != victim || tr.Meta.Incidents[0].Kind != "died" {
		t.Errorf("trace incidents %+v, want %s's death", tr.Meta.Incidents, victim)
	}
	// natspipe analyze on the trace prints the run's account in the very
	// lines natspipe run printed (-wide: unwrapped): the lost set, the death at its time.
	acode, aout, aerr := analyzeCapture(analyzeCmd, "-wide", filepath.Join(dir, "kill.jsonl"))
	if acode != 0 {
		t.Fatalf("analyze: exit %d: %s", acode, aerr)
	}
	_, account, _ := strings.Cut(aout, "\naccounts\n")
	account = strings.TrimSuffix(account, "\n")
	runLines := accountLines(out)
	if got := strings.Split(account, "\n")[1:]; !slices.Equal(got, runLines) {
		t.Errorf("analyze's account lines:\n%s\nnatspipe run's:\n%s", strings.Join(got, "\n"), strings.Join(runLines, "\n"))
	}
	if !slices.Equal(parseSeqs(t, account, "lost ("), lost) {
		t.Errorf("analyze's lost set %v, run's %v", parseSeqs(t, account, "lost ("), lost)
	}
}

// accountLines are the lines natspipe run printed under its summary line
// (the one with "msgs/s (bound"), up to the open-loop line, if any.
func accountLines(out string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		switch {
		case strings.Contains(l, " msgs/s (bound "):
			in = true
		case in && strings.HasPrefix(l, "open loop at "):
			in = false
		case in:
			lines = append(lines, l)
		}
	}
	return lines
}

// The options sweep and plan -verify start from are run's flag defaults,
// and they pass run's own checks for every variant: a new run flag whose
// zero value is not valid cannot break them unnoticed.
func TestDefaultRunOptionsValid(t *testing.T) {
	o := defaultRunOptions(pipelines.DefaultSpec())
	if o.n != 300 || o.alloc != "1-4-1-1" || o.readyTimeout <= 0 || o.liveness <= 0 {
		t.Errorf("defaults n %d, alloc %q, ready-timeout %v, liveness %v: not the flags' defaults", o.n, o.alloc, o.readyTimeout, o.liveness)
	}
	for _, v := range []string{"p0", "p1", "p2", "p3", "p4"} {
		o.variant = v
		if err := checkRunOptions(o, o.set); err != nil {
			t.Errorf("-variant %s with run's defaults: %v", v, err)
		}
	}
}
