package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p3"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// startP3 starts P3 with this test binary as the worker processes.
func startP3(t testing.TB) varianttest.StartFunc {
	for _, v := range defaultVariants(t) {
		if v.impl == "p3" {
			return v.start()
		}
	}
	t.Fatal("no p3 in the suite")
	return nil
}

// warmup is how many messages pass through a freshly started pipeline
// before the measured run: the first messages through new worker processes
// and connections pay one-off costs (page faults, lazy initialization) that
// are not queueing.
const warmup = 10

// openLoop runs n messages through P3 at rate msgs/s with the given
// arrivals, after warmup messages that are not measured.
func openLoop(t *testing.T, conn natsconn.Config, spec pipelines.Spec, rate float64, arrivals pipelines.Arrivals, seed uint64, n int) *pipelines.Result {
	t.Helper()
	fx := varianttest.Start(t, conn, startP3(t), pipelines.RunConfig{
		Spec: spec, Variant: "p3", Bound: p3.Bound(spec, worker.Sync, 0),
		Rate: rate, Arrivals: arrivals, Seed: seed,
	})
	if _, err := fx.Runner.Run(context.Background(), fx.Endpoint, warmup); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	res, err := fx.Runner.Run(context.Background(), fx.Endpoint, n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != n {
		t.Fatalf("completed %d of %d", res.Completed, n)
	}
	return res
}

func queueingOnly(t *testing.T) {
	t.Helper()
	benchkit.QuietOnly(t, "go test -p 1 -run OpenLoop -v ./bench/")
}

// Deterministic arrivals into deterministic service form no queue: at 50%
// and 95% of P3's bound (seed durations), p99 end-to-end latency from the
// intended send stays within 10% of the latency floor, sum(t).
//
// The VMs this runs on have slow periods: an idle process now and then
// stalls for 5 to 30 ms (a Go program doing nothing but 10 ms sleeps saw 2
// to 5 such stalls in 20 s, with time.Sleep and clock_nanosleep alike), and
// loopback hops that take 0.5 ms take 4 to 8. At 95% load S2 has 2.1 ms of
// slack a message, so one 7 ms stall of S2 (or of the hop into it) leaves a
// short queue behind it that takes three or four messages to drain: a
// disturbance, not queueing by the arrivals. So an attempt is judged on both
// figures, the p99 latency within 10% of the floor and the queue itself
// (the p99 of a message's summed stage waits) under 5% of the floor, and
// the test passes when one of up to eight attempts meets both. Slow periods
// last several seconds, so a failed attempt is followed by a pause. In
// three CI runs during a slow period 8 of 14 attempts failed, each with a
// stage overrun or a hop of 8 to 29 ms; what the test is for, a queue built
// by the pacing or a harness cost over 10% of the floor, fails every
// attempt. Every attempt's figures are logged with the largest disturbance
// it saw (the longest stage overrun and the slowest hop). A latency under
// the floor fails at once: a stage finished early.
func TestOpenLoopFixedNoQueue(t *testing.T) {
	queueingOnly(t)
	srv := natstest.Start(t)
	spec := pipelines.DefaultSpec()
	bound := p3.Bound(spec, worker.Sync, 0)
	floor := spec.Sum()
	const attempts = 8
	const pause = 3 * time.Second
	for _, load := range []float64{0.5, 0.95} {
		t.Run(fmt.Sprintf("load=%.2f", load), func(t *testing.T) {
			var failures []string
			for a := 1; a <= attempts; a++ {
				res := openLoop(t, srv.Conn, spec, load*bound, pipelines.Fixed, 0, 100)
				p99 := res.LatencyAt(99)
				queue := queueP99(res)
				overrun, hop := disturbances(res)
				t.Logf("attempt %d at %.2f msgs/s: latency p50 %v p99 %v max %v (floor %v, p99/floor %.3f); summed stage waits p99 %v; publish delay p99 %v; longest stage overrun %v, slowest hop %v",
					a, load*bound, res.LatencyAt(50), p99, res.LatencyAt(100), floor, float64(p99)/float64(floor), queue,
					time.Duration(res.PublishDelay.ValueAtQuantile(99))*time.Microsecond, overrun, hop)
				if p99 < floor {
					t.Fatalf("p99 %v is under the latency floor %v: a stage finished early", p99, floor)
				}
				var why []string
				if queue > floor*5/100 {
					why = append(why, fmt.Sprintf("a queue formed (summed stage waits p99 %v > 5%% of the floor)", queue))
				}
				if p99 > floor*110/100 {
					why = append(why, fmt.Sprintf("p99 %v > 110%% of the floor", p99))
				}
				if len(why) == 0 {
					return
				}
				failures = append(failures, fmt.Sprintf("attempt %d: %s", a, strings.Join(why, "; ")))
				if a < attempts {
					time.Sleep(pause)
				}
			}
			t.Errorf("no attempt of %d met both criteria (floor %v):\n%s", attempts, floor, strings.Join(failures, "\n"))
		})
	}
}

// disturbances returns the largest overrun of a stage's work past its
// duration and the slowest hop (previous stage's end, or the send, to
// arrival) over a run's completed messages.
func disturbances(res *pipelines.Result) (overrun, hop time.Duration) {
	for _, rec := range res.Records {
		if !rec.Completed() {
			continue
		}
		prev := rec.Sent
		for i, s := range rec.Stages {
			overrun = max(overrun, time.Duration(s.Finished-s.Started)-res.Spec.Durations[i])
			hop = max(hop, time.Duration(s.Arrived-prev))
			prev = s.Finished
		}
	}
	return overrun, hop
}

// queueP99 is the p99 over messages of the time each spent waiting at
// stages, summed over its stages.
func queueP99(res *pipelines.Result) time.Duration {
	var waits []time.Duration
	for _, rec := range res.Records {
		if !rec.Completed() {
			continue
		}
		var w time.Duration
		for _, s := range rec.Stages {
			w += time.Duration(s.Started - s.Arrived)
		}
		waits = append(waits, w)
	}
	if len(waits) == 0 {
		return 0
	}
	slices.Sort(waits)
	return waits[(len(waits)*99+99)/100-1]
}

// queueStats measures a single-worker stage from its records: the mean
// queue wait, the mean effective service time (work plus the worker's
// per-message handling, measured between back-to-back messages), and the
// arrival rate.
type queueStats struct {
	wait, service, work, handling time.Duration
	// dispatch is the mean wait of messages that found the worker idle:
	// the worker's hand-off from receiving a message to starting it, which
	// queueing theory does not model.
	dispatch time.Duration
	// medianWork is the median time in stage work, which a stall does not
	// move as it moves the mean.
	medianWork time.Duration
	// workCV2 is the squared coefficient of variation of the work time:
	// about 0 for the deterministic service M/D/1 assumes.
	workCV2 float64
	rate    float64
	rho     float64
}

func measureQueue(res *pipelines.Result, stage int) (q queueStats) {
	type span struct{ arrived, started, finished int64 }
	spans := make([]span, 0, len(res.Records))
	for _, rec := range res.Records {
		if rec.Completed() {
			s := rec.Stages[stage]
			spans = append(spans, span{s.Arrived, s.Started, s.Finished})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.started - b.started) })
	var wait, work, gap, idle float64
	gaps, idles := 0, 0
	for i, s := range spans {
		wait += float64(s.started - s.arrived)
		work += float64(s.finished - s.started)
		if i > 0 && s.arrived <= spans[i-1].finished {
			// Was waiting when the previous one finished: the gap is the
			// worker's handling between messages.
			gap += float64(s.started - spans[i-1].finished)
			gaps++
		} else {
			idle += float64(s.started - s.arrived)
			idles++
		}
	}
	if idles > 0 {
		q.dispatch = time.Duration(idle / float64(idles))
	}
	n := float64(len(spans))
	q.wait, q.work = time.Duration(wait/n), time.Duration(work/n)
	if gaps > 0 {
		q.handling = time.Duration(gap / float64(gaps))
	}
	q.service = q.work + q.handling
	works := make([]int64, len(spans))
	for i, s := range spans {
		works[i] = s.finished - s.started
	}
	slices.Sort(works)
	q.medianWork = time.Duration(works[len(works)/2])
	var ss float64
	for _, w := range works {
		d := float64(w) - float64(q.work)
		ss += d * d
	}
	if q.work > 0 {
		q.workCV2 = ss / float64(len(works)) / (float64(q.work) * float64(q.work))
	}
	arrivals := make([]int64, len(spans))
	for i, s := range spans {
		arrivals[i] = s.arrived
	}
	slices.Sort(arrivals)
	q.rate = (n - 1) / time.Duration(arrivals[len(arrivals)-1]-arrivals[0]).Seconds()
	q.rho = q.rate * q.service.Seconds()
	return q
}

