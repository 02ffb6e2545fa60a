package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/trace"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Exit statuses of natspipe run.
const (
	exitOK     = 0 // the run passed
	exitFailed = 1 // the run failed: lost messages, a fault, a server unreachable, a trace not written
	exitUsage  = 2 // a bad flag, argument or environment variable: nothing was started
)

// usageError is a bad flag, argument or environment variable of natspipe
// run, found before anything starts. runExit turns it into exitUsage;
// every other error is the run's own, exitFailed.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// badInput marks err, if any, as a usage error.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// usagef is a usage error with a formatted message.
func usagef(format string, a ...any) error { return badInput(fmt.Errorf(format, a...)) }

// runExit is natspipe run's exit status for err: the one place that tells
// bad input (2) from a failed run (1) and an interrupted one (130).
func runExit(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pipelines.ErrInterrupted):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFailed
}

// Bounds of natspipe run -liveness: below 100 ms the fleet's requests (every
// liveness/4) would flood a busy worker, and a scheduling hiccup would name
// it unresponsive; above an hour a frozen worker would go unnoticed for the
// whole of most runs.
const (
	minLiveness = 100 * time.Millisecond
	maxLiveness = time.Hour
)

// checkRunOptions checks every value of natspipe run that can be checked on
// its own, and NATSPIPE_CLOCK (the variables that stand for flags have been
// checked by their readers in runOptions.layer): each error is a usage
// error naming the flag or variable, its value and what is wanted; a value
// that came from the environment is named by its variable (o.from). set
// holds the flags given on the command line or by the environment.
func checkRunOptions(o runOptions, set map[string]bool) error {
	if err := pipelines.CheckClockEnv(nil); err != nil {
		return badInput(err)
	}
	// The P3/P4 workers natspipe run starts inherit these; a bad value
	// would stop each of them before it is ready.
	if v, ok := os.LookupEnv(worker.EnvLogLevel); ok {
		if _, err := worker.ParseLogLevel(v); err != nil {
			return usagef("%s=%q: %v", worker.EnvLogLevel, v, err)
		}
	}
	if v, ok := os.LookupEnv(worker.EnvLogFormat); ok {
		if _, err := worker.ParseLogFormat(v); err != nil {
			return usagef("%s=%q: %v", worker.EnvLogFormat, v, err)
		}
	}
	if _, err := variants.Lookup(o.variant); err != nil {
		return usagef("-variant %q: want %s", o.variant, oneOf(variants.Names()))
	}
	if _, err := transports.Lookup(o.transport); err != nil {
		return usagef("%s: want %s", o.arg("transport", strconv.Quote(o.transport)), oneOf(transports.Names()))
	}
	ds, err := pipelines.ParseServiceTimes(o.durations)
	if err != nil {
		return usagef("%s: %v", o.arg("durations", strconv.Quote(o.durations)), err)
	}
	if _, err := pipelines.ParseWorkModel(o.work); err != nil {
		return usagef("%s: %v", o.name("work"), err)
	}
	if o.payload < 0 || o.payload > pipelines.MaxPayload {
		return usagef("%s: want 0 to %d bytes", o.arg("payload", strconv.Itoa(o.payload)), pipelines.MaxPayload)
	}
	if hi := pipelines.MaxMessagesFor(len(ds)); o.n < 1 || o.n > hi {
		if hi < pipelines.MaxMessages && o.n > hi {
			return usagef("-n %d with %d stages: want at most %d messages (messages x stages at most %d)",
				o.n, len(ds), hi, pipelines.MaxStageRecords)
		}
		return usagef("-n %d: want 1 to %d messages", o.n, hi)
	}
	if o.window < 0 || o.window > pipelines.MaxWindow {
		return usagef("%s: want 0 (sized by Little's law) to %d", o.arg("window", strconv.Itoa(o.window)), pipelines.MaxWindow)
	}
	if o.inflight < 1 || o.inflight > pipelines.MaxInflight {
		return usagef("%s: want 1 to %d", o.arg("inflight", strconv.Itoa(o.inflight)), pipelines.MaxInflight)
	}
	alloc, err := p4.ParseAlloc(o.alloc)
	if err != nil {
		return usagef("%s: %v", o.name("alloc"), err)
	}
	if o.variant == "p4" {
		if err := alloc.Check(len(ds)); err != nil {
			return usagef("%s: %v (one count per stage of %s)", o.name("alloc"), err, o.name("durations"))
		}
	}
	mode, err := worker.ParseMode(o.mode)
	if err != nil {
		return usagef("%s: %v", o.name("mode"), err)
	}
	if o.concurrency < 0 || o.concurrency > pipelines.MaxConcurrency {
		return usagef("%s: want 0 (default %d) to %d", o.arg("concurrency", strconv.Itoa(o.concurrency)), worker.DefaultConcurrency, pipelines.MaxConcurrency)
	}
	if (o.variant == "p3" || o.variant == "p4") && mode == worker.Sync && o.concurrency > 1 {
		return usagef("%s: a sync worker works on one message at a time; add -mode async", o.arg("concurrency", strconv.Itoa(o.concurrency)))
	}
	if math.IsNaN(o.rate) || math.IsInf(o.rate, 0) || o.rate < 0 || o.rate > pipelines.MaxRate {
		return usagef("-rate %v: want a finite rate in msgs/s, above 0 and at most %g (0: closed loop)", o.rate, pipelines.MaxRate)
	}
	if math.IsNaN(o.load) || math.IsInf(o.load, 0) || o.load < 0 || o.load > pipelines.MaxLoad {
		return usagef("-load %v: want a finite fraction of the bound, above 0 and at most %g (above 1 overloads; 0: closed loop)", o.load, pipelines.MaxLoad)
	}
	if o.rate != 0 && o.load != 0 {
		return usagef("-rate %v and -load %v: give one", o.rate, o.load)
	}
	switch a := pipelines.Arrivals(o.arrivals); a {
	case pipelines.Fixed, pipelines.Poisson:
	default:
		return usagef("-arrivals %q: want %q or %q", o.arrivals, pipelines.Fixed, pipelines.Poisson)
	}
	if o.liveness < minLiveness || o.liveness > maxLiveness {
		return usagef("-liveness %v: want %v to %v", o.liveness, minLiveness, maxLiveness)
	}
	if o.lossTimeout < 0 || o.lossTimeout > pipelines.MaxRun {
		return usagef("-loss-timeout %v: want 0 (derived) or a positive duration up to %v", o.lossTimeout, pipelines.MaxRun)
	}
	if o.timeout < 0 || o.timeout > pipelines.MaxRun {
		return usagef("%s: want 0 (derived from the bound) or a positive duration up to %v", o.arg("timeout", o.timeout.String()), pipelines.MaxRun)
	}
	if o.workerPath != "" {
		if err := checkExecutable(o.workerPath); err != nil {
			return usagef("-worker: %v", err)
		}
	}
	if err := checkAttach(o, set); err != nil {
		return err
	}
	if o.traceName != "" && o.traceDir == "" {
		return usagef("-trace-name %q: needs -trace DIR (or %s)", o.traceName, trace.EnvTrace)
	}
	return nil
}

