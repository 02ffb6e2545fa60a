package main

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/syncbuf"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// TestProgressFields: the progress line's numbers, from a Progress and the
// bound.
func TestProgressFields(t *testing.T) {
	for _, c := range []struct {
		p     pipelines.Progress
		bound float64
		want  string
	}{
		{pipelines.Progress{N: 3000, Sent: 3}, 25, "0/3000 msgs, 0.0 msgs/s, eff 0.000, lost 0, ETA -"},
		{pipelines.Progress{N: 3000, Sent: 105, Completed: 100, Elapsed: 4 * time.Second}, 25, "100/3000 msgs, 25.0 msgs/s, eff 1.000, lost 0, ETA 1m56s"},
		{pipelines.Progress{N: 100, Sent: 100, Completed: 90, Lost: 10, Elapsed: 2 * time.Second}, 50, "90/100 msgs, 45.0 msgs/s, eff 0.900, lost 10, ETA 0s"},
		{pipelines.Progress{N: 10, Sent: 10, Completed: 10, Elapsed: 1234 * time.Millisecond, Done: true}, math.Inf(1), "10/10 msgs, 8.1 msgs/s, eff -, lost 0, in 1.23s"},
	} {
		if got := progressFields(c.p, c.bound); got != c.want {
			t.Errorf("%+v at %v:\n got %q\nwant %q", c.p, c.bound, got, c.want)
		}
	}
}

