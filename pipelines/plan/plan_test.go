package plan

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func seedModel() Model {
	return Model{Spec: pipelines.DefaultSpec(), Mode: worker.Sync, Dispatch: Random, Arrivals: pipelines.Poisson}
}

// TestSeedSevenWorkers: for the study's pipeline and 7 workers the planner
// chooses 1-4-1-1, the only allocation at 100 msgs/s.
func TestSeedSevenWorkers(t *testing.T) {
	ps, err := seedModel().Rank(7, Load{Fraction: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 20 || Count(7, 4) != 20 {
		t.Fatalf("%d allocations (Count %v), want C(6,3) = 20", len(ps), Count(7, 4))
	}
	if ps[0].Alloc.String() != "1-4-1-1" || ps[0].Bound != 100 || ps[1].Bound != 75 {
		t.Errorf("first %s at %v, second at %v: want 1-4-1-1 at 100, then 75", ps[0].Alloc, ps[0].Bound, ps[1].Bound)
	}
	if ps[0].Rate != 80 || math.IsInf(ps[0].Latency, 1) || !math.IsInf(ps[1].Latency, 1) {
		t.Errorf("latency at %v msgs/s: %v, then %v (S2 over capacity)", ps[0].Rate, ps[0].Latency, ps[1].Latency)
	}
	seen := map[string]bool{}
	for i, p := range ps {
		if p.Alloc.Total() != 7 || seen[p.Alloc.String()] {
			t.Errorf("allocation %s: %d workers or seen twice", p.Alloc, p.Alloc.Total())
		}
		seen[p.Alloc.String()] = true
		if i > 0 && p.Bound > ps[i-1].Bound {
			t.Errorf("rank %d (%v) above rank %d (%v)", i+1, p.Bound, i, ps[i-1].Bound)
		}
	}
}

// TestFormulas holds the queueing pieces to closed forms: Erlang C, M/M/1
// and M/D/1 (Pollaczek-Khinchine) waits, and random against shared dispatch.
func TestFormulas(t *testing.T) {
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	near("ErlangC(1, 0.5)", ErlangC(1, 0.5), 0.5)
	near("ErlangC(2, 1)", ErlangC(2, 1), 1.0/3)
	ms := time.Millisecond
	exp, _ := pipelines.ExponentialTime(10 * ms)
	one := func(st pipelines.ServiceTime, rate float64) Prediction {
		spec := pipelines.Spec{Work: pipelines.Sleep}
		spec.SetTimes([]pipelines.ServiceTime{st})
		return Model{Spec: spec, Dispatch: Random}.Predict(p4.Alloc{1}, rate)
	}
	// rho 0.8: M/M/1 wait rho/(mu - lambda) = 0.8/20 s; M/D/1 half of it.
	near("M/M/1 wait", one(exp, 80).Stages[0].Wait, 0.04)
	near("M/D/1 wait", one(pipelines.ConstantTime(10*ms), 80).Stages[0].Wait, 0.02)
	near("M/M/1 latency", one(exp, 80).Latency, 0.05)
	// M/M/2 (shared) at a = 1: C = 1/3, wait C/(2 mu - lambda) = (1/3)/100 s.
	spec := pipelines.Spec{Work: pipelines.Sleep}
	spec.SetTimes([]pipelines.ServiceTime{exp})
	shared := Model{Spec: spec, Dispatch: Shared}.Predict(p4.Alloc{2}, 100)
	random := Model{Spec: spec, Dispatch: Random}.Predict(p4.Alloc{2}, 100)
	near("M/M/2 wait", shared.Stages[0].Wait, 1.0/300)
	near("random split: two M/M/1 at 50/s", random.Stages[0].Wait, 0.5/50)
	if !(shared.Latency < random.Latency) {
		t.Errorf("shared dispatch %v not faster than random %v", shared.Latency, random.Latency)
	}
}

// TestTarget: the fewest workers reaching a rate, and no fewer can.
func TestTarget(t *testing.T) {
	m := seedModel()
	a, err := m.Target(150)
	if err != nil || a.String() != "2-6-2-2" {
		t.Fatalf("target 150: %v, %v; want 2-6-2-2", a, err)
	}
	ps, err := m.Rank(a.Total()-1, Load{Rate: 100})
	if err != nil || ps[0].Bound >= 150 {
		t.Errorf("%d workers reach %v msgs/s (%v)", a.Total()-1, ps[0].Bound, err)
	}
	if a, err := m.Target(100); err != nil || a.String() != "1-4-1-1" {
		t.Errorf("target 100: %v, %v", a, err)
	}
	if _, err := m.Target(1e6); err == nil {
		t.Error("target past the worker limits accepted")
	}
}

func TestAllocations(t *testing.T) {
	var got []string
	Allocations(4, 2, func(a p4.Alloc) bool { got = append(got, a.String()); return true })
	if !slices.Equal(got, []string{"1-3", "2-2", "3-1"}) {
		t.Errorf("allocations of 4 over 2: %v", got)
	}
	if _, err := seedModel().Rank(3, Load{Fraction: 0.5}); err == nil {
		t.Error("3 workers for 4 stages accepted")
	}
	if Count(7, 4) != 20 || Count(3, 4) != 0 {
		t.Errorf("Count(7, 4) = %v, Count(3, 4) = %v", Count(7, 4), Count(3, 4))
	}
	ten := pipelines.Spec{Durations: make([]time.Duration, 10), Work: pipelines.Sleep}
	if _, err := (Model{Spec: ten}).Rank(200, Load{Rate: 1}); err == nil {
		t.Errorf("%.3g allocations enumerated, more than MaxAllocations", Count(200, 10))
	}
}
