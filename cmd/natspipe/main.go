// Command natspipe is the natspipe command line: it runs pipelines against a
// NATS server, analyses their traces and gates benchmark results.
//
//	natspipe run -variant p4 -alloc 1-4-1-1 -n 300 -trace traces/
//	natspipe run -f testdata/pipelines/seed.yaml
//	natspipe plan -workers 7 testdata/pipelines/seed.yaml
//	natspipe sweep -workers 7 -o sweep7 testdata/pipelines/seed.yaml
//	natspipe analyze -o report/ traces/
//	natspipe gate [flags] BASE.txt NEW.txt   fail when NEW regresses against BASE
//	natspipe version
//
// Every command takes its settings from its flags, then the NATSPIPE_*
// variables that stand for them (as the benchmarks read them), then a
// pipeline file (see flags.go). Run "natspipe help" for the list of
// subcommands and "natspipe CMD -h" for one's flags and examples.
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
		"run":            {runRun, "run one pipeline variant once against NATS_URL or an embedded server; optional trace and CSV row"},
		"worker":         {runWorker, "serve one stage of a P3/P4 pipeline (the same as natspipe-worker)"},
		"sweep":          {runSweep, "run a pipeline file's configurations (variants, allocations, transports, loads) -count times: one Go benchmark results file and one report"},
		"gate":           {runGate, "compare two Go benchmark files; exit 1 on a statistically significant regression"},
		"server-version": {runServerVersion, "print the NATS server version benchmarks use (NATS_URL or embedded)"},
		"version":        {runVersion, "print natspipe's version and commit, the Go version and the nats-server and nats.go it was built with"},
		"help":           {nil, "print this help, or a command's: natspipe help COMMAND"},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs the command args name and returns the exit status: help
// on stdout, usage errors on stderr as one line and a hint.
func dispatch(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		fmt.Fprintf(stderr, "natspipe: no command\nrun 'natspipe help' for the commands\n")
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if args[0] == "help" && len(args) > 1 {
			if _, ok := cmds[args[1]]; !ok || args[1] == "help" {
				fmt.Fprintf(stderr, "natspipe help: unknown command %q\nrun 'natspipe help' for the commands\n", args[1])
				return exitUsage
			}
			return cmds[args[1]].run([]string{"-h"}, stdout, stderr)
		}
		usage(stdout, cmds)
		return exitOK
	case "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	}
	c, ok := cmds[args[0]]
	if !ok || c.run == nil {
		fmt.Fprintf(stderr, "natspipe: unknown command %q\nrun 'natspipe help' for the commands\n", args[0])
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

// usage is natspipe help: what natspipe is, its commands, the settings'
// order, the exit statuses and examples.
func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprint(w, `natspipe runs staged pipelines over NATS (P0 function calls, P1/P2 in one
process, P3/P4 worker processes), measures throughput against the bound and
latency, and analyses, reports and gates the results.

usage: natspipe COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, `
Settings, highest first: flags; environment variables (NATSPIPE_* as for the
benchmarks, NATS_* for the server); a pipeline file (-f); the defaults.

Exit status: 0 ok; 1 a run failed (lost or duplicated messages, a fault, a
server not reached) or a regression; 2 a bad command, flag, value, variable
or file. Each command's -h describes it, its flags and examples.

Examples:
  natspipe run -variant p4 -alloc 1-4-1-1 -n 300 -trace traces/
  natspipe help run
  natspipe analyze traces/
  natspipe version
`)
}
