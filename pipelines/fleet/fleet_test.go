package fleet

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func TestMain(m *testing.M) {
	worker.Dispatch() // the test binary doubles as the worker process
	os.Exit(benchkit.Main(m))
}

func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep}
}

func TestFleetReadyTimeoutNamesWorkers(t *testing.T) {
	srv := natstest.Start(t)
	start := time.Now()
	_, err := Start(context.Background(), Config{
		Spec: testSpec(), Variant: "hang",
		Processes: Processes{
			NATS: srv.Conn, Subjects: bus.NewSubjects(), ReadyTimeout: time.Second,
			// A "worker" that never announces itself.
			Launcher: Launcher{Path: "/bin/sh", Args: []string{"-c", "echo 'warming up forever' >&2; exec sleep 30", "sh"}},
		},
	}, nil)
	if err == nil {
		t.Fatal("fleet of silent workers became ready")
	}
	for _, want := range []string{"4 of 4 workers not ready after 1s", "hang-S1-w1", "hang-S4-w1", "warming up forever"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestFleetStatsAndStop(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Start(context.Background(), Config{
		Processes: Processes{NATS: srv.Conn, Subjects: bus.NewSubjects(), Launcher: self},
		Spec:      testSpec(), Alloc: []int{1, 2, 1, 1}, Variant: "t",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Startup() <= 0 || len(f.Workers()) != 5 {
		t.Errorf("startup %v, workers %v", f.Startup(), f.Workers())
	}
	st, err := f.Stats(context.Background())
	if err != nil || len(st) != 5 || st[2].Name != "t-S2-w2" {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if _, err := f.Kill("t-S2-w1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kill("nobody"); err == nil {
		t.Error("killed a worker that does not exist")
	}
	final, err := f.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(final) != 4 || f.Err() != nil {
		t.Errorf("final %+v, err %v", final, f.Err())
	}
	for _, s := range final {
		if !s.Stopped {
			t.Errorf("%s not stopped", s.Name)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if left := f.Leftovers(); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}

// TestFleetStopAfterServerGone: with the server gone, a stop cannot ask the
// workers anything. It says so, kills them instead of waiting out every
// stage's timeout, and Close, whose job is that no worker outlives the
// fleet, does not fail on it (the run was told of the loss when it
// happened). The shutdown comes just before the stop, so the fleet's
// connection may not yet know it is gone when the stop begins.
func TestFleetStopAfterServerGone(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	if srv.External {
		t.Skip("the server is NATS_URL's: not ours to shut down")
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Start(context.Background(), Config{
		Processes: Processes{NATS: srv.Conn, Subjects: bus.NewSubjects(), Launcher: self},
		Spec:      testSpec(), Variant: "t",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = f.Stop(ctx)
	if !errors.Is(err, errConnectionLost) {
		t.Fatalf("stop with the server gone: %v, want %v", err, errConnectionLost)
	}
	if ctx.Err() != nil {
		t.Fatal("stop waited out its whole bound")
	}
	if err := f.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if left := f.Leftovers(); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}

func TestShares(t *testing.T) {
	ids := []WorkerID{{0, 0, "a"}, {1, 0, "b1"}, {1, 1, "b2"}, {1, 2, "b3"}, {1, 3, "b4"}}
	before := []worker.Stats{{Name: "b1", Handled: 10}}
	after := []worker.Stats{{Name: "a", Handled: 100}, {Name: "b1", Handled: 40}, {Name: "b2", Handled: 25}, {Name: "b3", Handled: 25}, {Name: "b4", Handled: 20}}
	sh := Shares(ids, Handled(before, after))
	if sh[0].Share != 1 || sh[1].Share != 0.3 || sh[4].Share != 0.2 || sh[1].MetricName() != "s2-w1-share" {
		t.Errorf("shares %+v", sh)
	}
	if im := Imbalance(sh, 1); math.Abs(im-0.2) > 1e-9 {
		t.Errorf("imbalance %v, want 0.2", im)
	}
	if im := Imbalance(sh, 7); !math.IsNaN(im) {
		t.Errorf("imbalance of no workers %v", im)
	}
	if s := FormatShares(sh); !strings.Contains(s, "S2: b1 handled 30 (30.0%)") || strings.Contains(s, "S1") {
		t.Errorf("FormatShares: %q", s)
	}
}

func TestWindowAndCapacity(t *testing.T) {
	seed := pipelines.DefaultSpec()
	c := Capacity([]int{1, 4, 1, 1}, 2)
	if !slices.Equal(c.PerStage, []int{2, 8, 2, 2}) || c.Cores < 1 {
		t.Errorf("capacity %+v", c)
	}
	base := pipelines.DefaultWindow(seed, 100)
	if w := Window(seed, []int{1, 4, 1, 1}, 1, 100); w != base+16+2+2+2 {
		t.Errorf("window %d, want %d", w, base+22)
	}
	if w := Window(seed, []int{1, 1, 1, 1}, 1, math.Inf(1)); w != pipelines.DefaultWindow(seed, math.Inf(1)) {
		t.Errorf("window for an unknown bound %d", w)
	}
}
