package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/natspipe/natspipe/analysis"
	"github.com/natspipe/natspipe/analysis/plots"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// Exit codes of "natspipe analyze" and "natspipe report".
const (
	analyzeExitOK    = 0
	analyzeExitError = 1 // no trace could be read and analysed, or the report not written
	analyzeExitUsage = 2 // bad flags or arguments
)

// analyzeHelp is natspipe analyze -h.
func analyzeHelp() help {
	return help{
		synopsis: "natspipe analyze [flags] TRACE...",
		about: `Analyses natspipe traces (.jsonl, or .csv with fewer facts) side by side and
prints text tables: configurations, runs (throughput against bound,
end-to-end latency percentiles, transit), stages (service time, queue wait,
utilization, the bottleneck marked *), for open-loop runs, latency from
the intended send and publish delay, then each run's account: its lost,
late, unaccounted, duplicate and stray messages by seq and its worker
incidents, in the lines natspipe run printed. A TRACE may be a directory: its .jsonl
files are read (its .csv files if it has no .jsonl). A trace that cannot be
read or has no completed message is skipped with a note on stderr; it fails
only when no trace is usable.

The text fits 100 columns: a wider table is split into parts ("runs
(continued)") that repeat the run, long lines wrap; -wide prints the full
tables and the account lines unwrapped. With -o DIR it also writes the
report, as natspipe report does. With -json it prints JSON instead of tables.
It reads no environment variable: write traces with NATSPIPE_TRACE=DIR when
running benchmarks, or natspipe run -trace DIR.

Exit status: 0 analysed; 1 no trace usable or the report not written; 2 a bad
flag or no TRACE.`,
		examples: []string{
			"natspipe run -variant p4 -n 300 -trace traces/ && natspipe analyze traces/",
			"natspipe analyze -wide -labels sync,async traces/p4-sync.jsonl traces/p4-async.jsonl",
			"natspipe analyze -json traces/ > analysis.json",
		},
	}
}

// reportHelp is natspipe report -h.
func reportHelp() help {
	return help{
		synopsis: "natspipe report -o DIR [flags] TRACE...",
		about: `Writes DIR/report.html, one self-contained file: a generated account of the
runs (per run the bound, measured throughput and efficiency, the bottleneck,
where a message's time goes; then what differs between the runs), the
charts embedded (efficiency per run, throughput with its bound on a log
axis past 10x, per-stage wait and service, latency by percentile with each
closed-loop window, latency at equal offered load for open-loop runs, a
timeline per run) and the analysis tables of "natspipe analyze". Each chart
is also written as PNG and SVG in DIR, -size WxH each (8x5in, which is
768x480 px at 96 dpi), and the numbers as DIR/analysis.json. Prints the
report's path. A trace that cannot be read or has no completed message is
skipped with a note on stderr; it fails only when no trace is usable.

Exit status: 0 written; 1 no trace usable or the report not written; 2 a bad
flag, no -o or no TRACE.`,
		examples: []string{
			"NATSPIPE_TRACE=traces/suite go test -run '^$' -bench 'Suite/work=sleep' -benchtime 200x ./bench",
			"natspipe report -o report -size 10x6in traces/suite",
			"natspipe report -o report -labels sync,async traces/p4-sync.jsonl traces/p4-async.jsonl",
		},
	}
}

// runAnalyze implements "natspipe analyze": args are the arguments after the
// subcommand; the tables go to stdout, errors to stderr; it returns the exit
// code (analyzeExit*).
func runAnalyze(args []string, stdout, stderr io.Writer) int {
	return analyzeCommand("analyze", args, stdout, stderr)
}

// runReport implements "natspipe report": like analyze, but writing the
// report into -o DIR (required) and printing only its path.
func runReport(args []string, stdout, stderr io.Writer) int {
	return analyzeCommand("report", args, stdout, stderr)
}

