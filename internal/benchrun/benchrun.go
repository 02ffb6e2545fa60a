// Package benchrun tells a test binary's code whether the run is a
// benchmark run (-test.bench set), so that tests which start expensive
// fixtures (RabbitMQ nodes, NATS clusters) skip in the main job,
// go test -bench=. ./..., which must stay under its 3 minutes, and run in
// go test ./... and CI. It is a leaf: any test helper can import it.
package benchrun

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// Active reports whether the test binary runs benchmarks: -test.bench is
// set to a pattern. Before the flags are parsed (in TestMain) it reads
// the command line.
func Active() bool {
	if f := flag.Lookup("test.bench"); f != nil && flag.Parsed() {
		return f.Value.String() != ""
	}
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.bench=") && a != "-test.bench=" {
			return true
		}
	}
	return false
}

// SkipTest skips tb, a test (a benchmark goes on), in a benchmark run,
// saying what it is (e.g. "fault injection") and that go test ./... runs
// it.
func SkipTest(tb testing.TB, what string) {
	tb.Helper()
	if _, bench := tb.(*testing.B); bench {
		return
	}
	if Active() {
		tb.Skipf("%s: skipped in a benchmark run (-bench); go test ./... runs it", what)
	}
}
