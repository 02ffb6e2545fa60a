//go:build unix

package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envHelper makes the test binary act as a helper process (the pattern of
// os/exec's own tests) instead of running tests.
const envHelper = "PROCS_TEST_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(envHelper); role != "" {
		os.Exit(helper(role))
	}
	os.Exit(m.Run())
}

// helper runs a helper role and returns its exit status. Every role that
// waits does so for at most a minute, so a bug cannot leave it running.
func helper(role string) int {
	ExitWithParent()
	switch role {
	case "sleep":
		fmt.Fprintln(os.Stderr, "helper: sleeping")
		time.Sleep(time.Minute)
		return 0
	case "exit3":
		for i := range 2000 {
			fmt.Fprintf(os.Stderr, "line %d of noise\n", i)
		}
		fmt.Fprintln(os.Stderr, "helper: failing with status 3")
		return 3
	case "grandparent":
		// Start a grandchild in this process's group, print its pid, wait.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envHelper+"=sleep")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(cmd.Process.Pid)
		time.Sleep(time.Minute)
		return 0
	case "supervisor":
		// Start a supervised child (no lifeline: Pdeathsig alone), print its
		// pid, and wait to be killed.
		g := NewGroup(nil)
		p, err := g.Start(Spec{Name: "orphan-candidate", Path: os.Args[0], Env: append(os.Environ(), envHelper+"=sleep")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(p.PID())
		time.Sleep(time.Minute)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
	return 2
}

func helperSpec(name, role string) Spec {
	return Spec{Name: name, Path: os.Args[0], Env: append(os.Environ(), envHelper+"="+role)}
}

// gone reports whether pid no longer runs: it does not exist, or it is a
// zombie waiting for a reaper that is not us (a reparented grandchild).
func gone(pid int) bool {
	if !Exists(pid) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist) && runtime.GOOS == "linux"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running after %v", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type exits struct {
	ch chan *Exit
}

func newExits() *exits { return &exits{ch: make(chan *Exit, 8)} }

func (e *exits) report(x *Exit) { e.ch <- x }

func TestUnexpectedExitReportedWithTail(t *testing.T) {
	ex := newExits()
	g := forTest(t, ex.report)
	p, err := g.Start(helperSpec("crasher", "exit3"))
	if err != nil {
		t.Fatal(err)
	}
	var x *Exit
	select {
	case x = <-ex.ch:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit reported within 30s")
	}
	if x.Code != 3 || x.Signal != 0 || x.Expected || x.Success() {
		t.Errorf("exit = %+v, want unexpected status 3", x)
	}
	msg := x.Error()
	for _, want := range []string{"crasher", fmt.Sprintf("pid %d", p.PID()), "exit status 3", "helper: failing with status 3", "bytes cut"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if len(x.Tail) > DefaultTail+64 {
		t.Errorf("tail is %d bytes, want about %d", len(x.Tail), DefaultTail)
	}
	if Exists(p.PID()) {
		t.Errorf("pid %d exists after it was reaped", p.PID())
	}
}

func TestKillIsExpected(t *testing.T) {
	ex := newExits()
	g := forTest(t, ex.report)
	p, err := g.Start(helperSpec("sleeper", "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := p.Kill()
	if err != nil {
		t.Fatal(err)
	}
	if x.Signal != syscall.SIGKILL || !x.Expected {
		t.Errorf("exit = %+v, want expected SIGKILL", x)
	}
	if !strings.Contains(x.Status(), "killed") {
		t.Errorf("status %q", x.Status())
	}
	select {
	case x := <-ex.ch:
		t.Errorf("expected kill reported as unexpected: %v", x)
	case <-time.After(50 * time.Millisecond):
	}
	if Exists(p.PID()) || GroupExists(p.PID()) {
		t.Errorf("pid %d or its group still exists", p.PID())
	}
}

func TestCloseKillsWholeGroup(t *testing.T) {
	g := NewGroup(nil)
	defer g.Close()
	out := &lineWriter{lines: make(chan string, 1)}
	spec := helperSpec("grandparent", "grandparent")
	spec.Stdout = out
	p, err := g.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	grandchild := readPID(t, out)
	if gone(grandchild) {
		t.Fatalf("grandchild %d not running", grandchild)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if x := p.Exit(); x == nil || !x.Expected {
		t.Errorf("exit after Close = %+v, want expected", x)
	}
	if left := g.Leftovers(); len(left) > 0 {
		t.Errorf("left over: %v", left)
	}
	waitGone(t, grandchild, 5*time.Second)
	if _, err := g.Start(helperSpec("late", "sleep")); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestChildDiesWithKilledParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	// The parent is a process of its own that supervises a child; killing
	// the parent with SIGKILL must take the child with it.
	g := forTest(t, nil)
	out := &lineWriter{lines: make(chan string, 1)}
	spec := helperSpec("supervisor", "supervisor")
	spec.Stdout = out
	parent, err := g.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	child := readPID(t, out)
	if _, err := parent.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, child, 5*time.Second)
}

func TestLifeline(t *testing.T) {
	ex := newExits()
	g := forTest(t, ex.report)
	spec := helperSpec("tethered", "sleep")
	spec.Lifeline = true
	p, err := g.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the helper to be up, then cut the lifeline as a dying parent would.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Tail(), "sleeping") {
		if time.Now().After(deadline) {
			t.Fatalf("helper not up; tail %q", p.Tail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = p.stdin.Close()
	select {
	case x := <-ex.ch:
		if x.Code != 1 || !strings.Contains(x.Tail, "parent gone") {
			t.Errorf("exit %v, want status 1 and 'parent gone'", x)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not exit when its lifeline closed")
	}
}

func TestWaitBounded(t *testing.T) {
	g := forTest(t, nil)
	p, err := g.Start(helperSpec("sleeper", "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want deadline exceeded", err)
	}
}

func TestStartErrors(t *testing.T) {
	g := forTest(t, nil)
	if _, err := g.Start(Spec{Name: "nothing"}); err == nil {
		t.Error("Start with no path succeeded")
	}
	_, err := g.Start(Spec{Name: "missing", Path: "/nonexistent/natspipe-worker"})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Start of a missing executable: %v", err)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(8)
	fmt.Fprint(tb, "0123")
	if got := tb.String(); got != "0123" {
		t.Errorf("got %q", got)
	}
	fmt.Fprint(tb, "456789")
	if got := tb.String(); !strings.HasSuffix(got, "23456789") || !strings.Contains(got, "2 bytes cut") {
		t.Errorf("got %q", got)
	}
	fmt.Fprint(tb, "abcdefghijkl")
	if got := tb.String(); !strings.HasSuffix(got, "efghijkl") {
		t.Errorf("got %q", got)
	}
}

// lineWriter delivers the lines a child writes to stdout.
type lineWriter struct {
	mu    sync.Mutex
	buf   []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default:
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func readPID(t *testing.T, w *lineWriter) int {
	t.Helper()
	select {
	case line := <-w.lines:
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("helper printed %q, want a pid", line)
		}
		return pid
	case <-time.After(20 * time.Second):
		t.Fatal("helper printed no pid within 20s")
	}
	return 0
}

// forTest is procstest.NewGroup, which this package's own tests cannot
// import (procstest imports procs).
func forTest(tb testing.TB, onUnexpected func(*Exit)) *Group {
	tb.Helper()
	g := NewGroup(onUnexpected)
	tb.Cleanup(func() {
		if err := g.Close(); err != nil {
			tb.Errorf("procs: %v", err)
		}
		if left := g.Leftovers(); len(left) > 0 {
			tb.Errorf("procs: processes still alive after cleanup: %v", left)
		}
	})
	return g
}