// TestConsoleSignals: the first signal cancels the run's context with the
// signal as its cause and says so on stderr; the second kills the workers
// and exits 130; stop ends the watch.
func TestConsoleSignals(t *testing.T) {
	benchkit.CheckLeaks(t)
	var stderr syncbuf.Buffer
	exited := make(chan int, 1)
	killed := make(chan struct{})
	c := &console{w: &stderr, exit: func(code int) { exited <- code }}
	c.setDrain(3 * time.Second)
	c.setKill(func() { close(killed) })
	sigs := make(chan os.Signal, 2)
	ctx, stop := c.watch(context.Background(), sigs, func() {})
	defer stop()
	sigs <- os.Interrupt
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first signal did not cancel the context")
	}
	if cause := context.Cause(ctx); cause == nil || cause.Error() != "Ctrl-C (SIGINT)" {
		t.Errorf("cause %v", cause)
	}
	if want := "natspipe run: Ctrl-C (SIGINT): stopping the source; waiting up to 3s for the messages in flight (Ctrl-C again to quit at once)\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	sigs <- os.Interrupt
	select {
	case code := <-exited:
		if code != exitInterrupted {
			t.Errorf("exit %d, want %d", code, exitInterrupted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not exit")
	}
	select {
	case <-killed:
	default:
		t.Error("exited without killing the workers")
	}
	if !strings.Contains(stderr.String(), "Ctrl-C (SIGINT) again: killing the worker processes and quitting") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// workersOf counts the live worker processes of the pipeline under
// prefix among names.
func workersOf(prefix string, names ...string) []string {
	var alive []string
	for _, n := range names {
		if pid := findWorker(prefix, n); pid != 0 {
			alive = append(alive, n)
		}
	}
	return alive
}

var p3Workers = []string{"p3-S1-w1", "p3-S2-w1", "p3-S3-w1", "p3-S4-w1"}

// checkPartialTrace reads the trace at path and checks it is the partial
// run's: interrupted, its counts those of the summary, one record for
// every message sent.
func checkPartialTrace(t *testing.T, path string, completed, sent int) {
	t.Helper()
	tr, err := trace.ReadFile(path)
	if err != nil {
		t.Fatalf("trace of the interrupted run: %v", err)
	}
	a := tr.Meta.Account()
	back := 0
	for _, m := range tr.Messages {
		if m.Completed() {
			back++
		}
	}
	if !a.Interrupted() || tr.Meta.Completed != completed || back != completed || len(tr.Messages) != sent ||
		a.N-a.Unsent != sent || a.Completed+len(a.Unaccounted)+len(a.Lost) != sent {
		t.Errorf("trace: ended by %q, completed %d (%d records back), %d records, %d sent, in flight %v, lost %v; want %d completed of %d sent",
			tr.Meta.EndedBy, tr.Meta.Completed, back, len(tr.Messages), a.N-a.Unsent, a.Unaccounted, a.Lost, completed, sent)
	}
}

// TestExecuteInterrupted: a P2 run (in process) and a P3 run (real
// worker processes) whose context is cancelled mid-run return the partial
// result within the drain and stop bounds: completed + in flight + lost =
// sent, the rest never sent, the trace written with those counts, the
// progress line ended "interrupted", and no worker process left.
func TestExecuteInterrupted(t *testing.T) {
	benchrun.SkipTest(t, "interrupted run")
	for _, variant := range []string{"p2", "p3"} {
		t.Run(variant, func(t *testing.T) { executeInterrupted(t, variant) })
	}
}

func executeInterrupted(t *testing.T, variant string) {
	benchkit.CheckLeaks(t)
	t.Setenv(envCLIChild, "1") // the workers this run starts are this binary
	dir := t.TempDir()
	o := defaultRunOptions(pipelines.DefaultSpec())
	o.variant, o.durations, o.n = variant, "1ms,4ms,1ms,1ms", 20000
	o.traceDir, o.traceName, o.set = dir, "interrupted", map[string]bool{"trace-name": true}
	var stdout, progress syncbuf.Buffer
	o.console = &console{w: &progress, progress: true}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	type ran struct {
		res *pipelines.Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := execute(ctx, o, &stdout)
		done <- ran{res, err}
	}()
	header := regexp.MustCompile(`subjects (\S+)\.\*`)
	deadline := time.Now().Add(time.Minute)
	// Messages flow once the progress line shows some back.
	flowing := regexp.MustCompile(`: [1-9]\d+/20000 msgs`)
	for !flowing.MatchString(progress.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no progress:\n%s\n%s", stdout.String(), progress.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := header.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no server line:\n%s", stdout.String())
	}
	prefix := m[1]
	if variant == "p3" {
		if alive := workersOf(prefix, p3Workers...); len(alive) != 4 {
			t.Fatalf("workers running: %v, want all 4", alive)
		}
	}
	stopped := time.Now()
	cancel(errors.New("test stop"))
	var r ran
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the run did not end within a minute of its cancel")
	}
	// Bounded by the drain (at most 5 s) and the workers' stop.
	t.Logf("ended %v after the cancel; stdout:\n%s", time.Since(stopped).Round(time.Millisecond), stdout.String())
	res := r.res
	if res == nil {
		t.Fatalf("no result: %v", r.err)
	}
	t.Logf("report:\n%s", res.Report())
	if !errors.Is(r.err, pipelines.ErrInterrupted) || runExit(r.err) != exitInterrupted {
		t.Errorf("error %v (exit %d): want an interrupted run, exit 130", r.err, runExit(r.err))
	}
	sent := res.N - res.Unsent
	if !res.Interrupted() || res.Completed == 0 || res.Unsent == 0 || res.Completed+len(res.Unaccounted)+len(res.Lost) != sent {
		t.Errorf("interrupted %v: completed %d + in flight %v + lost %v, %d sent, %d never sent",
			res.Interrupted(), res.Completed, res.Unaccounted, res.Lost, sent, res.Unsent)
	}
	checkPartialTrace(t, filepath.Join(dir, "interrupted.jsonl"), res.Completed, sent)
	if !strings.Contains(stdout.String(), "trace: "+filepath.Join(dir, "interrupted")+".{jsonl,csv}") {
		t.Error("no trace line on stdout")
	}
	if p := progress.String(); !strings.HasSuffix(p, ", interrupted \x1b[0K\n") {
		t.Errorf("progress line does not end interrupted: %q", p[max(len(p)-200, 0):])
	}
	if alive := workersOf(prefix, p3Workers...); len(alive) != 0 {
		t.Errorf("workers left after the run: %v", alive)
	}
}

