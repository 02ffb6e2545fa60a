// Package pipefile reads pipeline files: a pipeline's stages, deployment,
// load, message count and seed in YAML, so a user can describe their own
// pipeline without writing Go. A file fills the same pipelines.Spec,
// variants.Config and pipelines.RunConfig the benchmarks use; File (with
// its Builder) is the same description in code.
//
// The format (every field but stages is optional; unknown fields are
// errors):
//
//	name: seed                  # a label
//	work: sleep                 # the stages' work model: sleep or cpu
//	payload: 64                 # payload bytes per message
//	stages:
//	  - name: S1                # default S1, S2, ...
//	    time: 10ms              # a duration or a distribution: exp(5ms),
//	                            # lognormal(5ms,cv=1.5), lognormal(5ms,p99=40ms),
//	                            # uniform(2ms,8ms), empirical(times.txt)
//	    workers: 1              # P4 workers (or deployment.alloc)
//	deployment:
//	  variant: p4               # p0 .. p4
//	  transport: core           # core, js, amqp, kafka (P1-P4)
//	  alloc: [1, 4, 1, 1]       # P4 workers per stage
//	  mode: sync                # P3/P4: sync or async
//	  concurrency: 4            # P3/P4 async: messages in work per worker
//	  inflight: 64              # P2: messages in stage work at once
//	load:
//	  window: 0                 # closed loop (0: sized by Little's law), or
//	  rate: 80                  # open loop at this many msgs/s, or
//	  load: 0.8                 # open loop at this fraction of the bound
//	  arrivals: poisson         # open loop: fixed or poisson
//	messages: 300
//	seed: 1                     # service-time draws and Poisson arrivals
//	sweep:                      # natspipe sweep's configurations (SweepSection)
//	  workers: 7                # every allocation of 7 P4 workers
//	  loads: [closed, 0.8]
//	  count: 3
//
// Every error names the file, line, column and field:
// "bad.yaml:7:11: stages[1].time: lognormal(5ms,cv=-1): lognormal cv -1: must be > 0".
package pipefile

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// File is a pipeline file as written: the YAML document, or the same built
// in code (see Builder). Pipeline checks it and turns it into a Pipeline.
type File struct {
	Name       string      `yaml:"name,omitempty"`
	Work       string      `yaml:"work,omitempty"`
	Payload    *int        `yaml:"payload,omitempty"`
	Stages     []Stage     `yaml:"stages"`
	Deployment *Deployment `yaml:"deployment,omitempty"`
	Load       *LoadSpec   `yaml:"load,omitempty"`
	Messages   *int        `yaml:"messages,omitempty"`
	Seed       *uint64     `yaml:"seed,omitempty"`
	// Sweep is what natspipe sweep runs; natspipe run ignores it.
	Sweep *SweepSection `yaml:"sweep,omitempty"`

	// dir resolves a relative empirical(PATH): the file's directory.
	dir string
}

// Stage is one stage of a File.
type Stage struct {
	Name string `yaml:"name,omitempty"`
	// Time is a duration or a distribution, as pipelines.ParseServiceTime
	// reads it.
	Time    string `yaml:"time"`
	Work    string `yaml:"work,omitempty"`
	Workers *int   `yaml:"workers,omitempty"`
}

// Deployment is how a File's pipeline runs.
type Deployment struct {
	Variant     string `yaml:"variant,omitempty"`
	Transport   string `yaml:"transport,omitempty"`
	Alloc       []int  `yaml:"alloc,omitempty"`
	Mode        string `yaml:"mode,omitempty"`
	Concurrency *int   `yaml:"concurrency,omitempty"`
	Inflight    *int   `yaml:"inflight,omitempty"`
}

// LoadSpec is how a File's pipeline is driven (its load section): a
// closed-loop window, or an open-loop rate (msgs/s) or load (a fraction of
// the bound).
type LoadSpec struct {
	Window   *int     `yaml:"window,omitempty"`
	Rate     *float64 `yaml:"rate,omitempty"`
	Load     *float64 `yaml:"load,omitempty"`
	Arrivals string   `yaml:"arrivals,omitempty"`
}

