package pipelines

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseServiceTime(t *testing.T) {
	dir := t.TempDir()
	emp := filepath.Join(dir, "times.txt")
	if err := os.WriteFile(emp, []byte("# measured\n2ms\n4ms\n\n6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in, str   string
		dist      Dist
		mean, cv2 float64
	}{
		{"10ms", "10ms", Constant, 0.010, 0},
		{"2.5", "2.5ms", Constant, 0.0025, 0},
		{"exp(5ms)", "exp(5ms)", Exponential, 0.005, 1},
		{"exponential( 5ms )", "exp(5ms)", Exponential, 0.005, 1},
		{"lognormal(5ms,cv=1.5)", "lognormal(5ms,cv=1.5)", Lognormal, 0.005, 2.25},
		{"uniform(2ms,8ms)", "uniform(2ms,8ms)", Uniform, 0.005, (0.006 * 0.006 / 12) / (0.005 * 0.005)},
		{"empirical(" + emp + ")", "empirical(" + emp + ")", Empirical, 0.004, (8.0 / 3 * 1e-6) / (0.004 * 0.004)},
	} {
		st, err := ParseServiceTime(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if st.Dist() != c.dist || st.String() != c.str || math.Abs(st.Mean()-c.mean) > 1e-12 || math.Abs(st.CV2()-c.cv2) > 1e-9 {
			t.Errorf("%s: %s %s mean %v cv2 %v, want %s %s %v %v", c.in, st.Dist(), st, st.Mean(), st.CV2(), c.dist, c.str, c.mean, c.cv2)
		}
		back, err := ParseServiceTime(st.String())
		if err != nil || back.String() != st.String() || back.Mean() != st.Mean() {
			t.Errorf("%s: round trip %v, %v", c.in, back, err)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"-5ms", `negative duration "-5ms"`},
		{"exp(0)", "exp mean 0s: must be > 0"},
		{"exp(5ms,2)", "want exp(MEAN)"},
		{"lognormal(5ms,cv=-1)", "lognormal cv -1: must be > 0"},
		{"lognormal(5ms,sd=1)", "want lognormal(MEAN,cv=X)"},
		{"lognormal(5ms,p99=4ms)", "p99 4ms: must be > the mean 5ms"},
		{"lognormal(5ms,p99=500ms)", "at most 14.97 x the mean"},
		{"uniform(8ms,2ms)", "uniform(8ms,2ms): high 2ms must be >= low 8ms"},
		{"gamma(5ms)", `unknown distribution "gamma"`},
		{"exp(5ms", "missing closing parenthesis"},
		{"empirical(" + filepath.Join(dir, "none") + ")", "no such file"},
	} {
		if _, err := ParseServiceTime(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestParseServiceTimes(t *testing.T) {
	ts, err := ParseServiceTimes("10ms, uniform(2ms,8ms),exp(40ms),10")
	if err != nil {
		t.Fatal(err)
	}
	if got := ServiceTimesString(ts); got != "10ms,uniform(2ms,8ms),exp(40ms),10ms" {
		t.Errorf("got %s", got)
	}
	if _, err := ParseDurations("10ms,exp(5ms)"); err == nil || !strings.Contains(err.Error(), "stage S2: exp(5ms): want a constant time") {
		t.Errorf("ParseDurations with a distribution: %v", err)
	}
	var s Spec
	s.SetTimes(ts)
	if want := []time.Duration{10e6, 5e6, 40e6, 10e6}; !slices.Equal(s.Durations, want) || len(s.Service) != 4 {
		t.Errorf("SetTimes: durations %v, service %v", s.Durations, s.Service)
	}
	s.Work = Sleep
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Durations[2] = 20e6
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "stage S3: exp(40ms) has mean 40ms, Durations says 20ms") {
		t.Errorf("mismatch: %v", err)
	}
	s.SetTimes([]ServiceTime{ConstantTime(1e6)})
	if s.Service != nil {
		t.Errorf("all constant: Service %v, want nil", s.Service)
	}
}

// TestDrawMoments draws many samples of each distribution and compares their
// mean and variance with Mean and Var (a fixed seed: the same draws each run).
func TestDrawMoments(t *testing.T) {
	exp, _ := ExponentialTime(5 * time.Millisecond)
	ln, _ := LognormalTime(5*time.Millisecond, 1.5)
	lp, _ := LognormalTimeP99(5*time.Millisecond, 40*time.Millisecond)
	uni, _ := UniformTime(2*time.Millisecond, 8*time.Millisecond)
	emp, _ := EmpiricalTime([]time.Duration{1e6, 2e6, 9e6}, "x")
	for _, st := range []ServiceTime{ConstantTime(3 * time.Millisecond), exp, ln, lp, uni, emp} {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 400_000
		xs := make([]float64, n)
		var sum float64
		for i := range xs {
			d := st.Draw(rng)
			if d < 0 {
				t.Fatalf("%v drew %v", st, d)
			}
			xs[i] = d.Seconds()
			sum += xs[i]
		}
		m := sum / n
		var v float64
		for _, x := range xs {
			v += (x - m) * (x - m)
		}
		v /= n
		if math.Abs(m-st.Mean()) > 0.01*st.Mean() {
			t.Errorf("%v: sample mean %v, want %v within 1%%", st, m, st.Mean())
		}
		// A lognormal's sample variance converges slowly: 15%.
		if math.Abs(v-st.Var()) > 0.15*st.Var()+1e-15 {
			t.Errorf("%v: sample variance %v, want %v", st, v, st.Var())
		}
		if st.String() == lp.String() {
			slices.Sort(xs)
			if p := xs[n*99/100]; math.Abs(p-0.040) > 0.04*0.040 {
				t.Errorf("%v: sample p99 %v, want 40ms within 4%%", st, p)
			}
		}
	}
}

// TestSamplerStreams: a rerun with the same seed repeats a worker's draws;
// another worker, stage or seed draws another sequence.
func TestSamplerStreams(t *testing.T) {
	exp, _ := ExponentialTime(5 * time.Millisecond)
	draw := func(seed uint64, stage int, name string) []time.Duration {
		s := NewSampler(exp, seed, stage, name)
		out := make([]time.Duration, 20)
		for i := range out {
			out[i] = s.Next()
		}
		return out
	}
	a := draw(7, 1, "p4-S2-w1")
	if !slices.Equal(a, draw(7, 1, "p4-S2-w1")) {
		t.Error("same seed, stage and worker: different draws")
	}
	for _, other := range [][]time.Duration{draw(7, 1, "p4-S2-w2"), draw(7, 2, "p4-S2-w1"), draw(8, 1, "p4-S2-w1")} {
		if slices.Equal(a, other) || a[0] == other[0] {
			t.Errorf("another stream repeats %v", a[:3])
		}
	}
}

// TestStepDraws runs a step with a random time: every message gets its own
// draw, records it, and works at least that long.
func TestStepDraws(t *testing.T) {
	spec := Spec{Work: Sleep, Seed: 3}
	uni, _ := UniformTime(time.Millisecond, 4*time.Millisecond)
	spec.SetTimes([]ServiceTime{uni})
	step := StepsFor(spec, func(int) string { return "w" })[0]
	seen := map[int64]bool{}
	want := NewSampler(uni, 3, 0, "w")
	for i := range 20 {
		env := Envelope{ID: "id", Seq: uint64(i)}
		if err := step.Run(context.Background(), &env, time.Now()); err != nil {
			t.Fatal(err)
		}
		r := env.Stages[0]
		if d := time.Duration(r.Drawn); d != want.Next() || d < time.Millisecond || d > 4*time.Millisecond {
			t.Fatalf("message %d drew %v, not the stream's next draw in [1ms, 4ms]", i, d)
		}
		if r.Finished-r.Started < r.Drawn || spec.MinWork(0, time.Duration(r.Drawn)) != time.Duration(r.Drawn) {
			t.Fatalf("message %d worked %v, drew %v", i, time.Duration(r.Finished-r.Started), time.Duration(r.Drawn))
		}
		seen[r.Drawn] = true
		b, err := env.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		var back Envelope
		if err := back.Decode(b); err != nil || back.Stages[0].Drawn != r.Drawn || len(b) != env.EncodedLen() {
			t.Fatalf("envelope round trip: %v, drawn %d want %d", err, back.Stages[0].Drawn, r.Drawn)
		}
	}
	if len(seen) < 15 {
		t.Errorf("20 messages drew only %d different times", len(seen))
	}
}

// TestSamplerConcurrent draws from one sampler on several goroutines, as an
// async worker's messages do: every draw is one of the stream's, none lost
// or repeated (run under -race).
func TestSamplerConcurrent(t *testing.T) {
	exp, _ := ExponentialTime(time.Millisecond)
	s, ref := NewSampler(exp, 9, 0, "w"), NewSampler(exp, 9, 0, "w")
	const g, per = 8, 200
	got := make(chan time.Duration, g*per)
	done := make(chan struct{})
	for range g {
		go func() {
			defer func() { done <- struct{}{} }()
			for range per {
				got <- s.Next()
			}
		}()
	}
	for range g {
		<-done
	}
	close(got)
	var all, want []time.Duration
	for d := range got {
		all = append(all, d)
		want = append(want, ref.Next())
	}
	slices.Sort(all)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Error("concurrent draws are not the stream's draws")
	}
}
