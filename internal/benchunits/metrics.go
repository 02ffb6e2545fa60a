package benchunits

import (
	"io"
	"math"
	"time"

	"github.com/natspipe/natspipe/bench/gate"
	"github.com/natspipe/natspipe/pipelines"
)

// Metric is one custom metric of a run: a value in its unit.
type Metric struct {
	Value float64
	Unit  string
}

// Metrics are the custom metrics every pipeline benchmark reports for a
// run (benchkit.Report on a testing.B, natspipe sweep in its results
// file): msgs/s (steady state), p50-ms, p90-ms, p99-ms and eff (throughput
// over the bound, when the bound is known).
func Metrics(res *pipelines.Result) []Metric {
	ms := []Metric{
		{res.Throughput, Throughput},
		{millis(res.LatencyAt(50)), P50},
		{millis(res.LatencyAt(90)), P90},
		{millis(res.LatencyAt(99)), P99},
	}
	if e := res.Efficiency(); !math.IsNaN(e) {
		ms = append(ms, Metric{e, Efficiency})
	}
	return ms
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteMetadata writes the custom units' directions (Directions) to w as
// benchfmt unit metadata lines ("Unit msgs/s better=higher
// assume=nothing"), for benchstat and the gate.
func WriteMetadata(w io.Writer) error {
	return gate.WriteUnitMetadataAssume(w, Directions(), "nothing")
}