func analyzeCommand(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	h := analyzeHelp()
	if name == "report" {
		h = reportHelp()
	}
	var (
		jsonOut  bool
		out      = fs.String("o", "", "write charts, analysis.json and report.html into `DIR`")
		workers  = fs.String("workers", "", "workers per stage for utilization, e.g. `1,4,1,1` (default: the distinct workers each trace shows)")
		labels   = fs.String("labels", "", "comma-separated `names` for the traces, in order (default: variant, then allocation, then file name)")
		timeline = fs.Int("timeline", 20, "messages shown in each timeline `N`")
		size     = fs.String("size", "8x5in", "each chart's size `WxH` in in, cm, mm, pt or px (the default unit; PNGs are 96 dpi): 8x5in is 768x480")
		wide     bool
	)
	if name == "analyze" {
		fs.BoolVar(&wide, "wide", false, "print the tables at full width instead of fitting them to 100 columns")
	}
	if name == "analyze" {
		fs.BoolVar(&jsonOut, "json", false, "print the analysis as JSON instead of tables")
	}
	paths, code, done := parseCommand(name, fs, args, h, stdout, stderr)
	if done {
		return code
	}
	usageErr := func(format string, a ...any) int {
		return usageExit(stderr, name, fmt.Errorf(format, a...))
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "natspipe %s: %v\n", name, err)
		return analyzeExitError
	}
	if len(paths) == 0 {
		return usageErr("no trace files")
	}
	if name == "report" && *out == "" {
		return usageErr("-o DIR is required")
	}
	if *timeline < 1 {
		return usageErr("-timeline %d: want at least 1", *timeline)
	}
	width, height, err := plots.ParseSize(*size)
	if err != nil {
		return usageErr("-size: %v", err)
	}
	var opts analysis.Options
	if *workers != "" {
		for _, f := range strings.Split(*workers, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return usageErr("-workers %q: want non-negative counts such as 1,4,1,1", *workers)
			}
			opts.Workers = append(opts.Workers, n)
		}
	}
	if *labels != "" {
		opts.Labels = strings.Split(*labels, ",")
	}

	files, err := traceFiles(paths)
	if err != nil {
		return fail(err)
	}
	if len(opts.Labels) > 0 && len(opts.Labels) != len(files) {
		return usageErr("-labels has %d names for %d traces", len(opts.Labels), len(files))
	}
	traces, kept, skipped := usableTraces(files, stderr, name)
	if len(traces) == 0 {
		return fail(fmt.Errorf("no usable traces (%d skipped)", skipped))
	}
	if len(opts.Labels) > 0 {
		labels := make([]string, len(kept))
		for i, k := range kept {
			labels[i] = opts.Labels[k]
		}
		opts.Labels = labels
	}
	rep, err := analysis.Analyze(traces, opts)
	if err != nil {
		return fail(err)
	}
	for _, r := range rep.Runs {
		if r.Skipped > 0 {
			fmt.Fprintf(stderr, "natspipe %s: %s: left out %d message(s) with stamps out of order, the first: %s\n", name, r.Label, r.Skipped, r.Skip)
		}
	}

	var reportPath string
	if *out != "" {
		reportPath, err = plots.WriteReport(rep, *out, plots.Options{Timeline: *timeline, Width: width, Height: height})
		if err != nil {
			return fail(err)
		}
	}
	switch {
	case name == "report":
		fmt.Fprintln(stdout, reportPath)
	case jsonOut:
		err = rep.WriteJSON(stdout)
	default:
		textWidth := analysis.TextWidth
		if wide {
			textWidth = 0
		}
		err = rep.WriteTextWidth(stdout, textWidth)
		if err == nil && reportPath != "" {
			_, err = fmt.Fprintf(stdout, "\nreport: %s\n", reportPath)
		}
	}
	if err != nil {
		return fail(err)
	}
	return analyzeExitOK
}

// usableTraces reads files and returns the traces worth analysing, with
// their indexes in files. A trace that cannot be read (the reader's error
// names the file, line and field) or has no completed message is skipped
// with a line on stderr saying which and why; skipped counts them.
func usableTraces(files []string, stderr io.Writer, name string) (traces []*trace.Trace, kept []int, skipped int) {
	for i, f := range files {
		t, err := trace.ReadFile(f)
		if err == nil {
			err = hasCompletions(t)
		}
		if err != nil {
			fmt.Fprintf(stderr, "natspipe %s: skipped %v\n", name, err) // err names f
			skipped++
			continue
		}
		traces = append(traces, t)
		kept = append(kept, i)
	}
	return traces, kept, skipped
}

// hasCompletions reports an error when no message of t came back: such a
// run has no latency, service time or throughput to show or plot.
func hasCompletions(t *trace.Trace) error {
	for i := range t.Messages {
		if t.Messages[i].Completed() {
			return nil
		}
	}
	return fmt.Errorf("%s: no completed messages (%d in the trace, %d lost)", t.Source, len(t.Messages), len(t.Meta.Lost))
}

// traceFiles expands directories into the trace files they hold: the .jsonl
// files, or the .csv files when there is no .jsonl, in name order.
func traceFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		for _, ext := range []string{"*.jsonl", "*.csv"} {
			found, err = filepath.Glob(filepath.Join(p, ext))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if len(found) > 0 {
				break
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no .jsonl or .csv traces in the directory", p)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}
