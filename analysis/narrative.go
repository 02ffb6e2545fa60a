package analysis

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Narrative tells the report's story in a few sentences, generated from its
// runs alone: a paragraph per run (its bound, measured throughput and
// efficiency, its bottleneck, and where a message's time goes: queue wait,
// service or transit), then, for several runs, a paragraph on what differs
// between them. natspipe report puts it at the top of report.html.
func (rep *Report) Narrative() []string {
	var out []string
	for _, r := range rep.Runs {
		out = append(out, r.narrative())
	}
	if len(rep.Runs) > 1 {
		out = append(out, rep.comparison())
	}
	return out
}

// timeShares is how a run's mean message time splits: queue wait, service
// and transit, in ms, and the stage with the longest mean wait.
type timeShares struct {
	wait, service, transit float64
	waitStage              string
	waitMax                float64
}

func (r *Run) shares() timeShares {
	s := timeShares{transit: r.Transit.Mean}
	for _, st := range r.Stages {
		s.wait += st.Wait.Mean
		s.service += st.Service.Mean
		if st.Wait.Mean > s.waitMax {
			s.waitStage, s.waitMax = st.Name, st.Wait.Mean
		}
	}
	return s
}

func (s timeShares) total() float64 { return s.wait + s.service + s.transit }

// largest names the largest part of the time: "queue wait", "service" or
// "transit".
func (s timeShares) largest() string {
	switch {
	case s.wait >= s.service && s.wait >= s.transit:
		return "queue wait"
	case s.service >= s.transit:
		return "service"
	}
	return "transit"
}

func pct(part, whole float64) string {
	if whole <= 0 {
		return "0%"
	}
	return strconv.FormatFloat(math.Round(100*part/whole), 'f', 0, 64) + "%"
}

// sourceText says how the run's source sent.
func (r *Run) sourceText() string {
	switch {
	case r.OpenLoop != nil && r.Bound > 0:
		return fmt.Sprintf("open loop at %s msgs/s (%.2f of the bound)", rate(r.Rate), r.Rate/r.Bound)
	case r.OpenLoop != nil:
		return fmt.Sprintf("open loop at %s msgs/s", rate(r.Rate))
	case r.Window > 0:
		return fmt.Sprintf("closed loop, window %d", r.Window)
	}
	return "closed loop"
}

func (r *Run) narrative() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: variant %s", r.Label, dash(r.Variant))
	if r.Transport != "" {
		fmt.Fprintf(&b, " over %s", r.TransportName())
	}
	if len(r.Allocation) > 0 {
		fmt.Fprintf(&b, ", workers %s", r.AllocationString())
	}
	fmt.Fprintf(&b, ", %s. ", r.sourceText())
	switch {
	case r.Bound > 0 && r.OpenLoop != nil:
		fmt.Fprintf(&b, "Bound %s msgs/s, measured %s msgs/s: efficiency %s (open loop: throughput follows the offered rate). ", rate(r.Bound), rate(r.Throughput), eff(r.Efficiency))
	case r.Bound > 0:
		fmt.Fprintf(&b, "Bound %s msgs/s, measured %s msgs/s: efficiency %s. ", rate(r.Bound), rate(r.Throughput), eff(r.Efficiency))
	default:
		fmt.Fprintf(&b, "No bound known; measured %s msgs/s. ", rate(r.Throughput))
	}
	if i := slices.IndexFunc(r.Stages, func(s Stage) bool { return s.Name == r.Bottleneck }); i >= 0 {
		st := r.Stages[i]
		use := fmt.Sprintf("utilization %.2f", st.Utilization)
		if st.Utilization > 1 {
			use = fmt.Sprintf("%.1f messages in work on average", st.Utilization)
		}
		fmt.Fprintf(&b, "Bottleneck %s (%s a message, %d worker%s, %s). ",
			st.Name, Millis(st.Defined), st.Workers, plural(st.Workers), use)
	}
	s := r.shares()
	if tot := s.total(); tot > 0 {
		fmt.Fprintf(&b, "A message's %s on average: %s queue wait", Millis(tot), pct(s.wait, tot))
		if s.waitStage != "" && s.wait >= 0.05*tot {
			fmt.Fprintf(&b, " (most at %s, %s)", s.waitStage, Millis(s.waitMax))
		}
		fmt.Fprintf(&b, ", %s service, %s transit; p50 %s against a floor of %s.",
			pct(s.service, tot), pct(s.transit, tot), Millis(r.Latency.P50), Millis(r.Floor))
	}
	return strings.TrimSpace(b.String())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// extremes returns the runs with the lowest and highest value of f among