// Bounds of natspipe run -ready-timeout.
const (
	minReadyTimeout = time.Second
	maxReadyTimeout = time.Hour
)

// checkAttach checks -attach and the flags that go with it.
func checkAttach(o runOptions, set map[string]bool) error {
	if o.readyTimeout < minReadyTimeout || o.readyTimeout > maxReadyTimeout {
		return usagef("-ready-timeout %v: want %v to %v", o.readyTimeout, minReadyTimeout, maxReadyTimeout)
	}
	if o.replicas < 0 || o.replicas > 5 {
		return usagef("-replicas %d: want 0 (1) to 5", o.replicas)
	}
	if o.replicas > 1 && o.transport != "js" {
		return usagef("-replicas %d: replicates a JetStream stream; needs -transport js", o.replicas)
	}
	if !o.attach {
		for _, name := range []string{"prefix", "stop-workers"} {
			if set[name] {
				return usagef("-%s: needs -attach", name)
			}
		}
		return nil
	}
	if v, _ := variants.Lookup(o.variant); !v.Processes {
		return usagef("-attach: -variant %s has no worker processes to attach to (want p3 or p4)", o.variant)
	}
	if o.nats.URL == "" && o.nats.Context == "" {
		return usagef("-attach: needs the workers' NATS server: -url or %s", natsconn.EnvURL)
	}
	if set["worker"] || set["on-worker-exit"] {
		return usagef("-attach: -worker and -on-worker-exit are for workers natspipe run starts")
	}
	if err := worker.CheckPrefix(o.prefix); err != nil {
		return usagef("-prefix: %v", err)
	}
	return nil
}

