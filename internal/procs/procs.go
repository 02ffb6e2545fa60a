// Package procs supervises child operating-system processes for tests,
// benchmarks and harnesses. Every child runs in a process group of its own,
// so killing it kills whatever it started; on Linux it is sent SIGKILL when
// its parent dies (Pdeathsig), and with a lifeline it also exits when its
// parent's end of a stdin pipe closes (any platform). The tail of each
// child's stderr is kept for error messages, and every exit is watched: an
// exit nobody asked for is reported to the group's callback at once.
//
// A Group owns its children: Close kills every process group it started and
// reaps them, within bounded time. Tests call Close in Cleanup (see
// internal/procs/procstest), so no child outlives a failed test, a panic or
// a Fatal.
package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTail is how many bytes of a child's stderr are kept.
const DefaultTail = 4 << 10

// KillWait bounds how long Kill and Close wait for a killed child to be
// reaped.
const KillWait = 10 * time.Second

// EnvLifeline is set to "1" in the environment of a child started with
// Spec.Lifeline; the child calls ExitWithParent to honour it.
const EnvLifeline = "NATSPIPE_LIFELINE"

// Spec describes a child process.
type Spec struct {
	// Name identifies the child in errors, e.g. "p4-S2-w3".
	Name string
	// Path is the executable; Args are its arguments (without argv[0]).
	Path string
	Args []string
	// Env is the child's whole environment; nil inherits os.Environ().
	Env []string
	// Stderr, when set, also receives everything the child writes to stderr.
	Stderr io.Writer
	// Stdout receives the child's stdout; nil discards it.
	Stdout io.Writer
	// Lifeline gives the child a stdin pipe the parent holds open, and sets
	// EnvLifeline=1; the pipe closes when the parent dies or kills the child.
	Lifeline bool
}

// Exit describes how a child ended.
type Exit struct {
	Name string
	PID  int
	// Code is the exit status, -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, 0 if it exited.
	Signal syscall.Signal
	// Expected is true when the exit was asked for: Kill, Close, or Expect.
	Expected bool
	// Err is a failure to wait for the child other than its exit status.
	Err error
	// Tail is the end of the child's stderr.
	Tail string
	// Elapsed is the child's lifetime.
	Elapsed time.Duration
}

// Success reports whether the child exited with status 0.
func (e *Exit) Success() bool { return e.Err == nil && e.Signal == 0 && e.Code == 0 }

// Status describes the exit as the shell would: "exit status 3" or
// "killed by signal killed".
func (e *Exit) Status() string {
	switch {
	case e.Err != nil:
		return "wait failed: " + e.Err.Error()
	case e.Signal != 0:
		return "killed by signal " + e.Signal.String()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Error describes the exit with the tail of stderr, so an Exit can be
// returned as an error.
func (e *Exit) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "process %s (pid %d) %s after %v", e.Name, e.PID, e.Status(), e.Elapsed.Round(time.Millisecond))
	if t := strings.TrimRight(e.Tail, "\n"); t != "" {
		b.WriteString("; stderr tail:\n")
		b.WriteString(indent(t))
	} else {
		b.WriteString("; stderr empty")
	}
	return b.String()
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "\t" + l
	}
	return strings.Join(lines, "\n")
}

// Proc is a running or ended child.
type Proc struct {
	spec  Spec
	cmd   *exec.Cmd
	tail  *tailBuffer
	stdin io.Closer
	start time.Time
	done  chan struct{}
	group *Group

	mu       sync.Mutex
	gone     bool // exited: its pid may be reused, send no more signals
	expected bool
	exit     *Exit
}

// PID is the child's process id, which is also its process group id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exit is how the child ended, nil while it runs.
func (p *Proc) Exit() *Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// Tail is the end of what the child has written to stderr so far.
func (p *Proc) Tail() string { return p.tail.String() }

// Expect marks the child's exit as asked for: it is not reported to the
// group's callback. Use it before a deliberate kill or a stop request.
func (p *Proc) Expect() {
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
}

