package main

import (
	"errors"
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
	analyzeExitError = 1 // a trace could not be read or analysed, or the report not written
	analyzeExitUsage = 2 // bad flags or arguments
)

const analyzeUsage = `usage: natspipe analyze [flags] TRACE...

Analyses natspipe traces (.jsonl, or .csv with fewer facts) side by side and
prints text tables: configurations, runs (throughput against bound,
end-to-end latency percentiles, transit), stages (service time, queue wait,
utilization, the bottleneck marked *) and, for open-loop runs, latency from
the intended send and publish delay. A TRACE may be a directory: its .jsonl
files are read (its .csv files if it has no .jsonl).

With -o DIR it also writes the charts (PNG and SVG), analysis.json and
report.html into DIR. With -json it prints JSON instead of tables.

Write traces with NATSPIPE_TRACE=DIR when running benchmarks.

Flags:
`

const reportUsage = `usage: natspipe report -o DIR [flags] TRACE...

Writes DIR/report.html: the analysis tables of "natspipe analyze" and its
charts (latency by percentile, per-stage wait and service, throughput against
bound, a timeline per run), as PNG and SVG in DIR, with the numbers as
DIR/analysis.json. Prints the report's path.

Flags:
`

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
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if name == "report" {
			fmt.Fprint(stderr, reportUsage)
		} else {
			fmt.Fprint(stderr, analyzeUsage)
		}
		fs.PrintDefaults()
	}
	var (
		jsonOut  bool
		out      = fs.String("o", "", "write charts, analysis.json and report.html into `DIR`")
		workers  = fs.String("workers", "", "workers per stage for utilization, e.g. `1,4,1,1` (default: the distinct workers each trace shows)")
		labels   = fs.String("labels", "", "comma-separated `names` for the traces, in order (default: variant, then allocation, then file name)")
		timeline = fs.Int("timeline", 20, "messages shown in each timeline `N`")
	)
	if name == "analyze" {
		fs.BoolVar(&jsonOut, "json", false, "print the analysis as JSON instead of tables")
	}
	paths, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return analyzeExitOK
	}
	if err != nil {
		return analyzeExitUsage // the flag package has printed the error and usage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "natspipe %s: %s\n", name, fmt.Sprintf(format, a...))
		fs.Usage()
		return analyzeExitUsage
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
	traces := make([]*trace.Trace, 0, len(files))
	for _, f := range files {
		t, err := trace.ReadFile(f)
		if err != nil {
			return fail(err)
		}
		traces = append(traces, t)
	}
	rep, err := analysis.Analyze(traces, opts)
	if err != nil {
		return fail(err)
	}

	var reportPath string
	if *out != "" {
		reportPath, err = plots.WriteReport(rep, *out, plots.Options{Timeline: *timeline})
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
		err = rep.WriteText(stdout)
		if err == nil && reportPath != "" {
			_, err = fmt.Fprintf(stdout, "\nreport: %s\n", reportPath)
		}
	}
	if err != nil {
		return fail(err)
	}
	return analyzeExitOK
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
