// Package analysis turns natspipe traces (package pipelines/trace) into the
// numbers the study asked for: per-stage service time, queue wait and
// utilization with the bottleneck named; end-to-end latency percentiles from
// HDR histograms; throughput measured against each configuration's bound;
// for open-loop runs, latency from the intended send time and the publish
// delay; and the time each message spent in messaging between stages.
//
// Several traces are analysed side by side (P0..P4, or a P4 allocation
// sweep). A Report prints as aligned text tables (WriteText) or as JSON
// (WriteJSON); package analysis/plots draws it.
//
// Definitions, all from the trace's own timestamps:
//
//   - service time: a stage's finished - started; queue wait: started - arrived.
//   - wall time: the first message's intended send to the last completion
//     (the sink's receive time, or the last stage's end if later).
//   - utilization of a stage: its total service time / (workers x wall time),
//     where workers is the number of distinct worker names seen at the stage
//     (or Options.Workers). A worker that serves several messages at once
//     (P2's stages) can push it past 1: it then reads as the mean number of
//     messages in work at the stage. The bottleneck is the stage with the
//     highest utilization.
//   - end-to-end latency: from the send (closed loop) or the intended send
//     (open loop) to the last stage's end, as the runner measures it,
//     recorded in microseconds in an HDR histogram (3 significant figures;
//     percentiles are HDR's, the max is exact).
//   - transit: per message, (received - sent) minus the sum of its waits and
//     service times: the time it spent in messaging (publish, the server,
//     delivery) over all hops, the sink's included.
//   - throughput: the steady-state rate as the runner computes it
//     (pipelines.SteadyThroughput: the slope over the middle 80% of
//     completions), so fill and drain are left out (all completions for
//     fewer than 20).
//   - stage percentiles are exact (nearest rank over all completed messages).
//
// A completed message whose stamps do not follow its path (sent, then each
// stage's arrival, start and end in turn, then the sink's receipt) is left
// out and counted in Run.Skipped; the trace readers refuse such files, so
// only a trace built in memory can have one. No figure is ever negative or
// NaN.
package analysis