// Signal sends sig to the child's whole process group. It does nothing once
// the child has exited.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil
	}
	if err := signalGroup(p.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pgid %d) %v: %w", p.spec.Name, p.PID(), sig, err)
	}
	return nil
}

// Kill marks the exit as expected, sends SIGKILL to the child's process
// group and waits, at most KillWait, until it has been reaped.
func (p *Proc) Kill() (*Exit, error) {
	p.Expect()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return nil, err
	}
	_ = p.stdin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), KillWait)
	defer cancel()
	return p.Wait(ctx)
}

// Wait waits until the child has exited and been reaped, or ctx is done.
func (p *Proc) Wait(ctx context.Context) (*Exit, error) {
	select {
	case <-p.done:
		return p.Exit(), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for %s (pid %d): %w", p.spec.Name, p.PID(), ctx.Err())
	}
}

// watch waits for the child to exit, kills what is left of its process
// group, reaps it and reports the exit.
func (p *Proc) watch() {
	pid := p.PID()
	// Wait without reaping where the platform can, so the group is killed
	// while its id cannot yet be reused.
	waitExited(pid)
	p.mu.Lock()
	_ = signalGroup(pid, syscall.SIGKILL) // stragglers the child started
	p.mu.Unlock()
	err := p.cmd.Wait()
	p.mu.Lock()
	p.gone = true
	e := &Exit{Name: p.spec.Name, PID: pid, Expected: p.expected, Tail: p.tail.String(), Elapsed: time.Since(p.start)}
	var ee *exec.ExitError
	switch {
	case err == nil, errors.As(err, &ee):
		e.Code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Code, e.Signal = -1, ws.Signal()
		}
	default:
		e.Code, e.Err = -1, err
	}
	p.exit = e
	p.mu.Unlock()
	close(p.done)
	p.group.exited(e)
}

// Group starts and owns child processes.
type Group struct {
	onUnexpected func(*Exit)

	mu     sync.Mutex
	procs  []*Proc
	closed bool
	// spawn carries start requests to a goroutine locked to one OS thread
	// for the group's life: Linux sends Pdeathsig when the thread that
	// forked a child exits, not the process, so children are forked from a
	// thread that lives as long as they may.
	spawn       chan spawnReq
	spawnerDone chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// NewGroup returns a group that calls onUnexpected (if not nil), from a
// goroutine of its own, whenever a child exits without Kill, Close or Expect
// having asked for it.
func NewGroup(onUnexpected func(*Exit)) *Group {
	g := &Group{onUnexpected: onUnexpected, spawn: make(chan spawnReq), spawnerDone: make(chan struct{})}
	go g.spawner()
	return g
}

func (g *Group) spawner() {
	// Never unlocked: the thread ends with this goroutine, after Close has
	// reaped every child.
	runtime.LockOSThread()
	defer close(g.spawnerDone)
	for req := range g.spawn {
		req.err <- req.cmd.Start()
	}
}

// Start starts a child described by spec and begins watching it.
func (g *Group) Start(spec Spec) (*Proc, error) {
	if spec.Path == "" {
		return nil, fmt.Errorf("start %s: no executable", spec.Name)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	tail := newTailBuffer(DefaultTail)
	if spec.Stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, spec.Stderr)
	} else {
		cmd.Stderr = tail
	}
	cmd.Stdout = spec.Stdout
	cmd.WaitDelay = 2 * time.Second // stderr copying ends even if a grandchild holds the pipe
	setProcAttr(cmd)
	var stdin io.Closer = nopCloser{}
	if spec.Lifeline {
		cmd.Env = append(cmd.Env, EnvLifeline+"=1")
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("start %s: lifeline pipe: %w", spec.Name, err)
		}
		stdin = w
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		_ = stdin.Close()
		return nil, fmt.Errorf("start %s: group closed", spec.Name)
	}
	req := spawnReq{cmd: cmd, err: make(chan error, 1)}
	g.spawn <- req
	if err := <-req.err; err != nil {
		_ = stdin.Close()
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Path, err)
	}
	p := &Proc{spec: spec, cmd: cmd, tail: tail, stdin: stdin, start: time.Now(), done: make(chan struct{}), group: g}
	g.procs = append(g.procs, p)
	go p.watch()
	return p, nil
}

