// Package plan chooses how to allocate a budget of P4 workers across a
// pipeline's stages. It enumerates every allocation of N workers (each
// stage at least one), ranks them by the throughput bound, min over stages
// of w_i x c_i / E[t_i] (pipelines.Spec.Bound: the means of the stages'
// service-time distributions), and breaks ties by the mean latency a
// queueing approximation predicts at a given load.
//
// The approximation, stage by stage in order (a network of G/G/c queues,
// solved by Whitt's QNA):
//
//   - A stage of w workers of c messages each is one M/G/(w c) queue when
//     dispatch is shared (a pull transport: JetStream, RabbitMQ, Kafka),
//     and w separate M/G/c queues each fed lambda/w when dispatch is random
//     (core NATS queue groups push to a random member, busy or not).
//   - Each queue's mean wait is Erlang C's M/M/c wait times the
//     Allen-Cunneen factor (ca^2 + cs^2)/2, with cs^2 the stage's squared
//     coefficient of variation and ca^2 its arrivals' (1 for Poisson, 0 for
//     fixed intervals at the source; a random split of a stream keeps
//     p ca^2 + 1 - p). With one server and Poisson arrivals this is the
//     exact Pollaczek-Khinchine mean.
//   - Departures go on to the next stage with QNA's variability
//     cd^2 = 1 + (1 - rho^2)(ca^2 - 1) + rho^2 (cs^2 - 1)/sqrt(servers);
//     the n streams of a randomly dispatched stage merge by QNA's
//     superposition, v cd^2 + 1 - v with v = 1/(1 + 4 (1 - rho)^2 (n - 1))
//     (rho the receiving queue's).
//   - The mean latency is the sum over stages of wait plus mean service
//     time; messaging cost per hop is not modelled. At or above a stage's
//     capacity the latency is unbounded (+Inf).
package plan

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Dispatch is how a stage's messages reach its workers.
type Dispatch string

const (
	// Random: each message goes to a random member of the stage's queue
	// group, busy or not (core NATS).
	Random Dispatch = "random"
	// Shared: a free worker takes the next message (JetStream pull
	// consumers, RabbitMQ prefetch, Kafka partitions, approximately).
	Shared Dispatch = "shared"
)

// DispatchFor is the dispatch of a transport by name: random for core
// NATS (and ""), shared for the others.
func DispatchFor(transport string) Dispatch {
	if transport == "" || transport == "core" {
		return Random
	}
	return Shared
}

// Model is what the planner knows of a pipeline and its workers.
type Model struct {
	Spec pipelines.Spec
	// Mode and Concurrency are the workers' (worker.Config): c, messages in
	// work per worker, is 1 for sync workers.
	Mode        worker.Mode
	Concurrency int
	Dispatch    Dispatch
	// Arrivals at the source: Poisson (ca^2 1, the default) or Fixed (0).
	Arrivals pipelines.Arrivals
}

// perWorker is c, the messages one worker has in work at once.
func (m Model) perWorker() int {
	return worker.Config{Mode: m.Mode, Concurrency: m.Concurrency}.Concurrent()
}

// Bound is the throughput bound of alloc in msgs/s (p4.Bound).
func (m Model) Bound(alloc p4.Alloc) float64 {
	return p4.Bound(m.Spec, alloc, m.Mode, m.Concurrency)
}

// Stage is the prediction for one stage.
type Stage struct {
	Servers int     // queues' servers: w x c (shared) or c (random)
	Rho     float64 // utilisation
	Wait    float64 // mean wait in queue, seconds
	Service float64 // mean service time, seconds
}

// Prediction is one allocation's predicted throughput bound and latency.
type Prediction struct {
	Alloc p4.Alloc
	Bound float64 // msgs/s
	Rate  float64 // the offered rate the latency is for, msgs/s
	// Latency is the predicted mean end-to-end latency in seconds; +Inf
	// when Rate reaches a stage's capacity.
	Latency float64
	Stages  []Stage
}

// Predict is alloc's bound and its latency at rate msgs/s.
func (m Model) Predict(alloc p4.Alloc, rate float64) Prediction {
	p := Prediction{Alloc: slices.Clone(alloc), Bound: m.Bound(alloc), Rate: rate}
	c := m.perWorker()
	// The arrivals of the next stage: the merge of streams streams, each
	// with squared coefficient of variation cd2.
	cd2, streams := 1.0, 1
	if m.Arrivals == pipelines.Fixed {
		cd2 = 0
	}
	for i := range m.Spec.Stages() {
		t := m.Spec.Time(i)
		es, cs2 := t.Mean(), t.CV2()
		w := alloc[i]
		servers, lambda, queues := w*c, rate, 1
		if m.Dispatch == Random && w > 1 {
			servers, lambda, queues = c, rate/float64(w), w
		}
		rho := lambda * es / float64(servers)
		// QNA superposition of the previous stage's equal streams, then a
		// random split into this stage's queues.
		ca2 := cd2
		if streams > 1 {
			v := 1 / (1 + 4*(1-math.Min(rho, 1))*(1-math.Min(rho, 1))*float64(streams-1))
			ca2 = v*cd2 + 1 - v
		}
		if queues > 1 {
			pr := 1 / float64(queues)
			ca2 = pr*ca2 + 1 - pr
		}
		wait, _ := waitGGc(lambda, es, servers, ca2, cs2)
		p.Stages = append(p.Stages, Stage{Servers: servers, Rho: rho, Wait: wait, Service: es})
		p.Latency += wait + es
		// QNA departures of each queue.
		cd2, streams = 1+(1-rho*rho)*(ca2-1)+rho*rho*(cs2-1)/math.Sqrt(float64(servers)), queues
		if rho >= 1 {
			cd2 = 1
		}
	}
	return p
}