import (
	"cmp"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// Options adjust an analysis.
type Options struct {
	// Workers, when set, gives each stage's worker count for utilization,
	// instead of the number of distinct workers seen; a 0 entry keeps what
	// was seen. It applies to every trace.
	Workers []int
	// Labels, when set, names the traces in order, instead of the names
	// Analyze derives (the variant, then the allocation, then the file).
	Labels []string
}

// Report is the analysis of one or more traces.
type Report struct {
	Runs []*Run `json:"runs"`
}

// Run is the analysis of one trace.
type Run struct {
	Label   string `json:"label"`
	Source  string `json:"source,omitempty"`
	Variant string `json:"variant"`
	// Transport is the broker transport the run went over ("core", "js",
	// "amqp", "kafka"); empty for P0 and for traces that do not say.
	// Broker names the stand-in that served it, if any ("kfake").
	Transport  string    `json:"transport,omitempty"`
	Broker     string    `json:"broker,omitempty"`
	Work       string    `json:"work,omitempty"`
	Durations  []float64 `json:"durations_ms"` // each stage's defined time
	Floor      float64   `json:"floor_ms"`     // latency floor: the sum of the defined times
	Window     int       `json:"window,omitempty"`
	Rate       float64   `json:"rate,omitempty"` // open-loop rate, msgs/s
	NATSServer string    `json:"nats_server,omitempty"`

	Messages  int `json:"messages"` // messages in the trace
	Completed int `json:"completed"`
	// Lost, Late and Unaccounted count the messages as the run defined
	// them (see pipelines.Account): declared lost and never back; declared
	// lost and back after all (completed, in the figures); sent and
	// neither back nor declared lost when the run ended early. A CSV
	// trace, which has no header, counts every message not back as lost.
	Lost        int `json:"lost"`
	Late        int `json:"late"`
	Unaccounted int `json:"unaccounted"`
	// Account is the run's whole account from the trace's header: every
	// lost, late, unaccounted, duplicate and stray message by seq, the
	// worker incidents, violations and rejections (Account.Lines renders
	// it as natspipe run printed it).
	Account pipelines.Account `json:"account"`
	// Skipped counts the completed messages left out because their stamps
	// contradict each other (see trace's readers, which refuse such
	// files; a trace built in memory is checked here); Skip says why the
	// first one was.
	Skipped int     `json:"skipped,omitempty"`
	Skip    string  `json:"skip,omitempty"`
	Wall    float64 `json:"wall_ms"` // first intended send to last completion

	// Throughput is the steady-state completion rate, msgs/s.
	Throughput float64 `json:"throughput"`
	// Bound is the configuration's theoretical throughput from the trace
	// header, msgs/s; 0 when unknown (CSV traces, unbounded runs).
	Bound float64 `json:"bound,omitempty"`
	// Efficiency is Throughput / Bound; 0 when the bound is unknown.
	Efficiency float64 `json:"efficiency,omitempty"`
	// Allocation is the worker count of each stage used for utilization.
	Allocation []int `json:"allocation"`

	// Latency is end to end: from the send (closed loop) or the intended
	// send (open loop) to the last stage's end.
	Latency Dist `json:"latency"`
	// Transit is each message's time in messaging, all hops together.
	Transit Dist `json:"transit"`
	// OpenLoop holds what only an open-loop run has; nil for closed loop.
	OpenLoop *OpenLoop `json:"open_loop,omitempty"`

	Stages []Stage `json:"stages"`
	// Bottleneck names the stage with the highest utilization.
	Bottleneck string `json:"bottleneck"`

	tr   *trace.Trace
	hist *hdrhistogram.Histogram
}

// OpenLoop is what an open-loop run adds.
type OpenLoop struct {
	Rate float64 `json:"rate"` // offered, msgs/s
	// Offered is the rate the source actually achieved: sends over the
	// span of intended send times, msgs/s.
	Offered float64 `json:"offered"`
	// FromSend is the latency from the actual send, which hides the
	// source's own delays (coordinated omission); compare with Run.Latency.
	FromSend Dist `json:"latency_from_send"`
	// PublishDelay is how late each send was against its intended time.
	PublishDelay Dist `json:"publish_delay"`
}

// Stage is the analysis of one stage.
type Stage struct {
	Name     string  `json:"name"`
	Defined  float64 `json:"defined_ms"`
	Messages int     `json:"messages"`
	// Workers is the worker count used for utilization; WorkersSeen the
	// distinct worker names in the trace.
	Workers     int     `json:"workers"`
	WorkersSeen int     `json:"workers_seen"`
	Service     Dist    `json:"service"`
	Wait        Dist    `json:"wait"`
	Busy        float64 `json:"busy_ms"` // total service time
	Utilization float64 `json:"utilization"`
}

// Dist summarizes a distribution of times, all in milliseconds.
type Dist struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99.9_ms"`
	Max   float64 `json:"max_ms"`
}

// Trace is the trace the run was analysed from.
func (r *Run) Trace() *trace.Trace { return r.tr }

// LatencyAt is the end-to-end latency at quantile q (0..1) in
// milliseconds, from the HDR histogram.
func (r *Run) LatencyAt(q float64) float64 {
	if r.hist == nil || r.hist.TotalCount() == 0 {
		return 0
	}
	return float64(r.hist.ValueAtQuantile(q*100)) / 1e3
}

// AllocationString is the allocation as "1-4-1-1".
func (r *Run) AllocationString() string {
	parts := make([]string, len(r.Allocation))
	for i, w := range r.Allocation {
		parts[i] = strconv.Itoa(w)
	}
	return strings.Join(parts, "-")
}

