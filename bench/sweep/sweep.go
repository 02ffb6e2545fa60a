// Package sweep is the logic of natspipe sweep apart from running
// pipelines: it expands a sweep (variants, P4 allocations, worker modes,
// transports, loads) into configurations, names each as the variants'
// benchmarks name theirs (BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep/transport=core),
// and writes measured runs as Go benchmark results with the unit metadata
// of internal/benchunits, so benchstat and natspipe gate read the file as
// they read go test -bench output.
package sweep

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"

	"github.com/natspipe/natspipe/internal/benchunits"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/pipefile"
	"github.com/natspipe/natspipe/pipelines/plan"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// MaxConfigs bounds the configurations of one sweep.
const MaxConfigs = 10_000

// Axes are what a sweep varies. An empty axis is Base's value alone.
type Axes struct {
	Variants   []string
	Transports []string
	Modes      []worker.Mode
	// Allocs are P4's allocations; Workers > 0 instead stands for every
	// allocation of that many workers over the stages.
	Allocs  []p4.Alloc
	Workers int
	Loads   []pipefile.SweepLoad
}

// Config is one configuration of a sweep. A field the variant does not
// take is zero: Alloc for all but P4, Mode for P0-P2, Transport for P0.
type Config struct {
	Variant   string
	Alloc     p4.Alloc
	Mode      worker.Mode
	Transport string
	Load      pipefile.SweepLoad
}

// Expand lists the configurations of ax over a pipeline of stages stages,
// taking base's value for each empty axis: variants in order, then
// allocations, modes, loads and transports (last, as in benchmark names,
// so the transports of a configuration sit side by side).
func Expand(ax Axes, base Config, stages int) ([]Config, error) {
	vs := ax.Variants
	if len(vs) == 0 {
		vs = []string{base.Variant}
	}
	allocs := ax.Allocs
	if ax.Workers > 0 {
		if len(allocs) > 0 {
			return nil, errors.New("allocations and workers: give one")
		}
		if err := pipefile.CheckSweepWorkers(ax.Workers, stages); err != nil {
			return nil, fmt.Errorf("workers %w", err)
		}
		plan.Allocations(ax.Workers, stages, func(a p4.Alloc) bool {
			allocs = append(allocs, append(p4.Alloc(nil), a...))
			return len(allocs) <= MaxConfigs
		})
	}
	if len(allocs) == 0 {
		allocs = []p4.Alloc{base.Alloc}
	}
	modes := ax.Modes
	if len(modes) == 0 {
		modes = []worker.Mode{base.Mode}
	}
	trs := ax.Transports
	if len(trs) == 0 {
		trs = []string{base.Transport}
	}
	loads := ax.Loads
	if len(loads) == 0 {
		loads = []pipefile.SweepLoad{base.Load}
	}
	var out []Config
	for _, name := range vs {
		v, err := variants.Lookup(name)
		if err != nil {
			return nil, err
		}
		as := []p4.Alloc{nil}
		if v.Takes(variants.Alloc) {
			as = allocs
		}
		ms := []worker.Mode{""}
		if v.Takes(variants.Mode) {
			ms = modes
		}
		ts := []string{""}
		if v.Takes(variants.Transport) {
			ts = trs
		}
		for _, a := range as {
			if a != nil {
				if err := a.Check(stages); err != nil {
					return nil, fmt.Errorf("allocation %s: %w", a, err)
				}
			}
			for _, m := range ms {
				if m == "" && v.Takes(variants.Mode) {
					m = worker.Sync
				}
				for _, l := range loads {
					for _, t := range ts {
						if t == "" && v.Takes(variants.Transport) {
							t = "core"
						}
						out = append(out, Config{Variant: name, Alloc: a, Mode: m, Transport: t, Load: l})
						if len(out) > MaxConfigs {
							return nil, fmt.Errorf("more than %d configurations: sweep fewer axes", MaxConfigs)
						}
					}
				}
			}
		}
	}
	return out, nil
}

