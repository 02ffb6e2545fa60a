package pipelines

import (
	"math"
	"testing"
)

func TestSteadyThroughput(t *testing.T) {
	const ms = int64(1e6)
	uniform := make([]int64, 100)
	for i := range uniform {
		uniform[i] = int64(i+1) * 10 * ms // 100 msgs/s
	}
	if got := SteadyThroughput(uniform, 0, 8); math.Abs(got-100) > 1e-9 {
		t.Errorf("uniform: %v msgs/s, want 100", got)
	}
	// Bursts of three every 30 ms: still 100 msgs/s on average, whichever
	// completions the middle 80% starts and ends on.
	for shift := range 3 {
		burst := make([]int64, 0, 100)
		for i := shift; len(burst) < 100; i++ {
			burst = append(burst, int64(i/3)*30*ms+int64(i%3)*ms/10)
		}
		if got := SteadyThroughput(burst, 0, 3); math.Abs(got-100) > 1.5 {
			t.Errorf("bursts (shift %d): %v msgs/s, want 100 within 1.5", shift, got)
		}
	}
	// A slow fill and drain (the first and last 10%) do not count.
	slow := make([]int64, 100)
	at := int64(0)
	for i := range slow {
		step := 10 * ms
		if i < 10 || i >= 90 {
			step = 100 * ms
		}
		at += step
		slow[i] = at
	}
	if got := SteadyThroughput(slow, 0, 0); math.Abs(got-100) > 1e-9 {
		t.Errorf("fill and drain: %v msgs/s, want 100", got)
	}
	if got := SteadyThroughput([]int64{50 * ms, 100 * ms}, 0, 1); got != 20 {
		t.Errorf("two completions in 100 ms: %v msgs/s, want 20", got)
	}
	// All in flight at once (window 64, 60 messages): no steady state, so
	// the whole run counts: 60 messages in 600 ms.
	if got := SteadyThroughput(uniform[:60], 0, 64); math.Abs(got-100) > 1e-9 {
		t.Errorf("no steady state: %v msgs/s, want 100", got)
	}
	if got := SteadyThroughput(nil, 0, 0); got != 0 {
		t.Errorf("none: %v", got)
	}
}

func TestPeakOverlap(t *testing.T) {
	r := func(start, end int64) StageRecord { return StageRecord{Started: start, Finished: end} }
	cases := []struct {
		recs []StageRecord
		want int
	}{
		{nil, 0},
		{[]StageRecord{r(0, 10), r(10, 20), r(20, 30)}, 1}, // touching is not overlapping
		{[]StageRecord{r(0, 10), r(5, 15), r(6, 7)}, 3},
		{[]StageRecord{r(0, 10), r(5, 15), r(12, 20)}, 2},
	}
	for i, c := range cases {
		if got := PeakOverlap(c.recs); got != c.want {
			t.Errorf("case %d: peak %d, want %d", i, got, c.want)
		}
	}
}

func TestFormatRedeliveries(t *testing.T) {
	got := FormatRedeliveries(map[string]int{"done": 1, "S10": 2, "S2": 3})
	if want := "S2=3 S10=2 done=1"; got != want {
		t.Fatalf("FormatRedeliveries: %q, want %q", got, want)
	}
}