// Pipeline is a checked pipeline description. Zero fields were not given:
// Given says which were, by the name of natspipe run's flag for each.
type Pipeline struct {
	Name       string
	StageNames []string
	// Spec holds the stage times (Durations and Service), work model,
	// payload and seed.
	Spec        pipelines.Spec
	Variant     string
	Transport   string
	Alloc       p4.Alloc
	Mode        worker.Mode
	Concurrency int
	Inflight    int
	Window      int
	Rate        float64
	Load        float64
	Arrivals    pipelines.Arrivals
	Messages    int
	// Sweep is the file's checked sweep section, nil when it has none.
	Sweep *Sweep
	// Given holds the natspipe run flags the description sets: durations,
	// work, payload, variant, transport, alloc, mode, concurrency,
	// inflight, window, rate, load, arrivals, n, seed.
	Given map[string]bool
}

// Error is what is wrong with a pipeline description: the field (a path
// such as stages[2].time; empty for the whole file) and, for a file, where.
type Error struct {
	File         string
	Line, Column int // 0 when built in code
	Field        string
	Msg          string
}

// Error formats e as FILE:LINE:COLUMN: FIELD: MSG.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func fieldErr(field, format string, a ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Load reads and checks the pipeline file at path.
func Load(path string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	return Parse(path, data)
}

// Parse checks the pipeline file data, read from name (which errors
// name, and relative empirical paths are resolved against).
func Parse(name string, data []byte) (*Pipeline, error) {
	at := func(line, col int, field, msg string) error {
		return &Error{File: name, Line: line, Column: col, Field: field, Msg: msg}
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, at(1, 1, "", "empty file: want a pipeline with at least stages")
	}
	// Duplicate keys are let through the parse, to be reported by the
	// decoder with their field.
	af, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, yamlErr(name, nil, err)
	}
	if len(af.Docs) != 1 {
		return nil, at(1, 1, "", fmt.Sprintf("%d YAML documents: want one", len(af.Docs)))
	}
	pos := positions(af)
	var f File
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.Strict()); err != nil {
		return nil, yamlErr(name, pos, err)
	}
	f.dir = filepath.Dir(name)
	p, err := f.Pipeline()
	var fe *Error
	if errors.As(err, &fe) {
		e := *fe
		e.File = name
		e.Line, e.Column = pos.find(e.Field)
		return nil, &e
	}
	return p, err
}

// where is a node's position.
type where struct{ line, col int }

// index maps field paths ("stages[2].time") to where their values are,
// and positions back to paths.
type index struct {
	byPath map[string]where
	byPos  map[where]string
}

// positions indexes every node of a parsed file.
func positions(f *ast.File) *index {
	ix := &index{byPath: map[string]where{}, byPos: map[where]string{}}
	for _, doc := range f.Docs {
		if doc.Body != nil {
			ast.Walk(visitor{ix}, doc.Body)
		}
	}
	return ix
}

type visitor struct{ ix *index }

func (v visitor) Visit(n ast.Node) ast.Visitor {
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return v
	}
	path := strings.TrimPrefix(strings.TrimPrefix(n.GetPath(), "$"), ".")
	w := where{tk.Position.Line, tk.Position.Column}
	v.ix.byPath[path] = w // the last node of a path is its value
	if _, ok := v.ix.byPos[w]; !ok {
		v.ix.byPos[w] = path
	}
	return v
}

// find is where field is, or the nearest enclosing field that is there
// (a missing field is reported at its parent); 1:1 for the file.
func (ix *index) find(field string) (int, int) {
	for p := field; ; {
		if w, ok := ix.byPath[p]; ok {
			return w.line, w.col
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			if w, ok := ix.byPath[""]; ok && p != "" {
				return w.line, w.col
			}
			return 1, 1
		}
		p = p[:i]
	}
}

