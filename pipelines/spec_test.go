package pipelines

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseDurations(t *testing.T) {
	got, err := ParseDurations("10ms, 40ms,10,0.5")
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10 * time.Millisecond, 40 * time.Millisecond, 10 * time.Millisecond, 500 * time.Microsecond}
	if DurationsString(got) != DurationsString(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "10ms,,5ms", "fast", "-3ms"} {
		if _, err := ParseDurations(bad); err == nil {
			t.Errorf("ParseDurations(%q) accepted", bad)
		}
	}
}

func TestSpecFromEnv(t *testing.T) {
	env := map[string]string{EnvDurations: "1ms,2ms", EnvWork: "cpu", EnvPayload: "7"}
	s, err := SpecFromEnv(DefaultSpec(), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s.Stages() != 2 || s.Work != CPU || s.PayloadSize != 7 || s.Sum() != 3*time.Millisecond {
		t.Errorf("got %+v", s)
	}
	for k, v := range map[string]string{EnvDurations: "x", EnvWork: "gpu", EnvPayload: "-1"} {
		_, err := SpecFromEnv(DefaultSpec(), func(q string) string {
			if q == k {
				return v
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v does not name the variable", k, v, err)
		}
	}
}

func TestBound(t *testing.T) {
	s := DefaultSpec()
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9*want }
	if b := s.Bound(Capacity{Shared: 1}); !near(b, 1/0.07) {
		t.Errorf("P1 bound %v, want %v", b, 1/0.07)
	}
	if b := s.Bound(Capacity{PerStage: []int{1, 1, 1, 1}}); !near(b, 25) {
		t.Errorf("P3 bound %v, want 25", b)
	}
	if b := s.Bound(Capacity{PerStage: []int{1, 4, 1, 1}}); !near(b, 100) {
		t.Errorf("P4 1-4-1-1 bound %v, want 100", b)
	}
	s.Work = CPU
	if b := s.Bound(Capacity{Shared: 64, Cores: 2}); !near(b, 2/0.07) {
		t.Errorf("P2 cpu bound %v, want %v", b, 2/0.07)
	}
	zero := Spec{Durations: []time.Duration{0, 0}, Work: Sleep}
	if b := zero.Bound(Capacity{Shared: 1}); !math.IsInf(b, 1) {
		t.Errorf("zero-duration bound %v, want +Inf", b)
	}
	if s.Bottleneck() != 1 {
		t.Errorf("bottleneck %d, want 1", s.Bottleneck())
	}
}

func TestWorkNeverShort(t *testing.T) {
	for _, m := range []WorkModel{Sleep, CPU} {
		for _, d := range []time.Duration{0, 50 * time.Microsecond, 2 * time.Millisecond} {
			start := time.Now()
			if err := DoWork(context.Background(), m, d); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got < d {
				t.Errorf("%s %v finished after %v", m, d, got)
			}
		}
	}
}

func TestWorkCancels(t *testing.T) {
	for _, m := range []WorkModel{Sleep, CPU} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		err := DoWork(ctx, m, time.Minute)
		cancel()
		if err == nil {
			t.Errorf("%s: cancelled work returned nil", m)
		}
	}
	if err := DoWork(context.Background(), "gpu", time.Millisecond); err == nil {
		t.Error("unknown model accepted")
	}
}