// Analyze analyses each trace and names the runs so they can be told apart.
func Analyze(traces []*trace.Trace, opts Options) (*Report, error) {
	if len(traces) == 0 {
		return nil, fmt.Errorf("analyze: no traces")
	}
	if len(opts.Labels) > 0 && len(opts.Labels) != len(traces) {
		return nil, fmt.Errorf("analyze: %d labels for %d traces", len(opts.Labels), len(traces))
	}
	rep := &Report{}
	for _, t := range traces {
		r, err := AnalyzeTrace(t, opts)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, r)
	}
	if len(opts.Labels) > 0 {
		for i, l := range opts.Labels {
			rep.Runs[i].Label = l
		}
	} else {
		label(rep.Runs)
	}
	return rep, nil
}

// TransportName is the run's transport as reports print it: "js", or
// "kafka@kfake" when a stand-in served it; "-" when there is none.
func (r *Run) TransportName() string {
	switch {
	case r.Transport == "":
		return "-"
	case r.Broker != "":
		return r.Transport + "@" + r.Broker
	}
	return r.Transport
}

// Transports lists the distinct transports of rep's runs, in the order
// they first appear ("-" for runs without one).
func (rep *Report) Transports() []string {
	var out []string
	for _, r := range rep.Runs {
		if !slices.Contains(out, r.TransportName()) {
			out = append(out, r.TransportName())
		}
	}
	return out
}

// label names runs by variant, with their transport when the runs went
// over more than one (P0, which has none, does not count: P0..P4 over core
// NATS read p0, p1, ...); where that is ambiguous, with the allocation too;
// then by what tells their file names apart; then by position.
func label(runs []*Run) {
	byFile := fileLabels(runs)
	brokers := slices.DeleteFunc((&Report{Runs: runs}).Transports(), func(t string) bool { return t == "-" })
	mixed := len(brokers) > 1
	variant := func(r *Run) string {
		if mixed && r.Transport != "" {
			return r.Variant + " " + r.TransportName()
		}
		return r.Variant
	}
	namers := []func(*Run) string{
		variant,
		func(r *Run) string { return variant(r) + " " + r.AllocationString() },
		func(r *Run) string { return byFile[r] },
	}
	for _, name := range namers {
		seen := map[string]int{}
		for _, r := range runs {
			seen[name(r)]++
		}
		unique := true
		for _, n := range seen {
			unique = unique && n == 1
		}
		if unique {
			for _, r := range runs {
				r.Label = name(r)
			}
			return
		}
	}
	for i, r := range runs {
		r.Label = fmt.Sprintf("%s #%d", r.Variant, i+1)
	}
}

// fileLabels names runs after their trace files, as benchmark traces are
// named ("BenchmarkP2_work=sleep_inflight=8"): without the "Benchmark"
// prefix, split at '_', and without the parts every file shares, so
// "P2 inflight=8" is left. A run without a file is named by its variant.
func fileLabels(runs []*Run) map[*Run]string {
	parts := make(map[*Run][]string, len(runs))
	count := map[string]int{}
	for _, r := range runs {
		if r.Source == "" {
			continue
		}
		base := strings.TrimSuffix(filepath.Base(r.Source), filepath.Ext(r.Source))
		ps := strings.Split(strings.TrimPrefix(base, "Benchmark"), "_")
		parts[r] = ps
		seen := map[string]bool{}
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				count[p]++
			}
		}
	}
	out := make(map[*Run]string, len(runs))
	for _, r := range runs {
		var keep []string
		for _, p := range parts[r] {
			if p != "" && count[p] < len(runs) {
				keep = append(keep, p)
			}
		}
		out[r] = strings.Join(keep, " ")
		if out[r] == "" {
			out[r] = r.Variant
		}
	}
	return out
}