// yamlErr is a parse or decode error of go-yaml with its position and,
// when known, the field there.
func yamlErr(name string, ix *index, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil {
		return &Error{File: name, Line: 1, Column: 1, Msg: "not a YAML pipeline file: " + err.Error()}
	}
	p := ye.GetToken().Position
	e := &Error{File: name, Line: p.Line, Column: p.Column, Msg: ye.GetMessage()}
	if ix != nil {
		e.Field = ix.byPos[where{p.Line, p.Column}]
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		e.Msg = fmt.Sprintf("%s: want %s", te.Token.Value, kind(te.DstType.String()))
	} else if ix == nil {
		e.Msg = "not YAML: " + e.Msg
	}
	return e
}

// kind names a Go type as a file's reader knows it.
func kind(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}

// Pipeline checks f and returns the pipeline it describes. An error is an
// *Error naming the field.
func (f File) Pipeline() (*Pipeline, error) {
	p := &Pipeline{Name: f.Name, Given: map[string]bool{}}
	set := func(flag string) { p.Given[flag] = true }
	n := len(f.Stages)
	if n == 0 {
		return nil, fieldErr("stages", "none: want at least one stage, each with a time")
	}
	if n > pipelines.MaxStages {
		return nil, fieldErr("stages", "%d stages: at most %d", n, pipelines.MaxStages)
	}
	work := pipelines.Sleep
	if f.Work != "" {
		w, err := pipelines.ParseWorkModel(f.Work)
		if err != nil {
			return nil, fieldErr("work", "%q: want sleep or cpu", f.Work)
		}
		work = w
		set("work")
	}
	times := make([]pipelines.ServiceTime, n)
	names := map[string]int{}
	var workers []int
	for i, s := range f.Stages {
		field := fmt.Sprintf("stages[%d]", i)
		name := s.Name
		if name == "" {
			name = pipelines.StageName(i)
		}
		if j, dup := names[name]; dup {
			return nil, fieldErr(field+".name", "%q: stages[%d] has that name too", name, j)
		}
		names[name] = i
		p.StageNames = append(p.StageNames, name)
		if strings.TrimSpace(s.Time) == "" {
			return nil, fieldErr(field+".time", "missing: want a duration (10ms) or a distribution such as exp(5ms)")
		}
		t, err := pipelines.ParseServiceTime(f.resolve(s.Time))
		if err != nil {
			return nil, fieldErr(field+".time", "%v", err)
		}
		times[i] = t
		if s.Work != "" {
			w, err := pipelines.ParseWorkModel(s.Work)
			if err != nil {
				return nil, fieldErr(field+".work", "%q: want sleep or cpu", s.Work)
			}
			if w != work {
				return nil, fieldErr(field+".work", "%s: every stage has the pipeline's work model (%s): set work at the top", w, work)
			}
		}
		if i > 0 && (s.Workers != nil) != (f.Stages[0].Workers != nil) {
			if s.Workers != nil {
				return nil, fieldErr(field+".workers", "given, but not for stages[0]: give every stage's workers, or deployment.alloc")
			}
			return nil, fieldErr(field, "no workers, but stages[0] has: give every stage's workers, or deployment.alloc")
		}
		if s.Workers != nil {
			if *s.Workers < 1 || *s.Workers > p4.MaxStageWorkers {
				return nil, fieldErr(field+".workers", "%d: want 1 to %d", *s.Workers, p4.MaxStageWorkers)
			}
			workers = append(workers, *s.Workers)
		}
	}
	p.Spec = pipelines.Spec{Work: work, PayloadSize: 64, Seed: 1}
	p.Spec.SetTimes(times)
	set("durations")
	if f.Payload != nil {
		if *f.Payload < 0 || *f.Payload > pipelines.MaxPayload {
			return nil, fieldErr("payload", "%d: want 0 to %d bytes", *f.Payload, pipelines.MaxPayload)
		}
		p.Spec.PayloadSize = *f.Payload
		set("payload")
	}
	if f.Seed != nil {
		p.Spec.Seed = *f.Seed
		set("seed")
	}
	if f.Messages != nil {
		if hi := pipelines.MaxMessagesFor(n); *f.Messages < 1 || *f.Messages > hi {
			return nil, fieldErr("messages", "%d: want 1 to %d", *f.Messages, hi)
		}
		p.Messages = *f.Messages
		set("n")
	}
	if workers != nil {
		p.Alloc = workers
		set("alloc")
	}
	if err := f.deployment(p, set); err != nil {
		return nil, err
	}
	if err := f.load(p, set); err != nil {
		return nil, err
	}
	if err := f.sweep(p); err != nil {
		return nil, err
	}
	if err := p.Spec.Validate(); err != nil {
		return nil, fieldErr("stages", "%v", err)
	}
	return p, nil
}

