// Command natspipe is the natspipe command line: it runs pipelines against a
// NATS server, analyses their traces and gates benchmark results.
//
//	natspipe run -variant p4 -alloc 1-4-1-1 -n 300 -trace traces/
//	natspipe run -f testdata/pipelines/seed.yaml
//	natspipe plan -workers 7 testdata/pipelines/seed.yaml
//	natspipe sweep -workers 7 -o sweep7 testdata/pipelines/seed.yaml
//	natspipe analyze -o report/ traces/
//	natspipe gate [flags] BASE.txt NEW.txt   fail when NEW regresses against BASE
//
// Run "natspipe help" for the list of subcommands.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand: it takes the arguments after its name and
// returns the process exit code.
type command struct {
	run     func(args []string, stdout, stderr io.Writer) int
	summary string
}

func commands() map[string]command {
	return map[string]command{
		"analyze":        {runAnalyze, "per-stage and end-to-end analysis of trace files; -o DIR adds plots and an HTML report"},
		"report":         {runReport, "write plots and an HTML report of trace files into -o DIR"},
		"plan":           {runPlan, "rank allocations of -workers N over a pipeline file's stages by bound and predicted latency; -target R: fewest workers"},
		"run":            {runRun, "run one pipeline variant once against NATS_URL or an embedded server; optional trace"},
		"worker":         {runWorker, "serve one stage of a P3/P4 pipeline (the same as natspipe-worker)"},
		"sweep":          {runSweep, "run a pipeline file's configurations (variants, allocations, transports, loads) -count times: one Go benchmark results file and one report"},
		"gate":           {runGate, "compare two Go benchmark files; exit 1 on a statistically significant regression"},
		"server-version": {runServerVersion, "print the NATS server version benchmarks use (NATS_URL or embedded)"},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "natspipe: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: natspipe COMMAND [flags] [args]")
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, cmds[n].summary)
	}
}