// AnalyzeTrace analyses one trace; its label is the variant.
func AnalyzeTrace(t *trace.Trace, opts Options) (*Run, error) {
	m := &t.Meta
	n := m.Stages
	if n == 0 {
		n = len(m.Durations)
	}
	if n == 0 {
		return nil, fmt.Errorf("analyze %s: trace has no stages", t.Source)
	}
	r := &Run{
		Label:      m.Variant,
		Source:     t.Source,
		Variant:    m.Variant,
		Transport:  m.Transport,
		Broker:     m.Broker,
		Work:       m.Work,
		Window:     m.Window,
		Rate:       m.Rate,
		NATSServer: m.NATSServer,
		Messages:   len(t.Messages),
		Bound:      finite(m.Bound),
		Durations:  make([]float64, n),
		Allocation: make([]int, n),
		Stages:     make([]Stage, n),
		Account:    m.Account(),
		tr:         t,
		hist:       pipelines.NewLatencyHistogram(),
	}
	if r.Account.Lost == nil {
		r.Account.Lost = []uint64{} // "lost": [] in JSON, as in the trace header
	}
	r.Lost, r.Late, r.Unaccounted = len(r.Account.Lost), r.Account.Late, len(r.Account.Unaccounted)
	for i := 0; i < n; i++ {
		if i < len(m.Durations) {
			r.Durations[i] = ms(m.Durations[i])
			r.Floor += r.Durations[i]
		}
	}

	// One pass over the messages.
	var (
		first, last  int64 = math.MaxInt64, math.MinInt64 // first send, last completion
		lastIntended int64 = math.MinInt64
		recv         []int64
		maxLat       int64
		transit      []int64
		fromSend     = pipelines.NewLatencyHistogram()
		pubDelay     = pipelines.NewLatencyHistogram()
		maxFromSend  int64
		maxPubDelay  int64
		service      = make([][]int64, n)
		wait         = make([][]int64, n)
		workers      = make([]map[string]bool, n)
	)
	for i := range workers {
		workers[i] = map[string]bool{}
	}
	open := m.OpenLoop()
	for i := range t.Messages {
		msg := &t.Messages[i]
		from := msg.Intended
		if from == 0 {
			from = msg.Sent
		}
		if from != 0 {
			first = min(first, from)
			lastIntended = max(lastIntended, from)
		}
		if !msg.Completed() {
			continue // lost, unaccounted: the header's account says which
		}
		if len(msg.Stages) != n {
			return nil, fmt.Errorf("analyze %s: seq %d has %d stage records, want %d", t.Source, msg.Seq, len(msg.Stages), n)
		}
		if why := disorder(msg); why != "" {
			if r.Skipped == 0 {
				r.Skip = why
			}
			r.Skipped++
			continue
		}
		r.Completed++
		end := msg.Stages[n-1].Finished
		last = max(last, msg.Received, end)
		recv = append(recv, msg.Received)
		if !open {
			from = msg.Sent
		}
		lat := max(end-from, 0)
		maxLat = max(maxLat, lat)
		_ = r.hist.RecordValue(max(lat/1e3, 1))
		var inStages int64
		for j, s := range msg.Stages {
			service[j] = append(service[j], int64(s.Service()))
			wait[j] = append(wait[j], int64(s.Wait()))
			workers[j][s.Worker] = true
			inStages += s.Finished - s.Arrived
		}
		transit = append(transit, max(msg.Received-msg.Sent-inStages, 0))
		if open {
			fs := max(end-msg.Sent, 0)
			maxFromSend = max(maxFromSend, fs)
			_ = fromSend.RecordValue(max(fs/1e3, 1))
			pd := max(msg.Sent-msg.Intended, 0)
			maxPubDelay = max(maxPubDelay, pd)
			_ = pubDelay.RecordValue(pd / 1e3)
		}
	}
	if r.Completed > 0 && first < last {
		r.Wall = ms(time.Duration(last - first))
	}

	start := first // what completion times count from
	if m.StartStamp > 0 {
		start = min(start, m.StartStamp)
	}
	r.Throughput = steadyThroughput(recv, start, m.Window)
	if r.Bound > 0 {
		r.Efficiency = r.Throughput / r.Bound
	}
	r.Latency = histDist(r.hist, maxLat)
	r.Transit = exactDist(transit)
	if open {
		r.OpenLoop = &OpenLoop{
			Rate:         m.Rate,
			FromSend:     histDist(fromSend, maxFromSend),
			PublishDelay: histDist(pubDelay, maxPubDelay),
		}
		if span := lastIntended - first; span > 0 && r.Messages > 1 {
			r.OpenLoop.Offered = float64(r.Messages-1) / time.Duration(span).Seconds()
		}
	}

	best := -1.0
	for i := range r.Stages {
		st := &r.Stages[i]
		st.Name = pipelines.StageName(i)
		st.Defined = r.Durations[i]
		st.Messages = len(service[i])
		st.WorkersSeen = len(workers[i])
		st.Workers = st.WorkersSeen
		if i < len(opts.Workers) && opts.Workers[i] > 0 {
			st.Workers = opts.Workers[i]
		}
		r.Allocation[i] = st.Workers
		// Summed in float64: int64 nanoseconds overflow on stamps far
		// apart, and a negative busy time would make a negative
		// utilization.
		var busy float64
		for _, d := range service[i] {
			busy += float64(d)
		}
		st.Busy = busy / float64(time.Millisecond)
		st.Service = exactDist(service[i])
		st.Wait = exactDist(wait[i])
		if st.Workers > 0 && r.Wall > 0 {
			st.Utilization = st.Busy / (float64(st.Workers) * r.Wall)
		}
		if st.Messages > 0 && st.Utilization > best {
			best, r.Bottleneck = st.Utilization, st.Name
		}
	}
	return r, nil
}

