package benchrun_test

import (
	"flag"
	"testing"

	"github.com/natspipe/natspipe/internal/benchrun"
)

// Active follows -test.bench: false in go test, true under -bench.
func TestActive(t *testing.T) {
	want := flag.Lookup("test.bench").Value.String() != ""
	if got := benchrun.Active(); got != want {
		t.Errorf("Active() = %v with -test.bench=%q", got, flag.Lookup("test.bench").Value)
	}
	benchrun.SkipTest(t, "benchrun: this test")
	if want {
		t.Error("SkipTest did not skip in a benchmark run")
	}
}
