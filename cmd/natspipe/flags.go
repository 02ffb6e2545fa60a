package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// The configuration layer of every subcommand, github.com/peterbourgon/ff
// over the standard flag.FlagSet, highest precedence first:
//
//  1. the command line (ff.Parse of the flags; -h prints the help);
//  2. the environment: the README's NATSPIPE_* variables that a command's
//     flags stand for (envVar), read by ff (WithEnvVarPrefix) for the
//     flags the command line did not give, each value parsed and checked by
//     the reader the benchmarks use (pipelines.SpecFromEnv, p4.AllocFromEnv,
//     worker.ModeFromEnv, transports.FromEnv, ...), so that a variable means
//     the same to natspipe as to go test -bench;
//  3. the pipeline file of -f (natspipe run; ff's config file, read by
//     pipelines/pipefile), for the flags neither gave: a flag set from the
//     environment counts as given, as one from the command line does.
//
// The NATS_* connection settings keep their own order (natsconn: flag,
// variable, NATS CLI context).

// help is a subcommand's -h text: what it does, its flags (from its flag
// set) and a few examples.
type help struct {
	synopsis string   // "natspipe run [flags]"
	about    string   // what the command does, in a few lines
	examples []string // 2 to 4 command lines
}

// print writes the help to w: the synopsis, the description, the flags
// with their defaults and the examples.
func (h help) print(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", h.synopsis, strings.TrimSpace(h.about))
	if fs != nil && hasFlags(fs) {
		fmt.Fprint(w, "\nFlags:\n")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	if len(h.examples) > 0 {
		fmt.Fprint(w, "\nExamples:\n")
		for _, e := range h.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// usageExit reports a usage error of natspipe cmd on stderr, the error on
// one line and where the help is on the next, and returns exitUsage.
func usageExit(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "natspipe %s: %v\n%s\n", cmd, err, usageHint(cmd))
	return exitUsage
}

// usageHint says where a command's help is.
func usageHint(cmd string) string {
	return fmt.Sprintf("run 'natspipe %s -h' for its flags and examples", cmd)
}

// parseCommand parses a subcommand's command line into fs with ff. Flags
// may come before, between or after the positional arguments, which it
// returns; everything after "--" is positional. On -h (or -help) it
// prints the help to stdout and returns done with exit 0; on a bad flag
// or value, the error and a hint to stderr and done with exit 2.
func parseCommand(cmd string, fs *flag.FlagSet, args []string, h help, stdout, stderr io.Writer) (pos []string, code int, done bool) {
	// The flag package would print the error and the whole flag list to
	// fs's output: the error goes out on one line, the help on -h only.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		h.print(stdout, fs)
		return nil, exitOK, true
	case err != nil:
		return nil, usageExit(stderr, cmd, err), true
	}
	return pos, exitOK, false
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns, with ff.Parse (the command
// line only; the environment and file layers are the caller's). Everything
// after "--" is positional. The error is the flag package's, which names
// the flag and its value.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := ff.Parse(fs, args); err != nil {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner // ff's "error parsing commandline arguments: " says nothing more
			}
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// setFlags is the set of flags of fs that have been set (by the command
// line, or by a later layer through fs.Set).
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// envPrefix is the prefix of natspipe's own variables: ff maps the flag
// "alloc" of an environment flag set to NATSPIPE_ALLOC.
const envPrefix = "NATSPIPE"

// envVar is a variable of the README that stands for a flag: the value it
// gives the flag, when set and the command line did not give the flag.
type envVar struct {
	name string // the variable, NATSPIPE_ followed by the name in upper case
	flag string // the flag it sets
	// read parses and checks v, the variable's value (not empty), with the
	// reader the benchmarks use, and returns it in the flag's syntax; ""
	// leaves the flag unset (NATSPIPE_INFLIGHT=0: "not set" to the
	// benchmarks too). Its error names the variable and the value.
	read func(v string) (string, error)
}

// key is the name ff reads the variable by: the part after NATSPIPE_,
// in lower case with "-" for "_".
func (e envVar) key() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(e.name, envPrefix+"_")), "_", "-")
}

// envError is a variable's bad value, as its reader describes it.
type envError struct{ err error }

func (e *envError) Error() string { return e.err.Error() }
func (e *envError) Unwrap() error { return e.err }

// envValue is the flag.Value through which ff hands a variable's value
// over: its reader checks it and sets the command's flag.
type envValue struct {
	e    envVar
	fs   *flag.FlagSet
	from map[string]string
}

func (v *envValue) String() string { return "" }

func (v *envValue) Set(s string) error {
	val, err := v.e.read(s)
	if err != nil {
		return &envError{err}
	}
	if val == "" {
		return nil
	}
	if err := v.fs.Set(v.e.flag, val); err != nil {
		return &envError{fmt.Errorf("%s=%q: %w", v.e.name, s, err)}
	}
	v.from[v.e.flag] = v.e.name
	return nil
}

// applyEnv sets the flags of fs that are not set yet from their variables
// of envs (layer 2), through ff, and returns which variable set which
// flag. A bad value is an error naming the variable and the value.
func applyEnv(fs *flag.FlagSet, envs []envVar) (map[string]string, error) {
	from := map[string]string{}
	given := setFlags(fs)
	efs := flag.NewFlagSet("environment", flag.ContinueOnError)
	efs.SetOutput(io.Discard)
	for _, e := range envs {
		if given[e.flag] {
			continue // the command line's value wins: the variable is not read
		}
		efs.Var(&envValue{e: e, fs: fs, from: from}, e.key(), "set by $"+e.name)
	}
	if err := ff.Parse(efs, nil, ff.WithEnvVarPrefix(envPrefix)); err != nil {
		var ee *envError
		if errors.As(err, &ee) {
			return nil, ee.err
		}
		return nil, fmt.Errorf("read the environment: %w", err)
	}
	return from, nil
}

// without is envs less the variables of the flags named.
func without(envs []envVar, flags ...string) []envVar {
	return slices.DeleteFunc(slices.Clone(envs), func(e envVar) bool { return slices.Contains(flags, e.flag) })
}
