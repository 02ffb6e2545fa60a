package pipelines

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Record is one message's account: its envelope as it left the last stage
// (payload dropped), when the source meant to send it and when the sink got it.
type Record struct {
	Envelope
	Intended int64 // stamp: when the source meant to send it (open loop); the send time otherwise
	Received int64 // stamp: when the sink received it; 0 if lost
}

// Stray is an envelope that came back but belongs to no message of the run.
type Stray struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
}

// Completed reports whether the message came back.
func (r *Record) Completed() bool { return r.Received != 0 }

// Result is what one run measured.
type Result struct {
	Variant   string
	Transport string // see RunConfig.Transport
	Broker    string // see RunConfig.Broker
	Spec      Spec
	Window    int           // closed-loop window; 0 for open loop
	Rate      float64       // open-loop rate in msgs/s; 0 for closed loop
	Bound     float64       // theoretical throughput, msgs/s (+Inf if unknown)
	Elapsed   time.Duration // first send to last message accounted for

	Records []Record // indexed by seq
	// Account is the account of every message: N (messages to send),
	// Start, Completed, the Lost, late, unaccounted, unsent, duplicate and
	// stray messages by seq, rejections, violations, worker incidents and
	// the early end, if any.
	Account

	// Throughput is the steady-state rate in msgs/s (see SteadyThroughput):
	// fill and drain are left out.
	Throughput float64
	// Latency holds end-to-end latencies in microseconds: from the send
	// (closed loop) or the intended send (open loop) to the last stage's end.
	Latency *hdrhistogram.Histogram
	// PublishDelay holds, for open loop, how late each send was against its
	// intended time, in microseconds.
	PublishDelay *hdrhistogram.Histogram
}

// NewLatencyHistogram returns a histogram for microsecond latencies from 1 µs
// to 1 hour at 3 significant figures.
func NewLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
}

func (r *Runner) result(st *runState, end time.Time) *Result {
	res := &Result{
		Variant:   r.cfg.Variant,
		Transport: r.cfg.Transport,
		Broker:    r.cfg.Broker,
		Spec:      r.cfg.Spec,
		Bound:     r.cfg.Bound,
		Elapsed:   end.Sub(st.start),
		Records:   st.records,
		Account: Account{
			N:             st.n,
			Stages:        r.cfg.Spec.Stages(),
			Start:         st.start,
			Completed:     st.completed,
			Late:          st.late,
			Unsent:        st.n - st.sent,
			Duplicates:    st.nDuplicates,
			DuplicateSeqs: st.duplicates,
			Strays:        st.nStrays,
			StrayList:     st.strays,
			Rejected:      st.rejected,
			RejectErrs:    st.rejectErrs,
			Violations:    st.violations,
			Incidents:     st.incidents,
			LossTimeout:   r.cfg.LossTimeout,
			AtLeastOnce:   r.cfg.AtLeastOnce,
			Redeliveries:  maps.Clone(st.redelivered),
		},
		Latency: NewLatencyHistogram(),
	}
	for seq, s := range st.state {
		switch {
		case s == lost:
			res.Lost = append(res.Lost, uint64(seq))
		case s == late:
			res.LateSeqs = append(res.LateSeqs, uint64(seq))
		case s == pending && seq < st.sent:
			res.Unaccounted = append(res.Unaccounted, uint64(seq))
		}
	}
	if r.cfg.Rate > 0 {
		res.Rate = r.cfg.Rate
		res.PublishDelay = NewLatencyHistogram()
	} else {
		res.Window = r.cfg.Window
	}
	slices.Sort(st.recvMono)
	if n := len(st.recvMono); n > 0 && st.completed == st.n {
		// The last completion, not the wait's end, closes the run.
		res.Elapsed = max(st.recvMono[n-1], 0)
	}
	for i := range st.records {
		rec := &st.records[i]
		if !rec.Completed() || len(rec.Stages) == 0 {
			continue
		}
		from := rec.Sent
		if r.cfg.Rate > 0 {
			from = rec.Intended
			_ = res.PublishDelay.RecordValue(max((rec.Sent-rec.Intended)/1e3, 0))
		}
		last := rec.Stages[len(rec.Stages)-1].Finished
		_ = res.Latency.RecordValue(max((last-from)/1e3, 1))
	}
	recv := make([]int64, len(st.recvMono))
	for i, d := range st.recvMono {
		recv[i] = int64(d)
	}
	res.Throughput = SteadyThroughput(recv, 0, res.Window)
	return res
}

