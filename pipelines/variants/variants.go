// Package variants is natspipe's one registry of pipeline variants and
// transports: what each variant is called, how it starts, its throughput
// bound, its default closed-loop window and which parameters apply to it.
// The benchmark suite, natspipe run and the variants' tests iterate it
// instead of listing the variants themselves. Adding a variant is its own
// package plus an entry in All; adding a transport is its own package plus
// an entry in pipelines/transports.
//
// Dependencies flow one way: the variants import the model, this package
// imports the variants, bench/ and cmd/ import this package.
package variants

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p0"
	"github.com/natspipe/natspipe/pipelines/p1"
	"github.com/natspipe/natspipe/pipelines/p2"
	"github.com/natspipe/natspipe/pipelines/p3"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Param is a parameter a variant takes, named as its benchmark key.
type Param string

// The parameters.
const (
	Transport   Param = "transport"   // the broker's transport: core, js
	Inflight    Param = "inflight"    // P2's in-flight limit
	Alloc       Param = "alloc"       // P4's workers per stage
	Mode        Param = "mode"        // P3/P4 worker mode
	Concurrency Param = "concurrency" // P3/P4 async worker concurrency
)

// Config is one configuration of a variant: the pipeline and every
// parameter. A variant reads the parameters it takes (Variant.Params) and
// ignores the others; zero values are the variant's defaults.
type Config struct {
	Spec pipelines.Spec
	// Transport is the broker's transport; nil: core NATS.
	Transport transport.Transport
	// Inflight is P2's in-flight limit; 0: p2.DefaultInflight.
	Inflight int
	// Alloc is P4's workers per stage; nil: p4.DefaultAlloc when it has
	// the spec's stage count, else one each.
	Alloc p4.Alloc
	// Mode is P3/P4's worker mode; "": sync.
	Mode worker.Mode
	// Concurrency is an async worker's messages in work at once; 0: default.
	Concurrency int
	// Queue is P1/P2's queue capacity in front of the executors; 0: default.
	Queue int

	// Where and how to start (Start only).

	NATS     natsconn.Config // the server
	Subjects bus.Subjects    // the run's subjects
	// Processes are P3/P4's worker-process settings: launcher, timeouts,
	// stderr, worker-exit policy. Its NATS, Subjects, Mode, Concurrency
	// and Transport are taken from the fields above.
	Processes fleet.Processes
}

// alloc is the allocation of a P4 configuration.
func (c Config) alloc() p4.Alloc {
	if c.Alloc != nil {
		return c.Alloc
	}
	if d := p4.DefaultAlloc(); len(d) == c.Spec.Stages() {
		return d
	}
	return p4.Ones(c.Spec.Stages())
}

// TransportName is the name of c's transport.
func (c Config) TransportName() string { return transports.OrDefault(c.Transport).Name() }

// Pipeline is a started variant. P0's, which needs no broker, is also the
// pipelines.Sender to send to; messaging variants are sent to through a
// router.Endpoint attached to the run.
type Pipeline interface {
	Close() error
}

// Variant is one way of building the pipeline.
type Variant struct {
	// Name is the variant's key: "p0" .. "p4" (impl=p0 in benchmark names).
	Name string
	// Doc says in a line what the variant is.
	Doc string
	// Messaging is false for P0 (function calls, no broker).
	Messaging bool
	// Processes is true for variants that start worker processes (P3, P4):
	// Config.Processes needs a Launcher.
	Processes bool
	// Params are the parameters the variant takes.
	Params []Param
	// Start starts the variant for cfg, reporting to sink.
	Start func(ctx context.Context, cfg Config, sink pipelines.Sink) (Pipeline, error)
	// Bound is cfg's theoretical throughput bound in msgs/s.
	Bound func(cfg Config) float64
	// Window is cfg's default closed-loop window at bound msgs/s.
	Window func(cfg Config, bound float64) int
	// Label names cfg's parameters for trace files, the transport last as
	// in benchmark names: "p4-alloc=1-4-1-1-mode=sync-transport=core".
	Label func(cfg Config) string
}

// Takes reports whether v takes parameter p.
func (v Variant) Takes(p Param) bool {
	for _, q := range v.Params {
		if q == p {
			return true
		}
	}
	return false
}

// Key is the benchmark key of cfg's transport for v: "transport=core", or
// "" for P0, which uses none. Benchmark names put it last
// (BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep/transport=js), so that a
// -bench pattern for the other keys lists the transports side by side.
func (v Variant) Key(cfg Config) string {
	if !v.Takes(Transport) {
		return ""
	}
	return "transport=" + cfg.TransportName()
}

// Describe records in rc which variant it runs and, for a messaging
// variant, over which transport (transports.Describe); P0 uses none.
func (v Variant) Describe(rc *pipelines.RunConfig, cfg Config) {
	rc.Variant = v.Name
	rc.Transport, rc.Broker, rc.AtLeastOnce = "", "", false
	if v.Messaging {
		transports.Describe(rc, cfg.Transport)
	}
}

