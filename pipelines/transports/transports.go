// Package transports lists the brokers natspipe can run its pipelines over
// (see pipelines/transport), and which of them the benchmarks run over:
// FromEnv for most benchmarks (the default transport unless
// NATSPIPE_TRANSPORT says otherwise), Compared for the few whose result is
// the difference between transports (every transport by default). Adding a
// transport is its own package plus one line in All.
package transports

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
	"github.com/natspipe/natspipe/pipelines/transport/core"
	"github.com/natspipe/natspipe/pipelines/transport/js"
	"github.com/natspipe/natspipe/pipelines/transport/kafka"
)

// EnvTransport selects the transports benchmarks run over: a comma-separated
// list of names ("core", "js", "core,js") or "all" (every transport of All),
// applied to every benchmark. Unset, the benchmarks run over the Default
// transport only, except the few that exist to compare transports (see
// Compared), which run over all of them.
const EnvTransport = "NATSPIPE_TRANSPORT"

// EveryName is the value of EnvTransport that selects every transport.
const EveryName = "all"

// Default is the transport used when none is named: core NATS.
const Default = core.Name

// ErrUnknown is wrapped by Lookup's error for a name no transport has.
var ErrUnknown = errors.New("unknown transport")

// All is every transport, the default first.
func All() []transport.Transport {
	return []transport.Transport{core.Transport{}, js.Transport{}, amqp.Transport{}, kafka.Transport{}}
}

// Names are the names of All, in order.
func Names() []string {
	var ns []string
	for _, t := range All() {
		ns = append(ns, t.Name())
	}
	return ns
}

// Lookup returns the transport called name; "" is Default.
func Lookup(name string) (transport.Transport, error) {
	if name == "" {
		name = Default
	}
	for _, t := range All() {
		if t.Name() == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("transport %q: %w (want one of %s)", name, ErrUnknown, strings.Join(Names(), ", "))
}

// OrDefault returns t, or the Default transport when t is nil.
func OrDefault(t transport.Transport) transport.Transport {
	if t == nil {
		return core.Transport{}
	}
	return t
}

// Describe records t in rc: its name, whether it delivers at least once
// (duplicates then do not make a run wrong), and the stand-in serving it,
// if any (transport.Substitute). nil is the Default transport.
func Describe(rc *pipelines.RunConfig, t transport.Transport) {
	t = OrDefault(t)
	rc.Transport, rc.AtLeastOnce, rc.Broker = t.Name(), t.AtLeastOnce(), ""
	if s, ok := t.(transport.Substitute); ok {
		rc.Broker = s.Substitute()
	}
}

// Environ is what t's worker processes need in their environment
// (transport.Environ); nil for most transports.
func Environ(t transport.Transport) []string {
	if e, ok := t.(transport.Environ); ok {
		return e.Environ()
	}
	return nil
}

// FromEnv returns the transports a benchmark runs over: the ones
// NATSPIPE_TRANSPORT names, in its order ("all": All), or the Default
// transport alone when it is unset or empty. getenv nil reads the process
// environment. A name no transport has, an empty name or a name given twice
// is an error naming the variable.
func FromEnv(getenv pipelines.Getenv) ([]transport.Transport, error) {
	ts, set, err := fromEnv(getenv)
	if err != nil || set {
		return ts, err
	}
	return []transport.Transport{OrDefault(nil)}, nil
}

// Compared returns the transports of a benchmark that exists to compare
// them, where the difference between brokers is the result (P4's 1-4-1-1
// sync sleep: work-conserving dispatch and durability; BenchmarkOverhead:
// the price of a hop): the ones NATSPIPE_TRANSPORT names, as FromEnv, or
// the NATS transports (Embedded) when it is unset or empty. Brokers of
// their own (RabbitMQ, Kafka) are compared when named ("all" or a list).
func Compared(getenv pipelines.Getenv) ([]transport.Transport, error) {
	ts, set, err := fromEnv(getenv)
	if err != nil || set {
		return ts, err
	}
	return Embedded(), nil
}

// Embedded is the transports the embedded NATS server serves on its own
// (core NATS and JetStream): they run anywhere, with nothing installed.
// The others need a broker of their own, which tests find or start
// (internal/brokertest) and skip without.
func Embedded() []transport.Transport {
	return []transport.Transport{core.Transport{}, js.Transport{}}
}

// fromEnv parses NATSPIPE_TRANSPORT; set is false when it is unset or empty.
func fromEnv(getenv pipelines.Getenv) (ts []transport.Transport, set bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := strings.TrimSpace(getenv(EnvTransport))
	if v == "" {
		return nil, false, nil
	}
	if v == EveryName {
		return All(), true, nil
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, true, fmt.Errorf("%s=%q: empty transport name (want a comma-separated list of %s, or %s)", EnvTransport, v, strings.Join(Names(), ", "), EveryName)
		}
		t, err := Lookup(name)
		if err != nil {
			return nil, true, fmt.Errorf("%s=%q: %w, or %s", EnvTransport, v, err, EveryName)
		}
		if seen[name] {
			return nil, true, fmt.Errorf("%s=%q: transport %q named twice", EnvTransport, v, name)
		}
		seen[name] = true
		ts = append(ts, t)
	}
	return ts, true, nil
}