// Params are the pipeline's parameters benchmark names carry beside a
// Config's.
type Params struct {
	Work     pipelines.WorkModel
	Inflight int // P2's in-flight limit
}

// Name is c's benchmark name without the "Benchmark" prefix, as the
// variant's own benchmark names it: P0/work=sleep,
// P1/work=sleep/transport=core, P2/work=sleep/inflight=64/transport=core,
// P3/mode=sync/work=sleep/transport=core,
// P4/alloc=1-4-1-1/mode=sync/work=sleep/transport=core. An open-loop
// load adds load=0.8 or rate=80 before the transport.
func (c Config) Name(p Params) string {
	keys := []string{strings.ToUpper(c.Variant)}
	if c.Alloc != nil {
		keys = append(keys, "alloc="+c.Alloc.String())
	}
	if c.Mode != "" {
		keys = append(keys, "mode="+string(c.Mode))
	}
	keys = append(keys, "work="+string(p.Work))
	if c.Variant == "p2" {
		keys = append(keys, "inflight="+strconv.Itoa(p.Inflight))
	}
	if k := c.Load.Key(); k != "" {
		keys = append(keys, k)
	}
	if c.Transport != "" {
		keys = append(keys, "transport="+c.Transport)
	}
	return strings.Join(keys, "/")
}

// Pkg is the Go package whose benchmarks a variant's results stand beside
// (the "pkg:" line of go test -bench output).
func Pkg(variant string) string { return "github.com/natspipe/natspipe/pipelines/" + variant }

// Writer writes measured runs as Go benchmark results.
type Writer struct {
	w      *benchfmt.Writer
	config []benchfmt.Config
	procs  int
}

// NewWriter writes the unit metadata and returns a Writer to w. config
// are the file configuration lines every result carries ("durations",
// "nats-server", ...), after goos and goarch; a result's pkg line is its
// variant's package.
func NewWriter(w io.Writer, config [][2]string) (*Writer, error) {
	if err := benchunits.WriteMetadata(w); err != nil {
		return nil, fmt.Errorf("write unit metadata: %w", err)
	}
	cfg := []benchfmt.Config{
		{Key: "goos", Value: []byte(runtime.GOOS), File: true},
		{Key: "goarch", Value: []byte(runtime.GOARCH), File: true},
	}
	for _, kv := range config {
		cfg = append(cfg, benchfmt.Config{Key: kv[0], Value: []byte(kv[1]), File: true})
	}
	return &Writer{w: benchfmt.NewWriter(w), config: cfg, procs: runtime.GOMAXPROCS(0)}, nil
}

// Write writes one run of the benchmark name (Config.Name) of variant:
// the messages as iterations, ns/op (wall time over messages, as
// testing.B measures it) and benchunits.Metrics.
func (w *Writer) Write(variant, name string, res *pipelines.Result) error {
	n := res.N
	if n < 1 {
		return fmt.Errorf("%s: no messages sent", name)
	}
	full := name
	if w.procs != 1 {
		full += "-" + strconv.Itoa(w.procs) // as go test names it
	}
	r := &benchfmt.Result{
		Config: append(append([]benchfmt.Config(nil), w.config...), benchfmt.Config{Key: "pkg", Value: []byte(Pkg(variant)), File: true}),
		Name:   benchfmt.Name(full),
		Iters:  n,
		Values: []benchfmt.Value{{Value: float64(res.Elapsed) / float64(n) / float64(time.Nanosecond), Unit: "ns/op"}},
	}
	for _, m := range benchunits.Metrics(res) {
		r.Values = append(r.Values, benchfmt.Value{Value: m.Value, Unit: m.Unit})
	}
	if err := w.w.Write(r); err != nil {
		return fmt.Errorf("write result %s: %w", name, err)
	}
	return nil
}
