package pipelines

import (
	"cmp"
	"fmt"
	"math"
	"slices"
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
	ID  string
	Seq uint64
}

// Completed reports whether the message came back.
func (r *Record) Completed() bool { return r.Received != 0 }

// Result is what one run measured.
type Result struct {
	Variant string
	Spec    Spec
	N       int     // messages sent
	Window  int     // closed-loop window; 0 for open loop
	Rate    float64 // open-loop rate in msgs/s; 0 for closed loop
	Bound   float64 // theoretical throughput, msgs/s (+Inf if unknown)
	Start   time.Time
	Elapsed time.Duration // first send to last message accounted for

	Records []Record // indexed by seq
	// Completed counts the messages that came back, Late ones included.
	Completed int
	// Lost lists, ascending, the seqs declared lost (not back within
	// LossTimeout of their send) that never came back while the run lasted.
	Lost []uint64
	// Late counts, and LateSeqs lists ascending, the messages declared lost
	// that came back after all: completed, not lost.
	Late     int
	LateSeqs []uint64
	// Unaccounted lists, ascending, the messages sent that were neither back
	// nor declared lost when the run ended early (EndedBy): a fault, the
	// timeout or a failed send. Empty for a run that ran to its end.
	Unaccounted []uint64
	// Unsent counts the messages a run that ended early never sent.
	Unsent int
	// Duplicates counts, and DuplicateSeqs lists (the first MaxListed), the
	// completions of a message that had already come back.
	Duplicates    int
	DuplicateSeqs []uint64
	// Strays counts, and StrayList lists (the first MaxListed), the valid
	// envelopes that came back with a correlation ID or seq of no message
	// of this run (another run's, one from before this run started).
	Strays     int
	StrayList  []Stray
	Rejected   int      // malformed messages refused by stages or the sink
	RejectErrs []string // the first few rejections
	Violations []string // messages that skipped a stage, repeated one, or finished one too soon
	// Incidents lists what happened to workers during the run (P3, P4): deaths,
	// workers that stopped answering and came back.
	Incidents []Incident
	// EndedBy says why the run ended before every message was accounted
	// for ("fault: ...", "timeout: ...", "send failed: ..."); empty when it
	// ran to its end.
	EndedBy string
	// LossTimeout is how long after its send a message was declared lost.
	LossTimeout time.Duration

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
		Variant:       r.cfg.Variant,
		Spec:          r.cfg.Spec,
		N:             st.n,
		Bound:         r.cfg.Bound,
		Start:         st.start,
		Elapsed:       end.Sub(st.start),
		Records:       st.records,
		Completed:     st.completed,
		Late:          st.late,
		Unsent:        st.n - st.sent,
		Duplicates:    len(st.duplicates),
		DuplicateSeqs: st.duplicates,
		Strays:        st.nStrays,
		StrayList:     st.strays,
		Rejected:      st.rejected,
		RejectErrs:    st.rejectErrs,
		Violations:    st.violations,
		Incidents:     st.incidents,
		LossTimeout:   r.cfg.LossTimeout,
		Latency:       NewLatencyHistogram(),
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

// LatencyAt is the end-to-end latency at percentile q (0..100).
func (res *Result) LatencyAt(q float64) time.Duration {
	return time.Duration(res.Latency.ValueAtQuantile(q)) * time.Microsecond
}

// errListed is how many seqs an error message lists of each set; Report
// lists them all.
const errListed = 50

// Err summarizes what makes the run wrong: an early end (fault, timeout)
// with the messages it left unaccounted for, lost, late or duplicated
// messages, stage violations, and workers that died or were still
// unresponsive at the end. Rejected malformed messages and strays are not
// errors (they are counted and listed in Report).
func (res *Result) Err() error {
	parts := res.problems(errListed)
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("run %s: %s", res.Variant, strings.Join(parts, "; "))
}

// problems lists what makes the run wrong, each seq list cut at show (all
// when show <= 0).
func (res *Result) problems(show int) []string {
	var parts []string
	last := StageName(res.Spec.Stages() - 1)
	if res.EndedBy != "" {
		parts = append(parts, "ended early: "+res.EndedBy)
	}
	if len(res.Unaccounted) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d messages unaccounted at the end (sent, neither back from %s nor declared lost): %s",
			len(res.Unaccounted), res.N, last, seqList(res.Unaccounted, show)))
	}
	if res.Unsent > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d messages never sent", res.Unsent, res.N))
	}
	if len(res.Lost) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d messages lost (never reached %s): %s",
			len(res.Lost), res.N, last, seqList(res.Lost, show)))
	}
	if res.Late > 0 {
		parts = append(parts, fmt.Sprintf("%d message%s late (back after the %v loss timeout): %s",
			res.Late, plural(res.Late), res.LossTimeout, seqList(res.LateSeqs, show)))
	}
	if res.Duplicates > 0 {
		parts = append(parts, fmt.Sprintf("%d duplicate completion%s: %s", res.Duplicates, plural(res.Duplicates), seqList(res.DuplicateSeqs, show)))
	}
	if len(res.Violations) > 0 {
		parts = append(parts, fmt.Sprintf("%d violations: %s", len(res.Violations), strings.Join(res.Violations, "; ")))
	}
	for _, in := range res.openIncidents() {
		parts = append(parts, in.String())
	}
	return parts
}

