package sweep

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/perf/benchfmt"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/pipefile"
	"github.com/natspipe/natspipe/pipelines/worker"
)

var base = Config{Variant: "p4", Alloc: p4.Alloc{1, 4, 1, 1}, Mode: worker.Sync, Transport: "core"}

// TestExpandWorkers: every allocation of 7 workers over 4 stages, C(6,3) =
// 20, in lexicographic order, 1-4-1-1 among them, named as BenchmarkP4
// names its sub-benchmarks.
func TestExpandWorkers(t *testing.T) {
	cs, err := Expand(Axes{Workers: 7}, base, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 20 {
		t.Fatalf("%d configurations, want 20", len(cs))
	}
	p := Params{Work: pipelines.Sleep, Inflight: 64}
	if got := cs[0].Name(p); got != "P4/alloc=1-1-1-4/mode=sync/work=sleep/transport=core" {
		t.Errorf("first %s", got)
	}
	if got := cs[19].Name(p); got != "P4/alloc=4-1-1-1/mode=sync/work=sleep/transport=core" {
		t.Errorf("last %s", got)
	}
	seen := map[string]bool{}
	for _, c := range cs {
		if c.Alloc.Total() != 7 || seen[c.Alloc.String()] {
			t.Errorf("allocation %s: want 7 workers, once", c.Alloc)
		}
		seen[c.Alloc.String()] = true
	}
	if !seen["1-4-1-1"] {
		t.Error("1-4-1-1 missing")
	}
}

// TestExpandAxes: each variant gets the axes it takes, the transport
// varies fastest, and open-loop loads are named before the transport.
func TestExpandAxes(t *testing.T) {
	ax := Axes{
		Variants:   []string{"p0", "p2", "p4"},
		Transports: []string{"core", "js"},
		Modes:      []worker.Mode{worker.Sync, worker.Async},
		Allocs:     []p4.Alloc{{1, 1, 1, 1}, {1, 2, 1, 1}},
		Loads:      []pipefile.SweepLoad{{}, {Fraction: 0.8}, {Rate: 80}},
	}
	cs, err := Expand(ax, base, 4)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Work: pipelines.Sleep, Inflight: 16}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name(p))
	}
	// p0: 3 loads; p2: 3 loads x 2 transports; p4: 2 x 2 x 3 x 2.
	if len(names) != 3+6+24 {
		t.Fatalf("%d configurations:\n%s", len(names), strings.Join(names, "\n"))
	}
	want := []string{
		"P0/work=sleep", "P0/work=sleep/load=0.8", "P0/work=sleep/rate=80",
		"P2/work=sleep/inflight=16/transport=core", "P2/work=sleep/inflight=16/transport=js",
		"P2/work=sleep/inflight=16/load=0.8/transport=core",
	}
	if !reflect.DeepEqual(names[:len(want)], want) {
		t.Errorf("names %q, want %q", names[:len(want)], want)
	}
	if got := names[9]; got != "P4/alloc=1-1-1-1/mode=sync/work=sleep/transport=core" {
		t.Errorf("first p4 %s", got)
	}
	if got := names[len(names)-1]; got != "P4/alloc=1-2-1-1/mode=async/work=sleep/rate=80/transport=js" {
		t.Errorf("last %s", got)
	}
}

// TestExpandErrors: a mismatched allocation and too few workers are
// refused, saying why.
func TestExpandErrors(t *testing.T) {
	for _, c := range []struct {
		ax   Axes
		want string
	}{
		{Axes{Allocs: []p4.Alloc{{1, 2}}}, "allocation 1-2:"},
		{Axes{Workers: 3}, "workers 3: want at least one worker per stage (4)"},
		{Axes{Workers: 5, Allocs: []p4.Alloc{{1, 1, 1, 2}}}, "allocations and workers: give one"},
		{Axes{Variants: []string{"p9"}}, "p9"},
	} {
		if _, err := Expand(c.ax, base, 4); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.ax, err, c.want)
		}
	}
}

// TestWriterRoundTrip: what Writer writes, benchfmt reads back: the unit
// metadata, the pkg of each variant, the names with GOMAXPROCS, the
// messages as iterations and the units benchunits names.
func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, [][2]string{{"durations", "1ms,2ms"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := pipelines.Spec{Work: pipelines.Sleep}
	spec.SetTimes([]pipelines.ServiceTime{pipelines.ConstantTime(time.Millisecond), pipelines.ConstantTime(2 * time.Millisecond)})
	res := &pipelines.Result{Spec: spec, Bound: 500, Elapsed: 100 * time.Millisecond, Throughput: 400, Latency: pipelines.NewLatencyHistogram()}
	res.N = 50
	_ = res.Latency.RecordValue(3000)
	for _, v := range []string{"p4", "p3"} {
		if err := w.Write(v, strings.ToUpper(v)+"/mode=sync/work=sleep/transport=core", res); err != nil {
			t.Fatal(err)
		}
	}
	r := benchfmt.NewReader(&buf, "results.txt")
	var got []string
	units := map[string]bool{}
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.Result:
			var vals []string
			for _, v := range rec.Values {
				u := v.Unit
				if v.OrigUnit != "" {
					u = v.OrigUnit // benchfmt tidies ns/op into sec/op
				}
				vals = append(vals, u)
			}
			got = append(got, string(rec.GetConfig("pkg"))+" "+string(rec.Name.Full())+" "+strings.Join(vals, ","))
			if rec.Iters != 50 || rec.Values[0].OrigValue != 2e6 || rec.Values[1].Value != 400 || rec.Values[5].Value != 0.8 {
				t.Errorf("%s: %d iterations, values %+v", rec.Name, rec.Iters, rec.Values)
			}
		case *benchfmt.UnitMetadata:
			units[rec.OrigUnit] = true
		case *benchfmt.SyntaxError:
			t.Errorf("syntax error: %v", rec)
		}
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "github.com/natspipe/natspipe/pipelines/p4 P4/mode=sync") ||
		!strings.HasPrefix(got[1], "github.com/natspipe/natspipe/pipelines/p3 P3/") ||
		!strings.HasSuffix(got[0], " ns/op,msgs/s,p50-ms,p90-ms,p99-ms,eff") {
		t.Errorf("results %q", got)
	}
	if !units["msgs/s"] || !units["eff"] || !units["p99-ms"] {
		t.Errorf("unit metadata %v", units)
	}
}
