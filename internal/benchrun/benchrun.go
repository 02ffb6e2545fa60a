// Package benchrun tells a test whether its test binary is running
// benchmarks (go test -bench=...), so that the slow fault-injection tests
// (killed workers, restarted servers, brokers) run in go test ./... and CI
// but not in the main job, go test -bench=. ./..., which must stay a
// benchmark run of a few minutes.
package benchrun

import (
	"flag"
	"testing"
)

// Active reports whether the test binary was asked to run benchmarks
// (-test.bench is set).
func Active() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// SkipTest skips tb, a test (never a benchmark), in a benchmark run, saying
// what it is (e.g. "fault injection") and that go test ./... runs it.
func SkipTest(tb testing.TB, what string) {
	tb.Helper()
	if _, bench := tb.(*testing.B); bench {
		return
	}
	if Active() {
		tb.Skipf("%s: skipped in a benchmark run (-bench); go test ./... runs it", what)
	}
}
