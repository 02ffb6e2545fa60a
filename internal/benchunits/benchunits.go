// Package benchunits names the custom metrics natspipe's benchmarks report
// (b.ReportMetric, after the standard ns/op) and says, for each, whether
// higher or lower is better. Benchmark binaries print the table as benchfmt
// unit metadata ("Unit msgs/s better=higher", see benchkit.PrintUnits), so
// benchstat and the gate read the directions from the files; "natspipe
// gate" also passes it to bench/gate (gate.Options.Units) for files without
// that metadata. bench/gate itself knows only Go's standard units.
//
// It is a plain table, free of the testing package, so the commands can
// link it.
package benchunits

import "github.com/natspipe/natspipe/bench/gate"

// The units of natspipe's custom metrics, as reported: free of spaces, so
// benchstat and benchfmt read them as one unit each.
const (
	// Throughput is measured steady-state throughput, messages per second.
	Throughput = "msgs/s"
	// Efficiency is Throughput over the theoretical throughput bound.
	Efficiency = "eff"
	// P50, P90 and P99 are end-to-end latency percentiles in milliseconds.
	P50 = "p50-ms"
	P90 = "p90-ms"
	P99 = "p99-ms"
	// Startup is the time a multi-process fleet takes to be ready, in
	// milliseconds.
	Startup = "startup-ms"
	// Imbalance is, over the stages with several workers, the largest
	// relative deviation of a worker's share of its stage's messages from
	// the even share (fleet.Imbalance).
	Imbalance = "imbalance"
	// HopCost is the messaging cost of one hop, in nanoseconds.
	HopCost = "ns/hop"
	// VsRaw is HopCost over the cost of a raw nats.go hop.
	VsRaw = "x-raw"
	// OfRaw is a variant's pure-messaging throughput over a raw nats.go
	// chain's, measured in the same run (BenchmarkMessaging).
	OfRaw = "of-raw"
)

// Directions returns the direction of every unit above, keyed by the unit
// as reported (ns/hop, not benchfmt's tidied sec/hop). It returns a new
// map on every call.
func Directions() map[string]gate.Direction {
	return map[string]gate.Direction{
		Throughput: gate.HigherIsBetter,
		Efficiency: gate.HigherIsBetter,
		P50:        gate.LowerIsBetter,
		P90:        gate.LowerIsBetter,
		P99:        gate.LowerIsBetter,
		Startup:    gate.LowerIsBetter,
		Imbalance:  gate.LowerIsBetter,
		HopCost:    gate.LowerIsBetter,
		VsRaw:      gate.LowerIsBetter,
		OfRaw:      gate.HigherIsBetter,
	}
}