func littles(cfg Config, bound float64) int { return pipelines.DefaultWindow(cfg.Spec, bound) }

func (c Config) processes() fleet.Processes {
	p := c.Processes
	p.NATS, p.Subjects, p.Mode, p.Concurrency, p.Transport = c.NATS, c.Subjects, c.Mode, c.Concurrency, c.Transport
	return p
}

func mode(cfg Config) worker.Mode {
	if cfg.Mode == "" {
		return worker.Sync
	}
	return cfg.Mode
}

// All is every variant, P0 first.
func All() []Variant {
	return []Variant{
		{
			Name: "p0", Doc: "no messaging: the stages are function calls in one goroutine",
			Start: func(_ context.Context, cfg Config, sink pipelines.Sink) (Pipeline, error) {
				return p0.New(cfg.Spec, sink)
			},
			Bound:  func(cfg Config) float64 { return p0.Bound(cfg.Spec) },
			Window: littles,
			Label:  func(Config) string { return "p0" },
		},
		{
			Name: "p1", Doc: "NATS between stages, one executor for every stage", Messaging: true,
			Params: []Param{Transport},
			Start: func(ctx context.Context, cfg Config, sink pipelines.Sink) (Pipeline, error) {
				return p1.Start(ctx, p1.Options{NATS: cfg.NATS, Subjects: cfg.Subjects, Queue: cfg.Queue, Transport: cfg.Transport}, cfg.Spec, sink)
			},
			Bound:  func(cfg Config) float64 { return p1.Bound(cfg.Spec) },
			Window: littles,
			Label:  func(cfg Config) string { return "p1-transport=" + cfg.TransportName() },
		},
		{
			Name: "p2", Doc: "NATS between stages, non-blocking: up to inflight messages in stage work", Messaging: true,
			Params: []Param{Transport, Inflight},
			Start: func(ctx context.Context, cfg Config, sink pipelines.Sink) (Pipeline, error) {
				return p2.Start(ctx, p2.Options{NATS: cfg.NATS, Subjects: cfg.Subjects, Inflight: cfg.Inflight, Queue: cfg.Queue, Transport: cfg.Transport}, cfg.Spec, sink)
			},
			Bound:  func(cfg Config) float64 { return p2.Bound(cfg.Spec, cfg.Inflight) },
			Window: littles,
			Label: func(cfg Config) string {
				return fmt.Sprintf("p2-inflight=%d-transport=%s", max(cfg.Inflight, 0), cfg.TransportName())
			},
		},
		{
			Name: "p3", Doc: "one worker process per stage", Messaging: true, Processes: true,
			Params: []Param{Transport, Mode, Concurrency},
			Start: func(ctx context.Context, cfg Config, sink pipelines.Sink) (Pipeline, error) {
				return p3.Start(ctx, cfg.processes(), cfg.Spec, sink)
			},
			Bound: func(cfg Config) float64 { return p3.Bound(cfg.Spec, mode(cfg), cfg.Concurrency) },
			Window: func(cfg Config, bound float64) int {
				return p3.Window(cfg.Spec, mode(cfg), cfg.Concurrency, bound)
			},
			Label: func(cfg Config) string {
				return fmt.Sprintf("p3-mode=%s-transport=%s", mode(cfg), cfg.TransportName())
			},
		},
		{
			Name: "p4", Doc: "w_i worker processes per stage sharing its group", Messaging: true, Processes: true,
			Params: []Param{Transport, Alloc, Mode, Concurrency},
			Start: func(ctx context.Context, cfg Config, sink pipelines.Sink) (Pipeline, error) {
				return p4.Start(ctx, p4.Options{Processes: cfg.processes(), Alloc: cfg.alloc()}, cfg.Spec, sink)
			},
			Bound: func(cfg Config) float64 { return p4.Bound(cfg.Spec, cfg.alloc(), mode(cfg), cfg.Concurrency) },
			Window: func(cfg Config, bound float64) int {
				return p4.Window(cfg.Spec, cfg.alloc(), mode(cfg), cfg.Concurrency, bound)
			},
			Label: func(cfg Config) string {
				return fmt.Sprintf("p4-alloc=%s-mode=%s-transport=%s", cfg.alloc(), mode(cfg), cfg.TransportName())
			},
		},
	}
}

// Names are the names of All, in order.
func Names() []string {
	var ns []string
	for _, v := range All() {
		ns = append(ns, v.Name)
	}
	return ns
}

// ErrUnknown is wrapped by Lookup's error for a name no variant has.
var ErrUnknown = errors.New("unknown variant")

// Lookup returns the variant called name.
func Lookup(name string) (Variant, error) {
	for _, v := range All() {
		if v.Name == name {
			return v, nil
		}
	}
	return Variant{}, fmt.Errorf("variant %q: %w (want %s)", name, ErrUnknown, strings.Join(Names(), ", "))
}

// Transports is every transport (pipelines/transports.All); which of them a
// benchmark runs over is pipelines/transports.FromEnv's or Compared's.
func Transports() []transport.Transport { return transports.All() }
