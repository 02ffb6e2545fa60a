// Package benchkit holds what every variant's tests and benchmarks share:
// the unit metadata benchstat and the gate read, metric reporting, and
// parameters read from the environment.
package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/benchunits"
	"github.com/natspipe/natspipe/internal/rabbittest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/trace"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// PrintUnits writes the custom units' directions (benchunits.Directions)
// to w as benchfmt unit metadata lines, for benchstat and the gate. Print
// them once per benchmark binary (Main does).
func PrintUnits(w io.Writer) {
	// A write error is ignored: the lines only annotate the benchmark's
	// output, and PrintUnits has never reported one.
	_ = benchunits.WriteMetadata(w)
}

// Main is a TestMain body: it checks the parameter variables (CheckEnv)
// and, when benchmarks run, that NATSPIPE_TRACE's directory is writable,
// then prints the unit metadata when benchmarks run and runs the tests. A
// bad variable stops the binary with status 2 before any test starts, the
// variable, its value and what is wanted on stderr. A RabbitMQ node the
// tests started (internal/rabbittest.Shared, through internal/brokertest)
// is stopped after them.
func Main(m *testing.M) int { return rabbittest.Main(m, run) }

// run is Main before the shared broker is stopped.
func run(m *testing.M) int {
	err := CheckEnv(nil)
	if err == nil && benchrun.Active() {
		dir, derr := trace.DirFromEnv(nil)
		if derr != nil {
			err = derr
		} else if dir != "" {
			if perr := trace.ProbeDir(dir); perr != nil {
				err = fmt.Errorf("%s=%q: %w", trace.EnvTrace, dir, perr)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "parameters: %v\n", err)
		return 2
	}
	if benchrun.Active() {
		PrintUnits(os.Stdout)
	}
	return m.Run()
}

// CheckEnv checks every parameter variable the model reads for tests and
// benchmarks: NATSPIPE_CLOCK, NATSPIPE_DURATIONS, NATSPIPE_WORK,
// NATSPIPE_PAYLOAD, NATSPIPE_SLOWDOWN (against the default spec when
// NATSPIPE_DURATIONS is unset), NATSPIPE_WINDOW, NATSPIPE_INFLIGHT,
// NATSPIPE_CONCURRENCY, NATSPIPE_TIMEOUT, NATSPIPE_TRANSPORT, NATSPIPE_SWEEP
// and NATSPIPE_TOPOLOGY, each against its bounds
// (see pipelines.MaxWindow and the others). The error names every bad
// variable. getenv nil reads the process environment. NATSPIPE_ALLOC and
// NATSPIPE_MODE are P4's and the worker's, checked where they are read.
func CheckEnv(getenv pipelines.Getenv) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(pipelines.CheckClockEnv(getenv))
	_, err := pipelines.SpecFromEnv(pipelines.DefaultSpec(), getenv)
	add(err)
	for _, name := range []string{pipelines.EnvWindow, pipelines.EnvInflight, pipelines.EnvConcurrency} {
		_, err := pipelines.IntFromEnv(getenv, name, 0)
		add(err)
	}
	_, err = pipelines.DurationFromEnv(getenv, pipelines.EnvTimeout, 0)
	add(err)
	_, err = transports.FromEnv(getenv)
	add(err)
	_, err = FullSweep(getenv)
	add(err)
	_, err = Topologies(getenv)
	add(err)
	return errors.Join(errs...)
}

// Report reports res's metrics on b (benchunits.Metrics): msgs/s (steady
// state), p50-ms, p90-ms, p99-ms and eff (throughput / bound, when the
// bound is known).
func Report(b *testing.B, res *pipelines.Result) {
	for _, m := range benchunits.Metrics(res) {
		b.ReportMetric(m.Value, m.Unit)
	}
}

// Spec reads the pipeline spec from the environment over base, failing tb on
// a bad value.
func Spec(tb testing.TB, base pipelines.Spec) pipelines.Spec {
	tb.Helper()
	if err := pipelines.CheckClockEnv(nil); err != nil {
		tb.Fatalf("parameters: %v", err)
	}
	s, err := pipelines.SpecFromEnv(base, nil)
	if err != nil {
		tb.Fatalf("parameters: %v", err)
	}
	return s
}

// Int reads a non-negative integer parameter from the environment, held to
// its bound (pipelines.IntFromEnv).
func Int(tb testing.TB, name string, def int) int {
	tb.Helper()
	n, err := pipelines.IntFromEnv(nil, name, def)
	if err != nil {
		tb.Fatalf("parameters: %v", err)
	}
	return n
}

// Timeout reads NATSPIPE_TIMEOUT, 0 (derived per run) when unset.
func Timeout(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := pipelines.DurationFromEnv(nil, pipelines.EnvTimeout, 0)
	if err != nil {
		tb.Fatalf("parameters: %v", err)
	}
	return d
}

// Bench runs b.N messages through s with r, timing only the run, and reports
// the metrics after the timed section. Setup belongs before it.
func Bench(b *testing.B, r *pipelines.Runner, s pipelines.Sender) *pipelines.Result {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	res, err := r.Run(context.Background(), s, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatalf("%v", err)
	}
	Report(b, res)
	// NATSPIPE_TRACE=<dir> writes the run's trace there; unset, nothing happens.
	if _, err := trace.WriteEnv(nil, b.Name(), res, s); err != nil {
		b.Fatalf("%v", err)
	}
	return res
}

