package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/natspipe/natspipe/bench/gate"
	"github.com/natspipe/natspipe/internal/benchunits"
)

// Exit codes of "natspipe gate".
const (
	gateExitPass       = 0 // nothing regressed
	gateExitRegression = 1 // a regression (or, with -strict-missing, a missing benchmark)
	gateExitError      = 2 // bad usage, unreadable input, or comparisons refused for too few samples
)

// gateHelp is natspipe gate -h.
func gateHelp() help {
	return help{
		synopsis: "natspipe gate [flags] BASE.txt NEW.txt\n       natspipe gate -print-units [-better unit=higher|lower ...]",
		about: `Compares two files in the Go benchmark format (run the benchmarks with
-count 6 or more) and fails when a benchmark got significantly worse
(p < alpha, Mann-Whitney U test) by more than the unit's threshold.
Improvements never fail. It reads no environment variable.

Exit status: 0 pass, 1 regression, 2 a bad flag, an unreadable input, or
comparisons refused for too few samples.`,
		examples: []string{
			"natspipe gate base.txt new.txt",
			"natspipe gate -filter '.unit:eff' -unit-threshold eff=0.05 base.txt new.txt",
			"natspipe gate -config bench/gate.conf -strict-missing base.txt new.txt",
		},
	}
}

// gateStringList is a repeatable string flag.
type gateStringList []string

func (l *gateStringList) String() string { return strings.Join(*l, ", ") }

func (l *gateStringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// runGate implements "natspipe gate". args are the arguments after the
// subcommand name. The report goes to stdout, errors to stderr; the
// result is the process exit code (see gateExit*).
func runGate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gate", flag.ContinueOnError)
	var (
		alpha          = fs.Float64("alpha", gate.DefaultAlpha, "significance `level`: a change counts only if p < level")
		threshold      = fs.String("threshold", "5%", "default threshold for units without a more specific rule: `N%` relative or N absolute (allocs/op has a built-in 0.5)")
		configPath     = fs.String("config", "", "read thresholds, directions and alpha from `FILE` (see go doc github.com/natspipe/natspipe/bench/gate)")
		allowSmall     = fs.Bool("allow-small", false, "report comparisons with too few samples as warnings instead of exiting 2")
		strictMissing  = fs.Bool("strict-missing", false, "fail (exit 1) when a benchmark is in only one file")
		filter         = fs.String("filter", "", "benchproc filter `expression` applied to both files, e.g. '.unit:eff' or '/work:sleep'")
		minSamples     = fs.Int("min-samples", gate.DefaultMinSamples, "fewest samples per side to judge a comparison")
		printUnits     = fs.Bool("print-units", false, "print benchfmt unit metadata lines (Unit X better=...) for the standard and natspipe units and exit")
		unitThresholds gateStringList
		betters        gateStringList
		rules          gateStringList
	)
	fs.Var(&unitThresholds, "unit-threshold", "per-unit threshold `unit=T`, e.g. msgs/s=3% or allocs/op=1 (repeatable)")
	fs.Var(&betters, "better", "direction of a unit, `unit=higher|lower` (repeatable)")
	fs.Var(&rules, "rule", "a configuration-file `line`, e.g. 'bench=^BenchmarkP4/ unit=eff threshold=10%' (repeatable)")

	files, code, done := parseCommand("gate", fs, args, gateHelp(), stdout, stderr)
	if done {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "natspipe gate: %v\n", err)
		return gateExitError
	}
	// badFlag is fail for a bad flag or argument: the hint follows.
	badFlag := func(err error) int { return usageExit(stderr, "gate", err) }
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opts := gate.Options{
		AllowSmall:    *allowSmall,
		StrictMissing: *strictMissing,
		Filter:        *filter,
		MinSamples:    *minSamples,
		Units:         benchunits.Directions(),
	}
	if *minSamples < 2 {
		return badFlag(fmt.Errorf("-min-samples %d: want at least 2", *minSamples))
	}
	if *configPath != "" {
		cfg, err := gate.ReadConfigFile(*configPath)
		if err != nil {
			return fail(err)
		}
		opts.Alpha = cfg.Alpha
		opts.Rules = append(opts.Rules, cfg.Rules...)
	}
	if set["alpha"] || opts.Alpha == 0 {
		if !(*alpha > 0 && *alpha < 1) {
			return badFlag(fmt.Errorf("-alpha %g: want a number between 0 and 1", *alpha))
		}
		opts.Alpha = *alpha
	}
	if set["threshold"] {
		r, err := gate.ParseRule("threshold="+*threshold, "-threshold")
		if err != nil {
			return badFlag(fmt.Errorf("-threshold: %w", err))
		}
		opts.Rules = append(opts.Rules, r)
	}
	for _, f := range []struct {
		flag, key, want string
		values          []string
	}{
		{"-unit-threshold", "threshold", "want unit=threshold, e.g. msgs/s=3%", unitThresholds},
		{"-better", "better", "want unit=higher or unit=lower", betters},
	} {
		for _, s := range f.values {
			r, err := gateUnitRule(f.flag, f.key, f.want, s)
			if err != nil {
				return badFlag(err)
			}
			opts.Rules = append(opts.Rules, r)
		}
	}
	for _, s := range rules {
		r, err := gate.ParseRule(s, "-rule")
		if err != nil {
			return badFlag(fmt.Errorf("-rule %q: %w", s, err))
		}
		opts.Rules = append(opts.Rules, r)
	}

	if *printUnits {
		if len(files) != 0 {
			return badFlag(errors.New("-print-units takes no files"))
		}
		units := gate.KnownUnits()
		maps.Copy(units, benchunits.Directions())
		for _, r := range opts.Rules {
			if r.Better != gate.Unknown {
				units[r.Unit] = r.Better
			}
		}
		if err := gate.WriteUnitMetadata(stdout, units); err != nil {
			return fail(err)
		}
		return gateExitPass
	}
	if len(files) != 2 {
		return badFlag(fmt.Errorf("want 2 files (BASE.txt NEW.txt), got %d", len(files)))
	}

	report, err := gate.CompareFiles(files[0], files[1], opts)
	if err != nil {
		return fail(err)
	}
	if err := report.Format(stdout); err != nil {
		return fail(err)
	}
	switch report.Status() {
	case gate.Fail:
		return gateExitRegression
	case gate.Incomplete:
		fmt.Fprintf(stderr, "natspipe gate: %d comparison(s) refused for too few samples; rerun with more -count or pass -allow-small\n", len(report.Refused))
		return gateExitError
	}
	return gateExitPass
}

// gateUnitRule parses s, the value "unit=value" of the command-line flag
// flagName, as the rule "unit=<unit> <key>=<value>". want says what the
// flag takes, for when s has no unit.
func gateUnitRule(flagName, key, want, s string) (gate.Rule, error) {
	i := strings.LastIndex(s, "=")
	if i <= 0 {
		return gate.Rule{}, fmt.Errorf("%s %q: %s", flagName, s, want)
	}
	r, err := gate.ParseRule("unit="+s[:i]+" "+key+"="+s[i+1:], flagName+" "+s)
	if err != nil {
		return gate.Rule{}, fmt.Errorf("%s %q: %w", flagName, s, err)
	}
	return r, nil
}
