package benchrun_test

import (
	"flag"
	"testing"

	"github.com/natspipe/natspipe/internal/benchrun"
)

func TestActiveFollowsBenchFlag(t *testing.T) {
	f := flag.Lookup("test.bench")
	if f == nil {
		t.Fatal("no -test.bench flag in a test binary")
	}
	old := f.Value.String()
	t.Cleanup(func() { _ = f.Value.Set(old) })
	if err := f.Value.Set(""); err != nil {
		t.Fatal(err)
	}
	if benchrun.Active() {
		t.Error("Active with -test.bench empty")
	}
	if err := f.Value.Set("."); err != nil {
		t.Fatal(err)
	}
	if !benchrun.Active() {
		t.Error("not Active with -test.bench=.")
	}
}

func TestSkipTestSkipsInBenchRun(t *testing.T) {
	f := flag.Lookup("test.bench")
	old := f.Value.String()
	t.Cleanup(func() { _ = f.Value.Set(old) })
	if err := f.Value.Set("."); err != nil {
		t.Fatal(err)
	}
	ran := false
	t.Run("inner", func(t *testing.T) {
		benchrun.SkipTest(t, "fault injection")
		ran = true
	})
	if ran {
		t.Error("SkipTest did not skip with -test.bench set")
	}
	if err := f.Value.Set(""); err != nil {
		t.Fatal(err)
	}
	t.Run("inner", func(t *testing.T) {
		benchrun.SkipTest(t, "fault injection")
		ran = true
	})
	if !ran {
		t.Error("SkipTest skipped without -test.bench")
	}
}