// name is how an error names the flag flagName of o: the environment
// variable when one gave it, else the flag.
func (o runOptions) name(flagName string) string {
	if v := o.from[flagName]; v != "" {
		return v
	}
	return "-" + flagName
}

// arg is how an error names the flag flagName of o with its value v:
// "-window 5", or "NATSPIPE_WINDOW=5" when the variable gave it.
func (o runOptions) arg(flagName, v string) string {
	if e := o.from[flagName]; e != "" {
		return e + "=" + v
	}
	return "-" + flagName + " " + v
}

// checkExecutable reports a path that is not an executable regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file (%v)", path, fi.Mode())
	}
	return nil
}

// checkPlan checks what needs the configuration's bound: an open-loop load
// needs a finite bound, and neither the messages nor the window may take
// longer than pipelines.MaxRun at the bound or the open-loop rate (which
// also keeps the runner's derived timeouts within a time.Duration).
func checkPlan(o runOptions, bound float64) error {
	maxRun := pipelines.MaxRun.Seconds()
	finite := !math.IsInf(bound, 1) && bound > 0
	if o.load != 0 {
		if !finite {
			return usagef("-load %v: the bound of -variant %s with -durations %q is unlimited; give -rate instead", o.load, o.variant, o.durations)
		}
		if r := o.load * bound; r > pipelines.MaxRate {
			return usagef("-load %v: %v x the bound of %.3g msgs/s is above %g msgs/s", o.load, o.load, bound, pipelines.MaxRate)
		}
	}
	rate := o.rate
	if o.load != 0 {
		rate = o.load * bound
	}
	if rate > 0 {
		if t := float64(o.n) / rate; t > maxRun {
			return usagef("-n %d at %.3g msgs/s takes %.1fh: want at most %v (lower -n or raise -rate/-load)", o.n, rate, t/3600, pipelines.MaxRun)
		}
	}
	if !finite {
		return nil
	}
	if t := float64(o.n) / bound; t > maxRun {
		return usagef("-n %d at the bound of %.3g msgs/s takes %.1fh: want at most %v (lower -n or shorten -durations)", o.n, bound, t/3600, pipelines.MaxRun)
	}
	if t := float64(o.window) / bound; t > maxRun {
		return usagef("-window %d at the bound of %.3g msgs/s takes %.1fh to drain: want at most %v", o.window, bound, t/3600, pipelines.MaxRun)
	}
	return nil
}

// probeTrace checks, last before the run starts, that the trace directory
// can be written; the error names the directory and the OS error, and
// -trace or the variable that gave it (o.from; the set argument is not
// needed for that any more).
func probeTrace(o runOptions, _ map[string]bool) error {
	if o.traceDir == "" {
		return nil
	}
	if err := trace.ProbeDir(o.traceDir); err != nil {
		return usagef("%s: %v", o.name("trace"), err)
	}
	return nil
}

// oneOf lists names as "a, b or c".
func oneOf(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