// openIncidents are the deaths, and the unresponsive or stuck spells that
// had not ended when the run did, in order.
func (res *Result) openIncidents() []Incident {
	var out []Incident
	open := map[string]int{} // worker -> index in out of its open spell
	for _, in := range res.Incidents {
		switch in.Kind {
		case WorkerDied:
			out = append(out, in)
		case WorkerUnresponsive, WorkerStuck:
			if _, ok := open[in.Worker]; !ok {
				open[in.Worker] = len(out)
				out = append(out, in)
			}
		case WorkerBack:
			if i, ok := open[in.Worker]; ok {
				out[i].Kind = WorkerBack // closed: dropped below
				delete(open, in.Worker)
			}
		}
	}
	return slices.DeleteFunc(out, func(in Incident) bool { return in.Kind == WorkerBack })
}

// Summary is a one-line human summary of the run: throughput, latency and
// the account of every message (completed, lost, late, unaccounted at an
// early end, never sent, duplicates, strays, rejected).
func (res *Result) Summary() string {
	lost := fmt.Sprintf("lost %d", len(res.Lost))
	if len(res.Unaccounted) > 0 {
		lost += fmt.Sprintf(" + %d unaccounted at the end", len(res.Unaccounted))
	}
	if res.Unsent > 0 {
		lost += fmt.Sprintf(", %d never sent", res.Unsent)
	}
	s := fmt.Sprintf("%s: %d/%d msgs in %v, %.1f msgs/s (bound %.1f, eff %.3f), p50 %v p99 %v, %s, late %d, duplicates %d, strays %d, rejected %d",
		res.Variant, res.Completed, res.N, res.Elapsed.Round(time.Millisecond), res.Throughput, res.Bound,
		res.Efficiency(), res.LatencyAt(50), res.LatencyAt(99), lost, res.Late, res.Duplicates, res.Strays, res.Rejected)
	if n := len(res.Incidents); n > 0 {
		s += fmt.Sprintf(", %d worker incident%s", n, plural(n))
	}
	if res.EndedBy != "" {
		s += " (ENDED EARLY)"
	}
	return s
}

// Report is the Summary followed by one line per set of messages that did
// not simply complete, each listing every seq (lost, late, unaccounted at
// the end, duplicates) or correlation ID and seq (strays), then the
// worker incidents with their time into the run, the violations and the
// first rejections. natspipe run prints it.
func (res *Result) Report() string {
	var b strings.Builder
	b.WriteString(res.Summary())
	line := func(format string, args ...any) {
		b.WriteByte('\n')
		fmt.Fprintf(&b, format, args...)
	}
	last := StageName(res.Spec.Stages() - 1)
	if res.EndedBy != "" {
		line("ended early: %s", res.EndedBy)
	}
	if len(res.Unaccounted) > 0 {
		line("unaccounted at the end (%d, sent, neither back from %s nor declared lost): %s", len(res.Unaccounted), last, seqList(res.Unaccounted, 0))
	}
	if res.Unsent > 0 {
		line("never sent: %d (seq %d to %d)", res.Unsent, res.N-res.Unsent, res.N-1)
	}
	if len(res.Lost) > 0 {
		line("lost (%d, never reached %s): %s", len(res.Lost), last, seqList(res.Lost, 0))
	}
	if res.Late > 0 {
		line("late (%d, back after the %v loss timeout): %s", res.Late, res.LossTimeout, seqList(res.LateSeqs, 0))
	}
	if res.Duplicates > 0 {
		line("duplicates (%d): %s", res.Duplicates, seqList(res.DuplicateSeqs, 0))
	}
	if res.Strays > 0 {
		ids := make([]string, len(res.StrayList))
		for i, st := range res.StrayList {
			ids[i] = fmt.Sprintf("%s/%d", st.ID, st.Seq)
		}
		more := ""
		if res.Strays > len(ids) {
			more = fmt.Sprintf(" ... (%d more)", res.Strays-len(ids))
		}
		line("strays (%d, envelopes of no message of this run, id/seq): %s%s", res.Strays, strings.Join(ids, ", "), more)
	}
	for _, in := range res.Incidents {
		at := ""
		if !res.Start.IsZero() && !in.At.IsZero() {
			at = fmt.Sprintf(" at +%v", in.At.Sub(res.Start).Round(time.Millisecond))
		}
		line("incident%s: %s", at, in)
	}
	for _, v := range res.Violations {
		line("violation: %s", v)
	}
	for _, e := range res.RejectErrs {
		line("rejected: %s", e)
	}
	return b.String()
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