// those with ok true; nil when none is.
func extremes(runs []*Run, f func(*Run) float64, ok func(*Run) bool) (lo, hi *Run) {
	for _, r := range runs {
		if !ok(r) {
			continue
		}
		if lo == nil || f(r) < f(lo) {
			lo = r
		}
		if hi == nil || f(r) > f(hi) {
			hi = r
		}
	}
	return lo, hi
}

// grouped lists runs by a key, keys in first-seen order: "S2 in p0, p1;
// S3 in p4".
func grouped(runs []*Run, key func(*Run) string) string {
	var keys []string
	by := map[string][]string{}
	for _, r := range runs {
		k := key(r)
		if k == "" {
			continue
		}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], r.Label)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " in " + strings.Join(by[k], ", ")
	}
	return strings.Join(parts, "; ")
}

// comparison is the paragraph on what differs between the runs.
func (rep *Report) comparison() string {
	runs := rep.Runs
	var b strings.Builder
	all := func(*Run) bool { return true }
	bounded := func(r *Run) bool { return r.Bound > 0 }
	fmt.Fprintf(&b, "Across the %d runs: ", len(runs))
	if lo, hi := extremes(runs, func(r *Run) float64 { return r.Efficiency }, bounded); lo != nil && lo != hi {
		fmt.Fprintf(&b, "efficiency from %s (%s) to %s (%s). ", eff(lo.Efficiency), lo.Label, eff(hi.Efficiency), hi.Label)
	}
	if lo, hi := extremes(runs, func(r *Run) float64 { return r.Bound }, bounded); lo != nil && lo.Bound != hi.Bound {
		fmt.Fprintf(&b, "The bounds span %sx, from %s msgs/s (%s) to %s (%s). ",
			ratio(hi.Bound/lo.Bound), rate(lo.Bound), lo.Label, rate(hi.Bound), hi.Label)
	}
	if lo, hi := extremes(runs, func(r *Run) float64 { return r.Throughput }, all); lo != hi {
		fmt.Fprintf(&b, "Measured throughput from %s msgs/s (%s) to %s (%s). ", rate(lo.Throughput), lo.Label, rate(hi.Throughput), hi.Label)
	}
	fmt.Fprintf(&b, "Bottleneck: %s. ", grouped(runs, func(r *Run) string { return r.Bottleneck }))
	fmt.Fprintf(&b, "Most of a message's time is %s. ", grouped(runs, func(r *Run) string {
		if r.shares().total() <= 0 {
			return ""
		}
		return r.shares().largest()
	}))
	if lo, hi := extremes(runs, func(r *Run) float64 { return r.Latency.P50 }, all); lo != hi {
		fmt.Fprintf(&b, "p50 latency from %s (%s) to %s (%s)", Millis(lo.Latency.P50), lo.Label, Millis(hi.Latency.P50), hi.Label)
		closed := func(r *Run) bool { return r.OpenLoop == nil && r.Window > 0 }
		if wlo, whi := extremes(runs, func(r *Run) float64 { return float64(r.Window) }, closed); wlo != nil && wlo.Window != whi.Window {
			fmt.Fprintf(&b, "; the closed-loop windows differ (%d to %d), and a closed-loop latency includes the queue behind its window, so compare latency at equal offered load in open-loop runs", wlo.Window, whi.Window)
		}
		b.WriteString(".")
	}
	return strings.TrimSpace(b.String())
}

// ratio formats a ratio with 2 significant figures: 64, 4.5, 12.
func ratio(v float64) string {
	if v >= 10 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
