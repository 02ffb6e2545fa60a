package gate

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// metric is one measurement of a synthetic benchmark: a unit, its true
// value, and the relative standard deviation of gaussian noise (0 for an
// exact value).
type metric struct {
	unit  string
	value float64
	noise float64
}

// fakeBench is a synthetic benchmark.
type fakeBench struct {
	name    string
	metrics []metric
}

// fixture writes count repetitions of benches in the format of
// "go test -bench -count", with the usual configuration header,
// "=== RUN"-style noise lines and the given leading lines (for example
// unit metadata). Noise is drawn from a PCG seeded with seed, so the
// output is deterministic.
func fixture(seed uint64, count int, benches []fakeBench, lead ...string) string {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	var b strings.Builder
	for _, l := range lead {
		b.WriteString(l + "\n")
	}
	b.WriteString("goos: linux\ngoarch: amd64\npkg: github.com/natspipe/natspipe/bench\n")
	fmt.Fprintf(&b, "cpu: Fake CPU @ 3.00GHz\ncommit: %x\n", seed)
	for _, fb := range benches {
		b.WriteString(fb.name + "\n") // "go test -v" prints the bare name first; benchfmt skips it
		for range count {
			fmt.Fprintf(&b, "%s \t     100\t", fb.name)
			for _, m := range fb.metrics {
				v := m.value * (1 + m.noise*rng.NormFloat64())
				fmt.Fprintf(&b, " %.6g %s", v, m.unit)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("PASS\nok  \tgithub.com/natspipe/natspipe/bench\t12.345s\n")
	return b.String()
}

// pipelineBench is a benchmark reporting every project unit, with 3%
// noise on the measured ones and exact allocation counts. scale maps a
// unit to a factor applied to its true value, to inject changes.
func pipelineBench(name string, scale map[string]float64) fakeBench {
	ms := []metric{
		{"ns/op", 10e6, 0.03},
		{"msgs/s", 100, 0.03},
		{"eff", 0.95, 0.03},
		{"p50-ms", 70, 0.03},
		{"p99-ms", 90, 0.03},
		{"B/op", 4096, 0.01},
		{"allocs/op", 40, 0},
	}
	for i := range ms {
		if f, ok := scale[ms[i].unit]; ok {
			ms[i].value *= f
		}
	}
	return fakeBench{name: name, metrics: ms}
}

// addAllocs returns fb with delta added to its allocs/op.
func addAllocs(fb fakeBench, delta float64) fakeBench {
	ms := append([]metric(nil), fb.metrics...)
	for i := range ms {
		if ms[i].unit == "allocs/op" {
			ms[i].value += delta
		}
	}
	return fakeBench{name: fb.name, metrics: ms}
}

const (
	benchP4 = "BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep-4"
	benchP3 = "BenchmarkP3/mode=sync/work=sleep-4"
)

// metaLines declares the project's directions the way the benchmarks do.
func metaLines() []string {
	return []string{"Unit msgs/s better=higher", "Unit eff better=higher assume=nothing", "Unit p99-ms better=lower"}
}

// pipelineUnits is a caller's table of its own units (Options.Units), as
// natspipe's internal/benchunits is: the gate knows none of them itself.
func pipelineUnits() map[string]Direction {
	return map[string]Direction{
		"msgs/s": HigherIsBetter,
		"eff":    HigherIsBetter,
		"p50-ms": LowerIsBetter,
		"p99-ms": LowerIsBetter,
		"ns/hop": LowerIsBetter,
		"of-raw": HigherIsBetter,
	}
}