// resolve makes a relative empirical(PATH) relative to the file's directory.
func (f File) resolve(t string) string {
	s := strings.TrimSpace(t)
	inner, ok := strings.CutPrefix(s, "empirical(")
	if !ok || f.dir == "" {
		return s
	}
	path := strings.TrimSpace(strings.TrimSuffix(inner, ")"))
	if path == "" || filepath.IsAbs(path) {
		return s
	}
	return "empirical(" + filepath.Join(f.dir, path) + ")"
}

func (f File) deployment(p *Pipeline, set func(string)) *Error {
	d := f.Deployment
	if d == nil {
		return nil
	}
	if d.Variant != "" {
		if _, err := variants.Lookup(d.Variant); err != nil {
			return fieldErr("deployment.variant", "%q: want %s", d.Variant, strings.Join(variants.Names(), ", "))
		}
		p.Variant = d.Variant
		set("variant")
	}
	if d.Transport != "" {
		if _, err := transports.Lookup(d.Transport); err != nil {
			return fieldErr("deployment.transport", "%q: want %s", d.Transport, strings.Join(transports.Names(), ", "))
		}
		p.Transport = d.Transport
		set("transport")
	}
	if d.Alloc != nil {
		if p.Alloc != nil {
			return fieldErr("deployment.alloc", "given with stages[].workers: give one")
		}
		if len(d.Alloc) != len(f.Stages) {
			return fieldErr("deployment.alloc", "%d counts for %d stages: want one per stage", len(d.Alloc), len(f.Stages))
		}
		for i, w := range d.Alloc {
			if w < 1 || w > p4.MaxStageWorkers {
				return fieldErr(fmt.Sprintf("deployment.alloc[%d]", i), "%d: want 1 to %d workers", w, p4.MaxStageWorkers)
			}
		}
		p.Alloc = p4.Alloc(d.Alloc)
		set("alloc")
	}
	if p.Alloc != nil {
		if err := p.Alloc.Check(len(f.Stages)); err != nil {
			return fieldErr("deployment.alloc", "%v", err)
		}
	}
	if d.Mode != "" {
		m, err := worker.ParseMode(d.Mode)
		if err != nil {
			return fieldErr("deployment.mode", "%q: want sync or async", d.Mode)
		}
		p.Mode = m
		set("mode")
	}
	if d.Concurrency != nil {
		if *d.Concurrency < 0 || *d.Concurrency > pipelines.MaxConcurrency {
			return fieldErr("deployment.concurrency", "%d: want 0 (default %d) to %d", *d.Concurrency, worker.DefaultConcurrency, pipelines.MaxConcurrency)
		}
		if p.Mode != worker.Async && *d.Concurrency > 1 {
			return fieldErr("deployment.concurrency", "%d: a sync worker has one message in work: set mode: async", *d.Concurrency)
		}
		p.Concurrency = *d.Concurrency
		set("concurrency")
	}
	if d.Inflight != nil {
		if *d.Inflight < 1 || *d.Inflight > pipelines.MaxInflight {
			return fieldErr("deployment.inflight", "%d: want 1 to %d", *d.Inflight, pipelines.MaxInflight)
		}
		p.Inflight = *d.Inflight
		set("inflight")
	}
	return nil
}

