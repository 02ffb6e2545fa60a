package benchunits

import "strings"

// Share is the pattern of the per-worker share metrics a P3/P4 fleet
// benchmark reports for each stage with several workers: "s2-w1-share" is
// the share of stage S2's messages that its first worker handled, 0..1
// (fleet.Share.MetricName). The metrics carry no direction: an even share
// is the aim, and Imbalance is the one number to gate on.
const Share = "sN-wK-share"

// Doc is one row of the README's unit table: the units it explains, as the
// benchmarks print them, which way is better and what they mean.
type Doc struct {
	Units []string
	// Better is "higher" or "lower", from Directions for natspipe's
	// units and from Go for its standard ones; "-" for a unit with no
	// direction.
	Better  string
	Meaning string
}

// standard are Go's own units that natspipe's benchmarks print, with
// their directions (as the gate knows them).
var standardBetter = map[string]string{"ns/op": "lower", "B/op": "lower", "allocs/op": "lower"}

// Docs returns every unit natspipe's benchmarks print, in the README's
// order: Go's ns/op first, then the custom units (each of Directions, and
// the Share metrics), then Go's -benchmem units. It returns a new slice on
// every call.
func Docs() []Doc {
	docs := []Doc{
		{Units: []string{"ns/op"}, Meaning: "wall time over messages: one op is one message through every stage, pipeline fill and drain included"},
		{Units: []string{Throughput}, Meaning: "steady-state throughput: completions between the first and last tenth of the run, so fill and drain are left out"},
		{Units: []string{Efficiency}, Meaning: "`msgs/s` / theoretical bound of that configuration. Machine-independent for sleep work: this is the number the regression gate trusts"},
		{Units: []string{P50, P90, P99}, Meaning: "end-to-end latency, from send (open loop: *intended* send) to the last stage's end, from an HDR histogram"},
		{Units: []string{Startup}, Meaning: "worker processes' start-up until all are subscribed (P3/P4); not in the timed section"},
		{Units: []string{Share}, Meaning: "P3/P4 fleet benchmarks, per stage with several workers: the share of the stage's messages worker K handled, 0..1 (`s2-w1-share` 0.25 is S2's first of 4 workers at an even share); no direction, an even share is the aim"},
		{Units: []string{Imbalance}, Meaning: "P3/P4 fleet benchmarks: over the stages with several workers, the largest relative deviation of a worker's share from the even share, \\|share - 1/w\\| / (1/w); 0 is perfectly even, 1 means a worker got twice its share or none"},
		{Units: []string{HopCost, VsRaw}, Meaning: "`BenchmarkOverhead`: time per NATS hop with zero-duration stages and its ratio to a raw nats.go hop measured in the same run"},
		{Units: []string{OfRaw}, Meaning: "`BenchmarkMessaging`: the variant's msgs/s over a raw nats.go chain's at the same window, measured in the same run"},
		{Units: []string{"B/op", "allocs/op"}, Meaning: "harness-process allocations per message (`-benchmem`); they must not grow with the message count"},
	}
	dirs := Directions()
	for i := range docs {
		d := &docs[i]
		u := d.Units[0]
		switch {
		case u == Share:
			d.Better = "-"
		case standardBetter[u] != "":
			d.Better = standardBetter[u]
		default:
			d.Better = dirs[u].String()
		}
	}
	return docs
}

// MarkdownTable is the README's unit table, generated from Docs: a header
// and one row per Doc.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| unit | better | meaning |\n|---|---|---|\n")
	for _, d := range Docs() {
		units := make([]string, len(d.Units))
		for i, u := range d.Units {
			units[i] = "`" + u + "`"
		}
		b.WriteString("| " + strings.Join(units, ", ") + " | " + d.Better + " | " + d.Meaning + " |\n")
	}
	return b.String()
}