// waitGGc is the Allen-Cunneen mean wait of a G/G/c queue with arrival rate
// lambda, mean service es and the squared coefficients of variation of
// arrivals and service, and its utilisation.
func waitGGc(lambda, es float64, c int, ca2, cs2 float64) (wait, rho float64) {
	if es == 0 || lambda == 0 {
		return 0, 0
	}
	a := lambda * es // offered load in servers
	rho = a / float64(c)
	if rho >= 1 {
		return math.Inf(1), rho
	}
	return ErlangC(c, a) / (float64(c)/es - lambda) * (ca2 + cs2) / 2, rho
}

// ErlangC is the probability that an arrival waits in an M/M/c queue with
// offered load a = lambda x E[t] (in servers; a < c).
func ErlangC(c int, a float64) float64 {
	b := 1.0 // Erlang B, by its recurrence
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	rho := a / float64(c)
	return b / (1 - rho*(1-b))
}

// MaxAllocations bounds how many allocations Rank enumerates.
const MaxAllocations = 2_000_000

// Count is the number of allocations of n workers over k stages, each at
// least one: C(n-1, k-1); 0 when n < k.
func Count(n, k int) float64 {
	if k < 1 || n < k {
		return 0
	}
	r := 1.0
	for i := 1; i <= k-1; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return math.Round(r)
}

// Allocations calls yield with every allocation of n workers over k
// stages, each at least one, in lexicographic order; the slice is reused.
func Allocations(n, k int, yield func(p4.Alloc) bool) {
	if k < 1 || n < k {
		return
	}
	a := make(p4.Alloc, k)
	var rec func(i, left int) bool
	rec = func(i, left int) bool {
		if i == k-1 {
			a[i] = left
			return yield(a)
		}
		for w := 1; w <= left-(k-1-i); w++ {
			a[i] = w
			if !rec(i+1, left-w) {
				return false
			}
		}
		return true
	}
	rec(0, n)
}

// Load is the offered load latencies are predicted at: a Rate in msgs/s,
// or a Fraction of the best allocation's bound (so every allocation is
// compared at the same rate).
type Load struct {
	Rate     float64
	Fraction float64
}

// Rank predicts every allocation of n workers and orders them: highest
// bound first, ties (within 1e-9) by lower predicted mean latency at the
// load, then by allocation. The rate used is in each Prediction.
func (m Model) Rank(n int, load Load) ([]Prediction, error) {
	k := m.Spec.Stages()
	if n < k {
		return nil, fmt.Errorf("plan: %d workers for %d stages: want at least one a stage", n, k)
	}
	if c := Count(n, k); c > MaxAllocations {
		return nil, fmt.Errorf("plan: %d workers over %d stages make %.3g allocations, more than %d: fewer workers, or -target", n, k, c, MaxAllocations)
	}
	if (load.Rate > 0) == (load.Fraction > 0) {
		return nil, errors.New("plan: give the load as a rate or as a fraction of the bound, one of them > 0")
	}
	var allocs []p4.Alloc
	best := 0.0
	Allocations(n, k, func(a p4.Alloc) bool {
		if err := a.Check(k); err != nil {
			return true // past a stage's or the fleet's worker limit
		}
		allocs = append(allocs, slices.Clone(a))
		best = math.Max(best, m.Bound(a))
		return true
	})
	if len(allocs) == 0 {
		return nil, fmt.Errorf("plan: no allocation of %d workers over %d stages is within P4's limits", n, k)
	}
	rate := load.Rate
	if rate == 0 {
		if math.IsInf(best, 1) {
			return nil, errors.New("plan: the bound is unlimited (zero stage times): give the load as a rate")
		}
		rate = load.Fraction * best
	}
	out := make([]Prediction, len(allocs))
	for i, a := range allocs {
		out[i] = m.Predict(a, rate)
	}
	slices.SortStableFunc(out, func(x, y Prediction) int {
		if d := y.Bound - x.Bound; math.Abs(d) > 1e-9*math.Max(x.Bound, y.Bound) {
			if d > 0 {
				return 1
			}
			return -1
		}
		if x.Latency != y.Latency {
			if x.Latency < y.Latency {
				return -1
			}
			return 1
		}
		return slices.Compare(x.Alloc, y.Alloc)
	})
	return out, nil
}

// Target is the allocation with the fewest workers whose bound reaches
// rate msgs/s: each stage gets ceil(rate x E[t_i] / c) workers, which every
// allocation reaching rate must have at least.
func (m Model) Target(rate float64) (p4.Alloc, error) {
	if !(rate > 0) {
		return nil, fmt.Errorf("plan: target %v msgs/s: want > 0", rate)
	}
	c := float64(m.perWorker())
	a := make(p4.Alloc, m.Spec.Stages())
	for i := range a {
		w := math.Ceil(rate*m.Spec.Time(i).Mean()/c - 1e-9)
		if w > p4.MaxStageWorkers {
			return nil, fmt.Errorf("plan: target %v msgs/s needs %.0f workers on stage %s, at most %d", rate, w, pipelines.StageName(i), p4.MaxStageWorkers)
		}
		a[i] = max(int(w), 1)
	}
	if err := a.Check(len(a)); err != nil {
		return nil, fmt.Errorf("plan: target %v msgs/s: %w", rate, err)
	}
	if b := m.Bound(a); b < rate*(1-1e-9) {
		return nil, fmt.Errorf("plan: target %v msgs/s is beyond the bound %.4g of %s (cpu work is capped by the cores)", rate, b, a)
	}
	return a, nil
}