// md1Wait is the M/D/1 mean queue wait: rho / (2 mu (1 - rho)).
func md1Wait(q queueStats) time.Duration {
	mu := 1 / q.service.Seconds()
	return time.Duration(q.rho / (2 * mu * (1 - q.rho)) * float64(time.Second))
}

// Poisson arrivals into one sync worker with a fixed service time: the mean
// queue wait matches M/D/1 within 15%, with mu and rho from the measured
// service time and arrival rate. At rho = 0.8 the sample mean settles slowly
// (simulation: 10,000 arrivals miss 15% about 2% of the time, 20,000 almost
// never), hence the message counts.
func TestOpenLoopMD1(t *testing.T) {
	queueingOnly(t)
	srv := natstest.Start(t)
	spec := pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 16}
	// Calibrate: the real service time (timer overshoot, handling) sets the
	// rate for a target rho.
	// The median work time, not the mean, so that a VM stall during the
	// short calibration does not move the target; the test itself uses the
	// means, as M/D/1 does.
	cal := measureQueue(openLoop(t, srv.Conn, spec, 100, pipelines.Fixed, 0, 200), 0)
	service := cal.medianWork + cal.handling
	t.Logf("calibration: median work %v + handling %v = service %v (mean work %v)", cal.medianWork, cal.handling, service, cal.work)
	for _, c := range []struct {
		rho float64
		n   int
	}{{0.5, 6000}, {0.8, 20000}} {
		t.Run(fmt.Sprintf("rho=%.1f", c.rho), func(t *testing.T) {
			rate := c.rho / service.Seconds()
			// M/D/1 holds for a deterministic service. A VM's slow period
			// makes some services take many times their time (seen: mean
			// work 2.25 ms against a median of 2.05 ms, and a queue 30
			// times the formula's), which is a different queue, not a
			// wrong harness. An attempt within 15% passes. One that misses
			// while its work time varied past maxWorkCV2 was disturbed: it
			// is logged and run again. One that misses with a steady work
			// time fails at once: that is the harness or the theory.
			const attempts, maxWorkCV2 = 4, 0.01
			for a := 1; a <= attempts; a++ {
				res := openLoop(t, srv.Conn, spec, rate, pipelines.Poisson, uint64(c.n)+uint64(a), c.n)
				q := measureQueue(res, 0)
				want := md1Wait(q)
				ratio := float64(q.wait) / float64(want)
				t.Logf("attempt %d, target rho %.2f: measured rate %.1f msgs/s, service %v (work %v, cv2 %.4f + handling %v), rho %.3f: mean wait %v (idle dispatch %v), M/D/1 %v, ratio %.3f",
					a, c.rho, q.rate, q.service, q.work, q.workCV2, q.handling, q.rho, q.wait, q.dispatch, want, ratio)
				if math.Abs(ratio-1) <= 0.15 {
					return
				}
				if q.workCV2 <= maxWorkCV2 {
					t.Fatalf("mean queue wait %v vs M/D/1 %v: off by %.0f%%, want within 15%% (work time steady: cv2 %.4f)", q.wait, want, 100*(ratio-1), q.workCV2)
				}
				t.Logf("attempt %d disturbed: work time cv2 %.4f > %.2f (median %v, mean %v): not a deterministic service", a, q.workCV2, maxWorkCV2, q.medianWork, q.work)
				time.Sleep(3 * time.Second)
			}
			t.Errorf("no attempt of %d within 15%% of M/D/1, each disturbed (work time cv2 above %.2f): this machine never gave a deterministic service", attempts, maxWorkCV2)
		})
	}
}