// startCLI starts natspipe (this test binary as natspipe: TestMain) with
// args, its stdout and stderr into the buffers, and waits for its server
// line and its worker processes; it returns the command and the subject
// prefix. The process is killed at the test's end if still running.
func startCLI(t *testing.T, stdout, stderr *syncbuf.Buffer, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envCLIChild+"=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	header := regexp.MustCompile(`subjects (\S+)\.\*`)
	deadline := time.Now().Add(time.Minute)
	for {
		if m := header.FindStringSubmatch(stdout.String()); m != nil {
			if len(workersOf(m[1], p3Workers...)) == 4 {
				return cmd, m[1]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("natspipe run started no server and workers:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFlowing waits, at most a minute, until n messages of the run have
// been published on subject (prefix.s2: into S2; prefix.done: back to the
// sink): it subscribes on the server the run's first stdout line names. A
// run interrupted before then has not started (its workers may still be
// starting on a loaded machine), and has no partial result.
func waitFlowing(t *testing.T, stdout *syncbuf.Buffer, subject string, n int) {
	t.Helper()
	m := regexp.MustCompile(`^nats \S+ at (\S+), subjects`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no server line on stdout:\n%s", stdout.String())
	}
	nc, err := nats.Connect(m[1], nats.Name("progress_test"))
	if err != nil {
		t.Fatalf("connect to the run's server %s: %v", m[1], err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for got := 0; got < n; got++ {
		if _, err := sub.NextMsg(time.Until(deadline)); err != nil {
			t.Fatalf("%d of %d messages on %s within a minute: %v", got, n, subject, err)
		}
	}
}

// waitExit waits, at most a minute, for cmd to exit, and returns its
// exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wait: %v", err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("natspipe run did not exit within a minute of its interrupt")
	}
	return -1
}

// TestRunSIGINT: natspipe run, a process of its own with P3 worker
// processes, sent SIGINT mid-run: it stops its source, drains, prints the
// partial summary, writes the trace, stops its workers and exits 130.
func TestRunSIGINT(t *testing.T) {
	benchrun.SkipTest(t, "natspipe run interrupted")
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to find the worker processes")
	}
	dir := t.TempDir()
	var stdout, stderr syncbuf.Buffer
	cmd, prefix := startCLI(t, &stdout, &stderr, "run", "-variant", "p3", "-durations", "1ms,4ms,1ms,1ms", "-n", "20000",
		"-trace", dir, "-trace-name", "sigint")
	waitFlowing(t, &stdout, prefix+".done", 50)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := waitExit(t, cmd)
	out := stdout.String()
	t.Logf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	if code != exitInterrupted {
		t.Errorf("exit %d, want %d", code, exitInterrupted)
	}
	if !strings.Contains(stderr.String(), "natspipe run: Ctrl-C (SIGINT): stopping the source;") {
		t.Error("stderr does not say the run is stopping")
	}
	sum := regexp.MustCompile(`p3 over core: (\d+)/20000 msgs in .*\(INTERRUPTED: partial, (\d+) of 20000 sent\)`).FindStringSubmatch(out)
	if sum == nil {
		t.Fatal("no partial summary on stdout")
	}
	if !strings.Contains(out, "ended early: interrupted: Ctrl-C (SIGINT); the source stopped after "+sum[2]+" of 20000 messages") ||
		!strings.Contains(out, "trace: "+filepath.Join(dir, "sigint")+".{jsonl,csv}") {
		t.Error("stdout does not say why the run ended and where the trace is")
	}
	completed, _ := strconv.Atoi(sum[1])
	sent, _ := strconv.Atoi(sum[2])
	if completed == 0 || sent >= 20000 {
		t.Errorf("%d completed of %d sent: want a run stopped mid-way", completed, sent)
	}
	checkPartialTrace(t, filepath.Join(dir, "sigint.jsonl"), completed, sent)
	if alive := workersOf(prefix, p3Workers...); len(alive) != 0 {
		t.Errorf("workers outlived natspipe run: %v", alive)
	}
}

// TestRunSecondSIGINT: a second SIGINT while natspipe run drains (a
// message takes 3 s in S2) kills its worker processes and exits 130 at
// once: no summary, no worker left.
func TestRunSecondSIGINT(t *testing.T) {
	benchrun.SkipTest(t, "natspipe run interrupted twice")
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to find the worker processes")
	}
	var stdout, stderr syncbuf.Buffer
	cmd, prefix := startCLI(t, &stdout, &stderr, "run", "-variant", "p3", "-durations", "1ms,3s,1ms,1ms", "-n", "100")
	waitFlowing(t, &stdout, prefix+".s2", 1) // the first message in S2's 3 s
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(stderr.String(), "stopping the source"); {
		if time.Now().After(deadline) {
			t.Fatalf("no notice of the first SIGINT:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := waitExit(t, cmd)
	t.Logf("exit %d; stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	if code != exitInterrupted {
		t.Errorf("exit %d, want %d", code, exitInterrupted)
	}
	if !strings.Contains(stderr.String(), "Ctrl-C (SIGINT) again: killing the worker processes and quitting") {
		t.Error("stderr does not say it quits")
	}
	if strings.Contains(stdout.String(), " msgs/s (bound ") {
		t.Error("a summary: the second SIGINT did not quit at once, before the drain's end")
	}
	if alive := workersOf(prefix, p3Workers...); len(alive) != 0 {
		t.Errorf("workers outlived natspipe run: %v", alive)
	}
}
