package gate_test

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/natspipe/natspipe/bench/gate"
)

// results writes one benchmark's samples in the Go benchmark format, as
// "go test -bench -count=N" prints them.
func results(name, unit string, samples ...float64) string {
	var b strings.Builder
	for _, v := range samples {
		fmt.Fprintf(&b, "%s \t100\t%g %s\n", name, v, unit)
	}
	return b.String()
}

// oldNew are two small benchmark files: the candidate's throughput fell by
// about 10%, beyond the default 5% threshold, and its time per op is
// unchanged. The "Unit" metadata line says which way msgs/s improves.
func oldNew() (base, cand gate.Input) {
	const meta = "Unit msgs/s better=higher\n"
	return gate.Input{Name: "old.txt", R: strings.NewReader(meta +
			results("BenchmarkPipeline-4", "ns/op", 100, 101, 99, 100, 102, 98) +
			results("BenchmarkPipeline-4", "msgs/s", 100, 101, 99, 100, 102, 98))},
		gate.Input{Name: "new.txt", R: strings.NewReader(meta +
			results("BenchmarkPipeline-4", "ns/op", 101, 99, 100, 102, 98, 100) +
			results("BenchmarkPipeline-4", "msgs/s", 90, 91, 89, 90, 92, 88))}
}

// Compare two benchmark files held in memory and print each verdict.
func ExampleCompare() {
	base, cand := oldNew()
	report, err := gate.Compare(base, cand, gate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range report.Comparisons {
		fmt.Printf("%s %s: %+.0f%% (better=%s) %s\n", c.Name, c.Unit, 100*c.Change, c.Better, c.Verdict)
	}
	fmt.Println(report.Status())
	// Output:
	// BenchmarkPipeline-4 sec/op: +0% (better=lower) ~
	// BenchmarkPipeline-4 msgs/s: -10% (better=higher) REGRESSED
	// FAIL
}

// Format prints the report as "natspipe gate" does.
func ExampleReport_Format() {
	base, cand := oldNew()
	report, err := gate.Compare(base, cand, gate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := report.Format(os.Stdout); err != nil {
		log.Fatal(err)
	}
	// Output:
	// baseline:  old.txt
	// candidate: new.txt
	// values: median ± 95% confidence interval; p: Mann-Whitney U test; a regression needs p < 0.05 and a worse change beyond the limit
	//
	// benchmark            unit    baseline     candidate    change   p      n    limit  verdict
	// BenchmarkPipeline-4  sec/op  100.0n ± 2%  100.0n ± 2%  +0.00%   1.000  6+6  +5%    ~
	// BenchmarkPipeline-4  msgs/s  100.00 ± 2%  90.00 ± 2%   -10.00%  0.002  6+6  -5%    REGRESSED
	//
	// Regressions (1):
	//   BenchmarkPipeline-4 msgs/s: -10.00% worse (100.0 -> 90.00), p=0.002, limit -5% (built-in)
	//
	// gate: FAIL: 1 regressed of 2 comparisons
}

// The gate knows only the units of the testing package (KnownUnits). A
// project passes the directions of its own metrics in Options.Units, for
// files that carry no unit metadata; here a rise in p99-ms is a
// regression, a rise in msgs/s an improvement.
func ExampleOptions_units() {
	base := results("BenchmarkPipeline-4", "p99-ms", 80, 81, 79, 80, 82, 78) +
		results("BenchmarkPipeline-4", "msgs/s", 100, 101, 99, 100, 102, 98)
	cand := results("BenchmarkPipeline-4", "p99-ms", 96, 97, 95, 96, 98, 94) +
		results("BenchmarkPipeline-4", "msgs/s", 110, 111, 109, 110, 112, 108)

	report, err := gate.Compare(
		gate.Input{Name: "old.txt", R: strings.NewReader(base)},
		gate.Input{Name: "new.txt", R: strings.NewReader(cand)},
		gate.Options{Units: map[string]gate.Direction{
			"msgs/s": gate.HigherIsBetter,
			"p99-ms": gate.LowerIsBetter,
		}})
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range report.Comparisons {
		fmt.Printf("%s: %s\n", c.Unit, c.Verdict)
	}
	fmt.Println(report.Status(), len(report.Warnings), "warnings")
	// Output:
	// p99-ms: REGRESSED
	// msgs/s: improved
	// FAIL 0 warnings
}

// Benchmark binaries declare their custom units' directions by printing
// unit metadata before their results, so that every reader of the file
// (this gate, benchstat) agrees on them.
func ExampleWriteUnitMetadataAssume() {
	units := map[string]gate.Direction{"msgs/s": gate.HigherIsBetter, "p99-ms": gate.LowerIsBetter}
	if err := gate.WriteUnitMetadataAssume(os.Stdout, units, "nothing"); err != nil {
		log.Fatal(err)
	}
	// Output:
	// Unit msgs/s better=higher assume=nothing
	// Unit p99-ms better=lower assume=nothing
}
