package pipefile

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func testdata(name string) string { return filepath.Join("..", "..", "testdata", "pipelines", name) }

// TestSeedFile: seed.yaml is the study's pipeline, P4 1-4-1-1, and the
// builder gives the same pipeline in code.
func TestSeedFile(t *testing.T) {
	p, err := Load(testdata("seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := pipelines.DefaultSpec()
	spec.Seed = 1
	if !reflect.DeepEqual(p.Spec, spec) {
		t.Errorf("spec %+v, want %+v", p.Spec, spec)
	}
	if p.VariantName() != "p4" || p.Alloc.String() != "1-4-1-1" || p.Mode != worker.Sync || p.Messages != 300 {
		t.Errorf("deployment %+v", p)
	}
	ms := time.Millisecond
	b, err := New("seed").Work(pipelines.Sleep).Payload(64).
		Stage("S1", pipelines.ConstantTime(10*ms)).Stage("S2", pipelines.ConstantTime(40*ms)).
		Stage("S3", pipelines.ConstantTime(10*ms)).Stage("S4", pipelines.ConstantTime(10*ms)).
		Variant("p4").Transport("core").Alloc(1, 4, 1, 1).Mode(worker.Sync).Window(0).
		Messages(300).Seed(1).Build()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, p) {
		t.Errorf("builder %+v\nfile    %+v", b, p)
	}
	rc, err := p.RunConfig()
	if err != nil || rc.Bound != 100 || rc.Variant != "p4" || rc.Window < 2 || rc.Rate != 0 {
		t.Errorf("run config %+v, %v", rc, err)
	}
}

// TestExamples: every shipped example reads, with its distributions.
func TestExamples(t *testing.T) {
	for _, c := range []struct {
		file, times string
		bound       float64
	}{
		{"skewed.yaml", "5ms,exp(5ms),5ms,uniform(10ms,40ms),5ms,2ms", 200},
		{"heavytail.yaml", "2ms,lognormal(5ms,p99=40ms),exp(2ms)", 400},
		{"measured.yaml", "1ms,empirical(" + testdata("measured-times.txt") + "),1ms", 0},
	} {
		p, err := Load(testdata(c.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.TimesString(); got != c.times {
			t.Errorf("%s: times %s, want %s", c.file, got, c.times)
		}
		rc, err := p.RunConfig()
		if err != nil {
			t.Fatal(err)
		}
		if c.bound > 0 && (rc.Bound < c.bound*0.999 || rc.Bound > c.bound*1.001) {
			t.Errorf("%s: bound %v, want %v", c.file, rc.Bound, c.bound)
		}
		if p.Load > 0 && rc.Rate != p.Load*rc.Bound {
			t.Errorf("%s: rate %v at load %v of %v", c.file, rc.Rate, p.Load, rc.Bound)
		}
	}
}

// TestBuilderErrors: a pipeline built in code is checked as a file is, its
// errors naming the field (no file position).
func TestBuilderErrors(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		b    *Builder
		want string
	}{
		{New("x"), "stages: none: want at least one stage, each with a time"},
		{New("x").Stage("a", pipelines.ConstantTime(ms)).Alloc(1, 2), "deployment.alloc: 2 counts for 1 stages: want one per stage"},
		{New("x").Stage("a", pipelines.ConstantTime(ms)).Stage("a", pipelines.ConstantTime(ms)), `stages[1].name: "a": stages[0] has that name too`},
		{New("x").Stage("a", pipelines.ConstantTime(ms)).Rate(10).Window(4), "load.window: a closed-loop window with an open-loop rate or load: give one"},
		{New("x").Stage("a", pipelines.ConstantTime(ms)).Mode(worker.Sync).Concurrency(4), "deployment.concurrency: 4: a sync worker has one message in work: set mode: async"},
	} {
		_, err := c.b.Build()
		var fe *Error
		if !errors.As(err, &fe) || err.Error() != c.want {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

// TestParseInline covers what the bad files do not: the position of a
// missing field's parent, several documents, an empirical path relative
// to the file.
func TestParseInline(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"stages:\n  - time: 1ms\n---\nstages:\n  - time: 1ms\n", "p.yaml:1:1: 2 YAML documents: want one"},
		{"stages:\n  - time: 1ms\ndeployment:\n  alloc: [0]\n", "p.yaml:4:11: deployment.alloc[0]: 0: want 1 to 64 workers"},
		{"stages:\n  - time: 1ms\nload:\n  arrivals: poisson\n", "p.yaml:4:13: load.arrivals: poisson: only with an open-loop rate or load"},
		{"work: gpu\nstages:\n  - time: 1ms\n", `p.yaml:1:7: work: "gpu": want sleep or cpu`},
		{"stages:\n  - time: empirical(none.txt)\n", "p.yaml:2:11: stages[0].time: empirical: open none.txt: no such file or directory"},
	} {
		_, err := Parse("p.yaml", []byte(c.src))
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
	if _, err := Parse(testdata("x.yaml"), []byte("stages:\n  - time: empirical(measured-times.txt)\n")); err != nil {
		t.Errorf("empirical path relative to the file: %v", err)
	}
	if !strings.Contains(testdata("x"), "testdata") {
		t.Fatal("testdata path")
	}
}

// TestSweepSection: a sweep section reads into its checked lists; run
// flags it does not touch (Given) stay as without it.
func TestSweepSection(t *testing.T) {
	p, err := Parse("s.yaml", []byte(`stages:
  - time: 1ms
  - time: 2ms
sweep:
  variants: [p3, p4]
  transports: [core, js]
  modes: [sync, async]
  allocs: [[1, 1], [1, 2]]
  loads: [closed, 0.8, 80/s]
  count: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Sweep
	want := &Sweep{Variants: []string{"p3", "p4"}, Transports: []string{"core", "js"},
		Modes: []worker.Mode{worker.Sync, worker.Async}, Allocs: []p4.Alloc{{1, 1}, {1, 2}},
		Loads: []SweepLoad{{}, {Fraction: 0.8}, {Rate: 80}}, Count: 3}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("sweep %+v, want %+v", s, want)
	}
	if p.Given["alloc"] || p.Given["variant"] {
		t.Errorf("the sweep section set run flags: %v", p.Given)
	}
	var keys []string
	for _, l := range s.Loads {
		keys = append(keys, l.String()+"="+l.Key())
	}
	if got := strings.Join(keys, " "); got != "closed= 0.8=load=0.8 80/s=rate=80" {
		t.Errorf("loads %s", got)
	}
	w, err := Parse("w.yaml", []byte("stages:\n  - time: 1ms\n  - time: 2ms\nsweep:\n  workers: 7\n"))
	if err != nil || w.Sweep.Workers != 7 || w.Sweep.Allocs != nil {
		t.Errorf("workers: %+v, %v", w.Sweep, err)
	}
}

// TestSweepExample: allocations.yaml sweeps every allocation of 7 workers
// over the seed pipeline at 2, 8, 2, 2 ms, three runs each.
func TestSweepExample(t *testing.T) {
	p, err := Load(testdata("allocations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Sweep; s == nil || s.Workers != 7 || s.Count != 3 || len(s.Loads) != 1 || !s.Loads[0].Closed() {
		t.Errorf("sweep %+v", p.Sweep)
	}
	if got := p.Spec.TimesString(); got != "2ms,8ms,2ms,2ms" {
		t.Errorf("times %s", got)
	}
}
