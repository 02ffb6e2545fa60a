package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v3"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/pipefile"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// registerFileFlags adds -f and its long form -pipeline to fs.
func registerFileFlags(fs *flag.FlagSet, file *string) {
	const usage = "pipeline `FILE` (YAML, see testdata/pipelines/seed.yaml); flags and environment variables override it"
	fs.StringVar(file, "f", "", usage)
	fs.StringVar(file, "pipeline", "", "the same as -f")
}

// runEnvs are the README's variables that stand for natspipe run flags,
// each read as the benchmarks read it. The README's other variables are
// read where they are used (NATS_* by natsconn, NATSPIPE_CLOCK and
// NATSPIPE_SLOWDOWN before the run starts, RABBITMQ_URL and KAFKA_BROKERS
// by their transports) or are the test suite's own (NATSPIPE_SWEEP,
// NATSPIPE_TOPOLOGY, NATSPIPE_QUEUEING, NATSPIPE_REQUIRE_BROKERS), which
// natspipe run does not read.
func runEnvs() []envVar {
	// only is an environment holding just name=v, for the readers that
	// take one.
	only := func(name, v string) pipelines.Getenv {
		return func(k string) string {
			if k == name {
				return v
			}
			return ""
		}
	}
	spec := func(name string, field func(pipelines.Spec) string) func(string) (string, error) {
		return func(v string) (string, error) {
			s, err := pipelines.SpecFromEnv(pipelines.DefaultSpec(), only(name, v))
			if err != nil {
				return "", err
			}
			return field(s), nil
		}
	}
	integer := func(name string, zeroUnset bool) func(string) (string, error) {
		return func(v string) (string, error) {
			n, err := pipelines.IntFromEnv(only(name, v), name, 0)
			if err != nil || (n == 0 && zeroUnset) {
				return "", err
			}
			return strconv.Itoa(n), nil
		}
	}
	return []envVar{
		{pipelines.EnvDurations, "durations", spec(pipelines.EnvDurations, pipelines.Spec.TimesString)},
		{pipelines.EnvWork, "work", spec(pipelines.EnvWork, func(s pipelines.Spec) string { return string(s.Work) })},
		{pipelines.EnvPayload, "payload", spec(pipelines.EnvPayload, func(s pipelines.Spec) string { return strconv.Itoa(s.PayloadSize) })},
		{pipelines.EnvWindow, "window", integer(pipelines.EnvWindow, false)},
		// 0 is the benchmarks' "not set" (they sweep): the flag's default.
		{pipelines.EnvInflight, "inflight", integer(pipelines.EnvInflight, true)},
		{pipelines.EnvConcurrency, "concurrency", integer(pipelines.EnvConcurrency, false)},
		{pipelines.EnvTimeout, "timeout", func(v string) (string, error) {
			d, err := pipelines.DurationFromEnv(only(pipelines.EnvTimeout, v), pipelines.EnvTimeout, 0)
			return d.String(), err
		}},
		{p4.EnvAlloc, "alloc", func(v string) (string, error) {
			a, err := p4.AllocFromEnv(only(p4.EnvAlloc, v), nil)
			return a.String(), err
		}},
		{worker.EnvMode, "mode", func(v string) (string, error) {
			m, err := worker.ModeFromEnv(only(worker.EnvMode, v), "")
			return string(m), err
		}},
		{transports.EnvTransport, "transport", func(v string) (string, error) {
			ts, err := transports.FromEnv(only(transports.EnvTransport, v))
			if err != nil {
				return "", err
			}
			if len(ts) != 1 || strings.TrimSpace(v) == transports.EveryName {
				return "", fmt.Errorf("%s=%q: natspipe run runs over one transport: want one of %s (a list or %q is for the benchmarks and natspipe sweep)",
					transports.EnvTransport, v, strings.Join(transports.Names(), ", "), transports.EveryName)
			}
			return ts[0].Name(), nil
		}},
		// natspipe run resolves a relative directory against the current
		// one, as -trace does (the benchmarks: against the module root).
		{"NATSPIPE_TRACE", "trace", func(v string) (string, error) { return v, nil }},
	}
}

// layer completes o, whose command line fs has parsed, from the layers
// below it: the variables of envs for the flags not given, then the
// pipeline file o.file, if any, for the flags neither gave. o.set
// becomes the flags given by either, o.from the variables that gave them.
func (o *runOptions) layer(fs *flag.FlagSet, envs []envVar) error {
	from, err := applyEnv(fs, envs)
	if err != nil {
		return badInput(err)
	}
	o.from, o.set = from, setFlags(fs)
	if o.file == "" {
		return nil
	}
	var p *pipefile.Pipeline
	err = ff.Parse(fs, nil, ff.WithConfigFile(o.file), ff.WithConfigFileParser(func(r io.Reader, set func(name, value string) error) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if p, err = pipefile.Parse(o.file, data); err != nil {
			return err
		}
		return pipelineFileValues(p, o.set, set)
	}))
	var fe *pipefile.Error
	var pe *iofs.PathError
	switch {
	case errors.As(err, &fe):
		return badInput(fe)
	case errors.As(err, &pe):
		return usagef("-f %s: %v", o.file, pe.Err)
	case err != nil:
		return usagef("-f %s: %v", o.file, err)
	}
	if o.traceName == "" && o.traceDir != "" && p.Name != "" {
		o.traceName = p.Name + "-" + o.variant + "-" + strconv.Itoa(o.n)
	}
	return nil
}

// pipelineFileValues hands ff each natspipe run flag the pipeline file p
// gives, in the flag's syntax; ff sets those the command line and the
// environment (given) did not. An open-loop rate or load of the file is
// not taken when the other is given.
func pipelineFileValues(p *pipefile.Pipeline, given map[string]bool, set func(name, value string) error) error {
	for _, name := range slices.Sorted(maps.Keys(p.Given)) {
		var v string
		switch name {
		case "durations":
			v = p.Spec.TimesString()
		case "work":
			v = string(p.Spec.Work)
		case "payload":
			v = strconv.Itoa(p.Spec.PayloadSize)
		case "seed":
			v = strconv.FormatUint(p.Spec.Seed, 10)
		case "n":
			v = strconv.Itoa(p.Messages)
		case "variant":
			v = p.Variant
		case "transport":
			v = p.Transport
		case "alloc":
			v = p.Alloc.String()
		case "mode":
			v = string(p.Mode)
		case "concurrency":
			v = strconv.Itoa(p.Concurrency)
		case "inflight":
			v = strconv.Itoa(p.Inflight)
		case "window":
			v = strconv.Itoa(p.Window)
		case "rate":
			if given["load"] {
				continue
			}
			v = strconv.FormatFloat(p.Rate, 'g', -1, 64)
		case "load":
			if given["rate"] {
				continue
			}
			v = strconv.FormatFloat(p.Load, 'g', -1, 64)
		case "arrivals":
			v = string(p.Arrivals)
		default:
			return fmt.Errorf("%s: field for -%s: natspipe run has no such flag", p.Name, name)
		}
		if err := set(name, v); err != nil {
			return err
		}
	}
	return nil
}
