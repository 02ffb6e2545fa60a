package p0_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p0"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{time.Millisecond, 4 * time.Millisecond, time.Millisecond, time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 16}
}

func run(t *testing.T, spec pipelines.Spec, n int) *pipelines.Result {
	t.Helper()
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p0", Bound: p0.Bound(spec)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := p0.New(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), p, n)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestP0EveryMessageEveryStage(t *testing.T) {
	benchkit.CheckLeaks(t)
	spec := testSpec()
	res := run(t, spec, 40)
	if res.Completed != 40 || len(res.Lost) != 0 || res.Duplicates != 0 || len(res.Violations) != 0 {
		t.Fatalf("completed %d lost %v dup %d violations %v", res.Completed, res.Lost, res.Duplicates, res.Violations)
	}
	ids := map[string]bool{}
	for seq, rec := range res.Records {
		if rec.Seq != uint64(seq) || ids[rec.ID] {
			t.Fatalf("record %d: seq %d id %s (seen %v)", seq, rec.Seq, rec.ID, ids[rec.ID])
		}
		ids[rec.ID] = true
		for i, st := range rec.Stages {
			if d := time.Duration(st.Finished - st.Started); d < spec.Durations[i] {
				t.Errorf("seq %d stage %d worked %v < %v", seq, i+1, d, spec.Durations[i])
			}
		}
	}
	// Sequential: no two messages overlap anywhere.
	for i := 1; i < len(res.Records); i++ {
		prev, cur := res.Records[i-1], res.Records[i]
		if cur.Stages[0].Started < prev.Stages[len(prev.Stages)-1].Finished {
			t.Errorf("seq %d started before seq %d finished", i, i-1)
		}
	}
	// Throughput can never beat the bound: no stage finishes early.
	if res.Throughput > res.Bound*1.02 {
		t.Errorf("throughput %.1f above bound %.1f", res.Throughput, res.Bound)
	}
}

// Allocations per message do not grow with the number of messages.
func TestP0AllocsFlat(t *testing.T) {
	spec := testSpec()
	spec.Durations = []time.Duration{0, 0, 0, 0}
	perMsg := func(n int) float64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		run(t, spec, n)
		runtime.ReadMemStats(&b)
		return float64(b.Mallocs-a.Mallocs) / float64(n)
	}
	small, large := perMsg(500), perMsg(5000)
	t.Logf("allocs/msg: %.1f at 500, %.1f at 5000", small, large)
	if large > small*1.25+1 {
		t.Errorf("allocs per message grow: %.1f at 500 messages, %.1f at 5000", small, large)
	}
}

func BenchmarkP0(b *testing.B) {
	base := benchkit.Spec(b, pipelines.DefaultSpec())
	for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
		spec := base
		spec.Work = work
		b.Run("work="+string(work), func(b *testing.B) {
			r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p0", Bound: p0.Bound(spec), Timeout: benchkit.Timeout(b)})
			if err != nil {
				b.Fatal(err)
			}
			p, err := p0.New(spec, r)
			if err != nil {
				b.Fatal(err)
			}
			benchkit.Bench(b, r, p)
		})
	}
}