// SteadyThroughput is the steady-state completion rate in msgs/s. recv holds
// completion times in ns (sorted ascending; any origin), start the first
// send on the same clock. It is the least-squares slope of the completion
// count against time over the middle 80% of completions, so pipeline fill
// and drain are left out, and completions that come in bursts (a closed
// window, a shared executor) do not bias it as a count between two chosen
// completions would.
//
// A run needs a steady state for that: at least 20 completions and twice
// the closed-loop window (window 0 for open loop), else every message was
// in fill or drain and the rate is n / (last - start), fill and drain
// included. 0 when it cannot be measured.
func SteadyThroughput(recv []int64, start int64, window int) float64 {
	n := len(recv)
	if n == 0 {
		return 0
	}
	if n < max(20, 2*window) {
		if span := recv[n-1] - start; span > 0 {
			return float64(n) / time.Duration(span).Seconds()
		}
		return 0
	}
	lo, hi := n/10, n-n/10 // [lo, hi)
	var mt, mk float64
	for k := lo; k < hi; k++ {
		mt += float64(recv[k] - recv[lo])
		mk += float64(k)
	}
	m := float64(hi - lo)
	mt, mk = mt/m, mk/m
	var stt, stk float64
	for k := lo; k < hi; k++ {
		dt := float64(recv[k]-recv[lo]) - mt
		stt += dt * dt
		stk += dt * (float64(k) - mk)
	}
	if stt <= 0 {
		return 0
	}
	return stk / stt * 1e9
}

// Efficiency is Throughput over Bound; NaN when the bound is unknown.
func (res *Result) Efficiency() float64 {
	if math.IsInf(res.Bound, 1) || res.Bound <= 0 {
		return math.NaN()
	}
	return res.Throughput / res.Bound
}

// LatencyAt is the end-to-end latency at percentile q (0..100); 0 without
// a histogram (a Result built by hand).
func (res *Result) LatencyAt(q float64) time.Duration {
	if res.Latency == nil {
		return 0
	}
	return time.Duration(res.Latency.ValueAtQuantile(q)) * time.Microsecond
}

// errListed is how many seqs an error message lists of each set; Report
// lists them all.
const errListed = 50

// account is res's Account, with the stage count from the Spec when the
// Account does not say it (a Result built by hand).
func (res *Result) account() *Account {
	a := &res.Account
	if a.Stages == 0 {
		c := *a
		c.Stages = res.Spec.Stages()
		a = &c
	}
	return a
}

// Err summarizes what makes the run wrong: an early end (fault, timeout)
// with the messages it left unaccounted for, lost, late or duplicated
// messages, stage violations, and workers that died or were still
// unresponsive at the end. Rejected malformed messages and strays are not
// errors (they are counted and listed in Report).
func (res *Result) Err() error {
	parts := res.account().problems(errListed)
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("run %s: %s", res.Variant, strings.Join(parts, "; "))
}

// Summary is a one-line human summary of the run: throughput, latency and
// the account of every message (completed, then Account.Counts: lost,
// unaccounted at an early end, never sent, late, duplicates, strays,
// rejected, worker incidents).
func (res *Result) Summary() string {
	return fmt.Sprintf("%s: %d/%d msgs in %v, %.1f msgs/s (bound %.1f, eff %.3f), p50 %v p99 %v, %s",
		res.Name(), res.Completed, res.N, res.Elapsed.Round(time.Millisecond), res.Throughput, res.Bound,
		res.Efficiency(), res.LatencyAt(50), res.LatencyAt(99), res.account().Counts())
}

// Name names the run in summaries: the variant, and the transport it ran
// over when there is one ("p4 over js"), with what served it when that was
// not the real broker ("p4 over kafka (on kfake)").
func (res *Result) Name() string {
	name := res.Variant
	if res.Transport != "" {
		name += " over " + res.Transport
	}
	if res.Broker != "" {
		name += " (on " + res.Broker + ")"
	}
	return name
}

// Report is the Summary followed by the account's Lines: one line per set
// of messages that did not simply complete, each listing every seq (lost,
// late, unaccounted at the end, duplicates) or correlation ID and seq
// (strays), then the worker incidents with their time into the run, the
// violations and the first rejections. natspipe run prints it; natspipe
// analyze prints the same lines from the run's trace.
func (res *Result) Report() string {
	return strings.Join(append([]string{res.Summary()}, res.account().Lines()...), "\n")
}

// FormatRedeliveries writes redeliveries by stage as "S2=3 done=1", stages
// in pipeline order and the sink's input last.
func FormatRedeliveries(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		rank := func(k string) int {
			if n, err := strconv.Atoi(strings.TrimPrefix(k, "S")); err == nil && strings.HasPrefix(k, "S") {
				return n
			}
			return math.MaxInt
		}
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// PeakOverlap is the largest number of the records' work intervals
// (Started to Finished) open at one instant. A record ending when another
// starts does not overlap it.
func PeakOverlap(recs []StageRecord) int {
	type edge struct {
		at    int64
		delta int
	}
	edges := make([]edge, 0, 2*len(recs))
	for _, r := range recs {
		edges = append(edges, edge{r.Started, +1}, edge{r.Finished, -1})
	}
	// Ends sort before starts at the same instant.
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return cmp.Compare(a.delta, b.delta)
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}
