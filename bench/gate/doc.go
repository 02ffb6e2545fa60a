// Package gate is a statistically sound benchmark regression gate.
//
// It compares two files in the Go benchmark format (a baseline and a
// candidate, each normally holding several -count repetitions of every
// benchmark) and decides, per benchmark and unit, whether the candidate
// regressed. It is built directly on golang.org/x/perf: benchfmt reads the
// files (including "key: value" configuration lines and "Unit" metadata
// lines), benchproc filters and groups the results, and benchmath computes
// the summaries and significance tests. It does not parse benchstat's text
// output.
//
// # Identity
//
// Results are grouped by the projection "pkg,.fullname" plus the unit: the
// package and the full benchmark name, including sub-benchmark keys and the
// -GOMAXPROCS suffix ("BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep-4").
// Every other configuration key (goos, goarch, cpu, commit, durations,
// nats-server, ...) is ignored for identity, so a baseline recorded on
// another commit still lines up. A warning is reported when a single file
// aggregates, under one identity, results whose other configuration differs.
//
// # Statistics
//
// For each benchmark and unit, the samples of each side are summarised by
// the unit's benchmath assumption: by default benchmath.AssumeNothing, that
// is the median with a distribution-free confidence interval (95% by
// default), compared with the Mann-Whitney U test. Unit metadata
// "assume=exact" or "assume=normal" selects benchmath.AssumeExact or
// benchmath.AssumeNormal instead.
//
// A comparison is a regression when both hold:
//
//   - the difference is significant: p < alpha (default 0.05), and
//   - the centre (median) moved in the unit's worse direction by more than
//     the threshold that applies to it.
//
// Moves in the better direction are improvements and never fail. A
// significant move in the worse direction that stays within the threshold
// is "tolerated". The threshold is what makes the gate reliable on noisy
// machines: two samples of one distribution differ significantly in about
// alpha of all runs, but their medians rarely differ by more than a few
// standard errors.
//
// With few samples the U test cannot reach small p-values at all (with 3
// samples a side the smallest possible p is 0.1). A comparison with fewer
// than Options.MinSamples (default 6) samples on either side, or fewer than
// the chosen alpha needs, is refused rather than judged; Report.Status then
// reports Incomplete unless Options.AllowSmall turns refusals into
// warnings. Units with assume=exact need one sample.
//
// # Input checks
//
// Every measurement of both files is checked before anything is compared,
// whatever the filter: NaN, +Inf and -Inf (as written, or after benchfmt
// scaled the unit, as 1e308 MB/s becomes B/s), magnitudes above
// MaxMagnitude, and negative values of the units whose direction the gate
// is given as a table (KnownUnits and Options.Units: measurements, none of
// which can be negative) are refused, as are more than MaxSamples samples
// of one benchmark and unit. The error names the file and line and wraps
// ErrBadInput; "natspipe gate" exits 2. (go-moremath's Mann-Whitney U test
// never returns on a NaN.) A summary or test that still fails on the
// samples (assume=normal's t-test panics when a variance underflows) is an
// ErrBadInput error naming the benchmark and unit, not a verdict.
//
// # Directions
//
// Whether higher or lower is better for a unit is resolved in this order:
// a rule with "better=" (configuration file or command-line flag); the
// "better=" unit metadata of the candidate or the baseline file (if both
// declare it and they disagree, that is an error unless a rule settles the
// unit); the caller's table of its own units (Options.Units); the units
// of the testing package (see KnownUnits: sec/op, B/op and allocs/op are
// lower-is-better, B/s higher-is-better); otherwise lower-is-better, with a
// warning. The gate knows no other units: a project declares its custom
// metrics in the files, as benchfmt unit metadata its benchmark binaries
// print (WriteUnitMetadata), or passes them as Options.Units ("natspipe
// gate" passes natspipe's). For "assume=" the candidate's metadata
// overrides the baseline's.
//
// # Thresholds and the configuration file
//
// A threshold is either relative, written with a percent sign ("5%": the
// median may get worse by up to 5% of the baseline median), or absolute,
// written as a plain number ("0.5": the median may get worse by up to 0.5
// in the unit named by the rule). The built-in rules are:
//
//	threshold=5%                  every unit
//	unit=allocs/op threshold=0.5  any increase of a whole allocation per op
//
// The allocs/op rule is absolute because allocation counts are close to
// deterministic: one extra allocation per operation is a real code change
// whatever the baseline count, while a relative threshold would hide it in
// allocation-heavy benchmarks and flag rounding noise in almost
// allocation-free ones.
//
// Rules can be added by a configuration file (see ParseConfig) and by
// flags (see ParseRule). The file is line oriented; blank lines and
// everything after a "#" that starts a field are ignored. Every other line
// is a set of space-separated key=value fields:
//
//	# global settings
//	alpha=0.01
//	threshold=3%                                  # default for all units
//	unit=msgs/s threshold=3%                      # one unit
//	unit=allocs/op threshold=1                    # absolute, in allocs/op
//	unit=msgs/s better=higher                     # direction of a unit
//	bench=^BenchmarkP4/ unit=eff threshold=10%    # one unit of some benchmarks
//	bench=/work=cpu threshold=15%                 # every unit of some benchmarks
//
// Keys: "bench" is a regular expression (Go syntax, no spaces) matched
// against the full benchmark name as written in the file, "Benchmark"
// prefix and -GOMAXPROCS suffix included; "unit" is a unit as written in
// benchmark output (ns/op and sec/op name the same unit; an absolute
// threshold is given in the unit as written); "threshold" as above;
// "better" is "higher" or "lower" and needs "unit" and no "bench";
// "alpha" stands alone on its line. When several rules set a threshold for
// a comparison, the most specific wins (bench and unit, then bench, then
// unit, then neither) and among equally specific rules the last one wins.
// Built-in rules come first, then the configuration file, then flags.
package gate
