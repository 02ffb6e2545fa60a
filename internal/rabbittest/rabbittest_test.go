package rabbittest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines/transport/amqp"
	"go.uber.org/goleak"
)

// TestMain stops the shared node at the end. (internal/benchkit's Main,
// which every other test binary runs, imports this package.)
func TestMain(m *testing.M) { os.Exit(Main(m, nil)) }

// checkLeaks is benchkit.CheckLeaks, which this package cannot import.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := goleak.Find(before, goleak.IgnoreAnyFunction(SpawnerFunc)); err != nil {
			t.Errorf("goroutines outlived the test: %v", err)
		}
	})
}

// gone reports whether process pid no longer exists (reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestNodeStartsAnswersStops: a private node takes AMQP connections; Stop
// leaves no process of it (the VM, its helpers, its epmd) and removes its
// directory.
func TestNodeStartsAnswersStops(t *testing.T) {
	checkLeaks(t)
	RequireProgram(t)
	n, err := start(defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = n.Stop()
		}
	}()
	if err := Check(n.URL, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rabbit, epmd := n.Pids()
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(rabbit) + "/comm"); strings.TrimSpace(string(comm)) != "beam.smp" {
		t.Fatalf("process %d is %q, want beam.smp (the script execs into the VM)", rabbit, comm)
	}
	if !strings.HasPrefix(n.Name, "natspipe-") || !strings.HasSuffix(n.Name, "@localhost") {
		t.Fatalf("node name %q", n.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // rabbitmqctl starts an Erlang VM
	defer cancel()
	if out, err := n.Ctl(ctx, "status"); err != nil || !strings.Contains(out, n.Name) {
		t.Fatalf("rabbitmqctl status: %v\n%s", err, out)
	}
	dir := n.Dir
	t0 := time.Now()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("stopped in %v", time.Since(t0))
	for _, pid := range []int{rabbit, epmd} {
		if !gone(pid) {
			t.Errorf("process %d still exists after Stop", pid)
		}
		if left := Group(pid); len(left) != 0 {
			t.Errorf("processes %v of group %d left after Stop", left, pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v", dir, err)
	}
	if err := Check(n.URL, time.Second); err == nil {
		t.Error("the node still answers after Stop")
	}
	if err := n.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}

// TestNodeThatCannotStart: a bad configuration makes the node exit; start
// fails at once (long before ReadyTimeout) with the log's last lines, and
// leaves nothing behind.
func TestNodeThatCannotStart(t *testing.T) {
	checkLeaks(t)
	RequireProgram(t)
	o := defaultOptions()
	o.conf = "this.is.not = a valid setting\n"
	before := dirs(t, o.root)
	t0 := time.Now()
	n, err := start(o)
	took := time.Since(t0)
	if err == nil {
		_ = n.Stop()
		t.Fatal("a node with a bad configuration started")
	}
	t.Logf("failed after %v: %v", took, err)
	if took > 30*time.Second {
		t.Errorf("took %v to fail", took)
	}
	if !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "last lines of its log") || !strings.Contains(err.Error(), "this.is.not") {
		t.Errorf("error %q: want the exit and the log's tail naming the bad setting", err)
	}
	if after := dirs(t, o.root); len(after) > len(before) {
		t.Errorf("directories left: %v", after)
	}
}

func TestProgramMissing(t *testing.T) {
	if _, err := start(options{}); err == nil || err.Error() != Unavailable {
		t.Fatalf("start without a program: %v", err)
	}
}

func TestRequired(t *testing.T) {
	for env, want := range map[string]bool{"": false, "amqp": true, "core, amqp": true, "js,amqp,kafka": true, "amqpx": false, "js": false} {
		got := Required(func(k string) string {
			if k == EnvRequire {
				return env
			}
			return ""
		})
		if got != want {
			t.Errorf("%s=%q: Required %v, want %v", EnvRequire, env, got, want)
		}
	}
}

// TestShared: one broker for the binary, and it answers.
func TestShared(t *testing.T) {
	checkLeaks(t)
	u := Shared(t)
	if u2 := Shared(t); u2 != u {
		t.Fatalf("Shared gave %s then %s", amqp.Mask(u), amqp.Mask(u2))
	}
	if err := Check(u, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCheckMasks(t *testing.T) {
	err := Check("amqp://guest:hunter2@127.0.0.1:1/", time.Second)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "guest:***@") {
		t.Fatalf("Check of a closed port: %v", err)
	}
}

func dirs(t *testing.T, root string) []string {
	t.Helper()
	if root == "" {
		root = os.TempDir()
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	// Only this binary's: other test binaries running beside it (a busy
	// machine, go test -p) start and stop nodes of their own meanwhile.
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), ownerFile))
		if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestNodeOutlivesItsStartersThread starts a node from a goroutine that
// ends locked to its OS thread, so Go ends the thread: Pdeathsig follows
// the thread that forked a child, so a node forked from it would be killed
// (a shared node started in one benchmark died when a later one's locked
// goroutine ended on the same thread). The node must still answer.
func TestNodeOutlivesItsStartersThread(t *testing.T) {
	checkLeaks(t)
	RequireProgram(t)
	var n *Node
	var err error
	for try := 0; n == nil && err == nil; try++ {
		if try == 20 {
			t.Fatal("20 goroutines in a row ran on the main thread, which Go never ends")
		}
		started := make(chan struct{})
		go func() {
			defer close(started)
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if syscall.Gettid() == syscall.Getpid() {
				return // the main thread: Go parks it rather than end it; try again
			}
			n, err = start(defaultOptions())
		}()
		<-started
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(300 * time.Millisecond) // Pdeathsig is sent at once; give the node time to go
	if err := Check(n.URL, CheckTimeout); err != nil {
		t.Fatalf("node started from a thread that ended: %v\n%s", err, n.LogTail())
	}
	rabbit, epmd := n.Pids()
	for _, pid := range []int{rabbit, epmd} {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("node process %d: %v", pid, err)
		}
	}
}