func (f File) load(p *Pipeline, set func(string)) *Error {
	l := f.Load
	if l == nil {
		return nil
	}
	if l.Rate != nil && l.Load != nil {
		return fieldErr("load.load", "given with load.rate: give one")
	}
	if l.Window != nil && (l.Rate != nil || l.Load != nil) {
		return fieldErr("load.window", "a closed-loop window with an open-loop rate or load: give one")
	}
	if l.Window != nil {
		if *l.Window < 0 || *l.Window > pipelines.MaxWindow {
			return fieldErr("load.window", "%d: want 0 (sized by Little's law) to %d", *l.Window, pipelines.MaxWindow)
		}
		p.Window = *l.Window
		set("window")
	}
	if l.Rate != nil {
		if r := *l.Rate; !(r > 0) || r > pipelines.MaxRate {
			return fieldErr("load.rate", "%v: want msgs/s > 0, at most %g", r, pipelines.MaxRate)
		}
		p.Rate = *l.Rate
		set("rate")
	}
	if l.Load != nil {
		if r := *l.Load; !(r > 0) || r > pipelines.MaxLoad {
			return fieldErr("load.load", "%v: want a fraction of the bound > 0, at most %g", r, pipelines.MaxLoad)
		}
		p.Load = *l.Load
		set("load")
	}
	if l.Arrivals != "" {
		a := pipelines.Arrivals(l.Arrivals)
		if a != pipelines.Fixed && a != pipelines.Poisson {
			return fieldErr("load.arrivals", "%q: want fixed or poisson", l.Arrivals)
		}
		if l.Rate == nil && l.Load == nil {
			return fieldErr("load.arrivals", "%s: only with an open-loop rate or load", a)
		}
		p.Arrivals = a
		set("arrivals")
	}
	return nil
}

// Config is the variants.Config of p: its spec and deployment (defaults
// where the description gives none; variant and launcher are the
// caller's).
func (p *Pipeline) Config() (variants.Config, error) {
	cfg := variants.Config{Spec: p.Spec, Alloc: p.Alloc, Mode: p.Mode, Concurrency: p.Concurrency, Inflight: p.Inflight}
	if p.Transport != "" {
		tr, err := transports.Lookup(p.Transport)
		if err != nil {
			return cfg, fmt.Errorf("pipeline %s: %w", p.Name, err)
		}
		cfg.Transport = tr
	}
	return cfg, nil
}

// VariantName is p's variant, p4 when not given.
func (p *Pipeline) VariantName() string {
	if p.Variant == "" {
		return "p4"
	}
	return p.Variant
}

// RunConfig is the pipelines.RunConfig of p: the bound and default window
// of its variant, the open-loop rate (a load taken as a fraction of the
// bound), arrivals and seed.
func (p *Pipeline) RunConfig() (pipelines.RunConfig, error) {
	v, err := variants.Lookup(p.VariantName())
	if err != nil {
		return pipelines.RunConfig{}, err
	}
	cfg, err := p.Config()
	if err != nil {
		return pipelines.RunConfig{}, err
	}
	bound := v.Bound(cfg)
	rc := pipelines.RunConfig{Spec: p.Spec, Bound: bound, Window: p.Window, Rate: p.Rate,
		Arrivals: p.Arrivals, Seed: p.Spec.Seed}
	v.Describe(&rc, cfg)
	if p.Load > 0 {
		if math.IsInf(bound, 1) {
			return rc, errors.New("load: a fraction of an unlimited bound: give a rate")
		}
		rc.Rate = p.Load * bound
	}
	if rc.Rate == 0 && rc.Window == 0 {
		rc.Window = v.Window(cfg, bound)
	}
	return rc, nil
}

// String is a one-line summary: name, stage times and allocation.
func (p *Pipeline) String() string {
	s := p.Name
	if s == "" {
		s = "pipeline"
	}
	s += " [" + p.Spec.TimesString() + "]"
	if p.Alloc != nil {
		s += " alloc=" + p.Alloc.String()
	}
	return s + " " + strconv.Itoa(p.Spec.Stages()) + " stages"
}
