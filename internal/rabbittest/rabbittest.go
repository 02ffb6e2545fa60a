// Package rabbittest gives tests and benchmarks a RabbitMQ broker, as
// internal/natstest gives them a NATS server: the broker RABBITMQ_URL
// names, when set, after checking that it answers; otherwise a private
// node of the installed rabbitmq-server (the Debian package, see
// scripts/install-brokers.sh), started in a temporary directory on free
// loopback ports and stopped, with its epmd, when the test binary ends.
//
// A node takes some 6 s to start, so a test binary shares one, started by
// the first test that asks (Shared). Its TestMain stops it:
//
//	func TestMain(m *testing.M) { os.Exit(rabbittest.Main(m, benchkit.Main)) }
//
// When neither RABBITMQ_URL nor the program is there, a test that asks
// for a broker is skipped with Unavailable's one line, or fails with it
// when NATSPIPE_REQUIRE_BROKERS lists "amqp" (CI sets it, so that amqp
// tests cannot skip silently).
package rabbittest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
)

// Environment variables.
const (
	// EnvURL names an external broker to use instead of a private node.
	EnvURL = amqp.EnvURL
	// EnvRequire is a comma-separated list of brokers whose tests must
	// not skip; with "amqp" in it a missing RabbitMQ fails the test.
	EnvRequire = "NATSPIPE_REQUIRE_BROKERS"
)

// Unavailable is the one line a test is skipped (or failed) with when no
// broker can be had.
const Unavailable = "amqp: no RabbitMQ server: install the Debian package rabbitmq-server (scripts/install-brokers.sh) or set RABBITMQ_URL"

// CheckTimeout bounds the check that the broker RABBITMQ_URL names
// answers.
const CheckTimeout = 5 * time.Second

// Program returns the path of the rabbitmq-server program that starts a
// node in the foreground, or "" when none is installed: the Debian
// package's /usr/lib/rabbitmq/bin/rabbitmq-server (not the /usr/sbin
// wrapper, which switches to the rabbitmq user), else rabbitmq-server in
// PATH or /usr/sbin, /usr/local/sbin.
func Program() string {
	if isExec(debianServer) {
		return debianServer
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/rabbitmq-server", "/usr/local/sbin/rabbitmq-server"} {
		if isExec(p) {
			return p
		}
	}
	return ""
}

const debianServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Required reports whether getenv's NATSPIPE_REQUIRE_BROKERS lists amqp.
func Required(getenv func(string) string) bool {
	for _, b := range strings.Split(getenv(EnvRequire), ",") {
		if strings.TrimSpace(b) == amqp.Name {
			return true
		}
	}
	return false
}

// Require skips tb with Unavailable (or fails it, see Required) when
// neither RABBITMQ_URL is set nor rabbitmq-server is installed.
func Require(tb testing.TB) {
	tb.Helper()
	skipInBenchRun(tb)
	if os.Getenv(EnvURL) == "" && Program() == "" {
		unavailable(tb)
	}
}

// RequireProgram is Require for tests that start nodes of their own: it
// needs rabbitmq-server installed, whatever RABBITMQ_URL says.
func RequireProgram(tb testing.TB) string {
	tb.Helper()
	skipInBenchRun(tb)
	p := Program()
	if p == "" {
		unavailable(tb)
	}
	return p
}

// skipInBenchRun skips a test (not a benchmark) in a run of the test
// binary that runs benchmarks (see benchrun): RabbitMQ's tests start nodes
// of seconds each.
func skipInBenchRun(tb testing.TB) {
	tb.Helper()
	benchrun.SkipTest(tb, "amqp: tests")
}

func unavailable(tb testing.TB) {
	tb.Helper()
	if Required(os.Getenv) {
		tb.Fatal(Unavailable)
	}
	tb.Skip(Unavailable)
}

// Check dials url within timeout and opens a channel: an error names the
// URL masked and says why.
func Check(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := amqp.Dial(ctx, url, "natspipe-rabbittest", timeout)
	if err != nil {
		return err
	}
	defer func() { _ = conn.CloseDeadline(time.Now().Add(timeout)) }()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("rabbittest: open a channel on %s: %w", amqp.Mask(url), err)
	}
	return ch.Close()
}

// The test binary's shared broker.
var shared struct {
	mu      sync.Mutex
	started bool
	url     string
	node    *Node
	err     error
}

// Shared returns the URL of the test binary's broker: RABBITMQ_URL's,
// checked once; or a private node, started on the first call and shared
// by every later one until StopShared (Main). Without either, tb is
// skipped (see Require); a broker that fails to start or answer fails tb,
// and every later caller, with the reason.
func Shared(tb testing.TB) string {
	tb.Helper()
	Require(tb)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		if u := os.Getenv(EnvURL); u != "" {
			shared.url = u
			if err := Check(u, CheckTimeout); err != nil {
				shared.err = fmt.Errorf("rabbittest: the broker %s names does not answer: %w", EnvURL, err)
			}
		} else {
			shared.node, shared.err = start(defaultOptions())
			if shared.node != nil {
				shared.url = shared.node.URL
			}
		}
	}
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.url
}

// SharedNode is Shared for tests that act on the node itself (Node.Ctl):
// the shared private node, or nil, after Shared's checks, when the broker
// is RABBITMQ_URL's.
func SharedNode(tb testing.TB) *Node {
	tb.Helper()
	Shared(tb)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.node
}

// StopShared stops the shared node, if one was started: Main calls it.
// Shared starts a new one after it.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	n := shared.node
	shared.started, shared.url, shared.node, shared.err = false, "", nil, nil
	if n == nil {
		return nil
	}
	return n.Stop()
}

// Main is a TestMain body for a test binary that uses Shared: it runs the
// binary's tests with run (benchkit.Main; nil: m.Run), then stops the
// shared node, and returns the exit code: run's, or 1 if stopping the
// node failed.
func Main(m *testing.M, run func(*testing.M) int) int {
	if run == nil {
		run = func(m *testing.M) int { return m.Run() }
	}
	code := run(m)
	if err := StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "rabbittest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Start starts a private node for tb alone, stopped when tb ends: for
// tests that stop or break their broker. It needs rabbitmq-server (see
// RequireProgram); it costs some 6 s.
func Start(tb testing.TB) *Node {
	tb.Helper()
	RequireProgram(tb)
	n, err := start(defaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return n
}

// tail is the last n lines of the file at path, for errors; when the
// file's first error line ([error]) comes before them, it and the lines
// after it (up to n/2) come first: an Erlang crash ends with many lines
// that do not say what went wrong.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(lines) == 0 {
		return "(log empty)"
	}
	from := max(0, len(lines)-n)
	out := lines[from:]
	if first := slices.IndexFunc(lines, func(s string) bool { return strings.Contains(s, "[error]") }); first >= 0 && first < from {
		head := lines[first:min(first+n/2, from)]
		out = append(append(slices.Clip(head), "..."), out...)
	}
	return strings.Join(out, "\n")
}