// Once returns a function that runs setup the first time it is called and
// returns its value every time: for fixtures shared by the calls testing.B
// makes while it ramps b.N.
func Once[T any](setup func() T) func() T {
	var v T
	var done bool
	return func() T {
		if !done {
			v, done = setup(), true
		}
		return v
	}
}

// CheckLeaks makes t fail if any goroutine it started outlives it. Call it
// first in the test, so its check runs after every other cleanup.
func CheckLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// A RabbitMQ node shared by the binary's tests (rabbittest.Shared)
		// may start in this test and outlive it, by design.
		if err := goleak.Find(before, goleak.IgnoreAnyFunction(rabbittest.SpawnerFunc)); err != nil {
			t.Errorf("goroutines outlived the test: %v", err)
		}
	})
}

// Exit runs Main and exits with its code: TestMain's whole body.
func Exit(m *testing.M) { os.Exit(Main(m)) }

// Attach connects the harness to the server conn names for a run of r's
// spec under subjects over core NATS, with r as the sink, and closes it in
// tb's Cleanup.
func Attach(tb testing.TB, conn natsconn.Config, subjects bus.Subjects, r *pipelines.Runner) *router.Endpoint {
	tb.Helper()
	return AttachOn(tb, conn, nil, transport.Run{Subjects: subjects, Stages: r.Config().Spec.Stages()}, r)
}

// AttachOn is Attach over transport tr (nil: core) for run.
func AttachOn(tb testing.TB, conn natsconn.Config, tr transport.Transport, run transport.Run, r *pipelines.Runner) *router.Endpoint {
	tb.Helper()
	ep, err := router.Attach(conn, tr, run, r)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if err := ep.Close(); err != nil {
			tb.Errorf("close harness: %v", err)
		}
	})
	return ep
}

// Closer is anything with Close() error, closed in tb's Cleanup by Cleanup.
type Closer interface{ Close() error }

// Cleanup closes c when tb ends, failing tb if that fails.
func Cleanup(tb testing.TB, what string, c Closer) {
	tb.Helper()
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("close %s: %v", what, err)
		}
	})
}

// EnvSweep = "full" makes the benchmarks sweep their expensive axes in
// full (P4's cpu work at every allocation, BenchmarkOverhead's every
// variant over every transport, P2's every cpu in-flight limit). Unset,
// they run what tells the study's story, so that go test -bench=. ./...
// stays under 3 minutes on a 2-core machine.
const EnvSweep = "NATSPIPE_SWEEP"

// FullSweep reports whether EnvSweep asks for the full sweep. Any value
// but "" and "full" is an error (see CheckEnv).
func FullSweep(getenv pipelines.Getenv) (bool, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	switch v := getenv(EnvSweep); v {
	case "":
		return false, nil
	case "full":
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q: want \"full\" or unset", EnvSweep, v)
	}
}

// Full is FullSweep for a benchmark: a bad value fails tb.
func Full(tb testing.TB) bool {
	tb.Helper()
	full, err := FullSweep(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return full
}

// EnvTopology selects where BenchmarkOverhead's messages travel: "single"
// (one server, the default), "cluster3" (an embedded 3-node cluster, the
// worker processes of each stage on another node than the stage before,
// so every hop crosses a route) or "all" (both, in one run). Benchmarks
// name it with the key topology=, so benchstat -col /topology lays the
// two side by side.
const EnvTopology = "NATSPIPE_TOPOLOGY"

// The topologies of EnvTopology.
const (
	TopologySingle   = "single"
	TopologyCluster3 = "cluster3"
)

// Topologies reads EnvTopology: the topologies to run, single when unset.
// Any value but "", "single", "cluster3" and "all" is an error (see
// CheckEnv).
func Topologies(getenv pipelines.Getenv) ([]string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	switch v := getenv(EnvTopology); v {
	case "", TopologySingle:
		return []string{TopologySingle}, nil
	case TopologyCluster3:
		return []string{TopologyCluster3}, nil
	case "all":
		return []string{TopologySingle, TopologyCluster3}, nil
	default:
		return nil, fmt.Errorf("%s=%q: want %q, %q, \"all\" or unset", EnvTopology, v, TopologySingle, TopologyCluster3)
	}
}

// EnvQueueing switches on the tests that hold measurements against theory
// (queue waits, latency percentiles, utilizations): they hold only on a
// machine not busy with other work, since CPU contention stretches service
// times and bunches arrivals. CI runs them in a step of their own, one
// package at a time. Everything else in go test ./... holds on a loaded
// machine.
const EnvQueueing = "NATSPIPE_QUEUEING"

// QuietOnly skips t unless EnvQueueing is "1"; run names the command that
// runs it.
func QuietOnly(t *testing.T, run string) {
	t.Helper()
	if os.Getenv(EnvQueueing) != "1" {
		t.Skipf("needs a quiet machine: %s=1 %s", EnvQueueing, run)
	}
}

// Topology is Topologies for a benchmark: a bad value fails tb.
func Topology(tb testing.TB) []string {
	tb.Helper()
	ts, err := Topologies(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}