// disorder says what is wrong with a completed message whose stamps do
// not follow its path (sent, each stage's arrival, start and end, the
// sink's receipt), naming the fields; "" when nothing is.
func disorder(msg *trace.Message) string {
	if msg.Sent < 0 || msg.Intended < 0 {
		return fmt.Sprintf("seq %d: negative sent or intended stamp", msg.Seq)
	}
	prevField, prev := "sent", msg.Sent
	for i, s := range msg.Stages {
		name := pipelines.StageName(i)
		switch {
		case s.Arrived < prev:
			return fmt.Sprintf("seq %d: stage %s arrived %d, before %s %d", msg.Seq, name, s.Arrived, prevField, prev)
		case s.Started < s.Arrived:
			return fmt.Sprintf("seq %d: stage %s started %d, before it arrived %d", msg.Seq, name, s.Started, s.Arrived)
		case s.Finished < s.Started:
			return fmt.Sprintf("seq %d: stage %s finished %d, before it started %d", msg.Seq, name, s.Finished, s.Started)
		}
		prevField, prev = "stage "+name+" finished", s.Finished
	}
	if msg.Received < prev {
		return fmt.Sprintf("seq %d: received %d, before %s %d", msg.Seq, msg.Received, prevField, prev)
	}
	return ""
}

// steadyThroughput is the runner's steady-state rate (pipelines.SteadyThroughput).
func steadyThroughput(recv []int64, start int64, window int) float64 {
	slices.Sort(recv)
	return pipelines.SteadyThroughput(recv, start, window)
}

// histDist summarizes an HDR histogram of microseconds; max is the exact
// maximum in nanoseconds.
func histDist(h *hdrhistogram.Histogram, maxNS int64) Dist {
	if h.TotalCount() == 0 {
		return Dist{}
	}
	at := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1e3 }
	return Dist{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1e3,
		P50:   at(50),
		P90:   at(90),
		P99:   at(99),
		P999:  at(99.9),
		Max:   ms(time.Duration(maxNS)),
	}
}

// exactDist summarizes nanosecond values exactly (nearest rank). It sorts vs.
func exactDist(vs []int64) Dist {
	n := len(vs)
	if n == 0 {
		return Dist{}
	}
	slices.SortFunc(vs, cmp.Compare)
	var sum float64
	for _, v := range vs {
		sum += float64(v)
	}
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(n))) - 1
		return ms(time.Duration(vs[min(max(i, 0), n-1)]))
	}
	return Dist{
		Count: int64(n),
		Mean:  sum / float64(n) / 1e6,
		P50:   at(0.50),
		P90:   at(0.90),
		P99:   at(0.99),
		P999:  at(0.999),
		Max:   ms(time.Duration(vs[n-1])),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func finite(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0
	}
	return x
}