// The 4-stage pipeline under Poisson arrivals at 80% of P3's bound: S2's
// measured wait beside the M/D/1 formula. S2's arrivals have passed S1, a
// deterministic server, so they are smoother than Poisson and the formula
// is an upper estimate; the test reports, and checks only that nothing is
// lost and S2 is where the queue forms.
func TestOpenLoopS2Wait(t *testing.T) {
	queueingOnly(t)
	srv := natstest.Start(t)
	spec := pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 16}
	res := openLoop(t, srv.Conn, spec, 0.8*p3.Bound(spec, worker.Sync, 0), pipelines.Poisson, 7, 1500)
	var waits [4]queueStats
	for i := range waits {
		waits[i] = measureQueue(res, i)
	}
	s2 := waits[1]
	t.Logf("S2: rate %.1f msgs/s, service %v, rho %.3f: mean wait %v; M/D/1 says %v; waits at S1..S4: %v %v %v %v",
		s2.rate, s2.service, s2.rho, s2.wait, md1Wait(s2), waits[0].wait, waits[1].wait, waits[2].wait, waits[3].wait)
	for i, w := range waits {
		if i != 1 && w.wait > s2.wait {
			t.Errorf("stage S%d waited %v on average, more than the bottleneck S2 (%v)", i+1, w.wait, s2.wait)
		}
	}
}