func (g *Group) exited(e *Exit) {
	if !e.Expected && g.onUnexpected != nil {
		g.onUnexpected(e)
	}
}

// Procs returns the children started so far, in start order.
func (g *Group) Procs() []*Proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Proc(nil), g.procs...)
}

// Close kills every child's process group, waits (at most KillWait) until
// all are reaped, and releases the group. It returns an error naming any
// child that could not be reaped. Close may be called more than once.
func (g *Group) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.spawn)
	}
	procs := append([]*Proc(nil), g.procs...)
	g.mu.Unlock()
	for _, p := range procs {
		p.Expect()
		_ = p.Signal(syscall.SIGKILL)
		_ = p.stdin.Close()
	}
	// The deadline's Done channel stays closed once it has passed, so every
	// later wait returns at once; each process is then checked without
	// blocking, and one already reaped is never reported as stuck.
	deadline, cancel := context.WithTimeout(context.Background(), KillWait)
	defer cancel()
	var stuck []string
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		case <-deadline.Done():
		}
		select {
		case <-p.done:
		default:
			stuck = append(stuck, fmt.Sprintf("%s (pid %d)", p.spec.Name, p.PID()))
		}
	}
	if len(stuck) > 0 {
		return fmt.Errorf("close: not reaped %v after SIGKILL: %s", KillWait, strings.Join(stuck, ", "))
	}
	// What the children started dies asynchronously: wait until their
	// process groups are empty (the ids stay reserved while any member,
	// even a zombie, exists, so signalling them again is safe).
	for _, p := range procs {
		for GroupExists(p.PID()) {
			_ = signalGroup(p.PID(), syscall.SIGKILL)
			select {
			case <-deadline.Done():
				return fmt.Errorf("close: process group %d of %s not empty %v after SIGKILL", p.PID(), p.spec.Name, KillWait)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	select {
	case <-g.spawnerDone:
	case <-time.After(KillWait):
		return errors.New("close: spawner thread did not stop")
	}
	return nil
}

// Leftovers lists the children, or members of their process groups, that
// still exist: after Close it should be empty.
func (g *Group) Leftovers() []string {
	var left []string
	for _, p := range g.Procs() {
		if Exists(p.PID()) {
			left = append(left, fmt.Sprintf("%s pid %d", p.spec.Name, p.PID()))
		} else if GroupExists(p.PID()) {
			left = append(left, fmt.Sprintf("%s process group %d", p.spec.Name, p.PID()))
		}
	}
	return left
}

// Exists reports whether a process with this pid exists (a zombie counts).
func Exists(pid int) bool { return exists(pid) }

// GroupExists reports whether any live process is in process group pgid.
// On Linux zombies do not count: a killed grandchild reparented to an init
// that is slow to reap it no longer runs.
func GroupExists(pgid int) bool { return groupExists(pgid) }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total > int64(len(t.buf)) {
		return fmt.Sprintf("[... %d bytes cut]\n%s", t.total-int64(len(t.buf)), t.buf)
	}
	return string(t.buf)
}

// ExitWithParent makes a child started with Spec.Lifeline exit, with status
// 1, as soon as its parent's end of the stdin pipe closes: when the parent
// dies or kills it. It does nothing when EnvLifeline is not "1".
func ExitWithParent() {
	if os.Getenv(EnvLifeline) != "1" {
		return
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		fmt.Fprintf(os.Stderr, "pid %d: parent gone (lifeline closed), exiting\n", os.Getpid())
		os.Exit(1)
	}()
}
