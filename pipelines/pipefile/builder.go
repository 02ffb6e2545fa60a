package pipefile

import (
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Builder writes a pipeline description in code: the same File a YAML file
// decodes into, checked by the same Pipeline method, so a pipeline built
// here and one read from a file are the same.
type Builder struct{ f File }

// New starts a description called name.
func New(name string) *Builder { return &Builder{f: File{Name: name}} }

// Stage appends a stage with its service time.
func (b *Builder) Stage(name string, t pipelines.ServiceTime) *Builder {
	b.f.Stages = append(b.f.Stages, Stage{Name: name, Time: t.String()})
	return b
}

// Work sets the stages' work model.
func (b *Builder) Work(w pipelines.WorkModel) *Builder { b.f.Work = string(w); return b }

// Payload sets the payload bytes per message.
func (b *Builder) Payload(n int) *Builder { b.f.Payload = &n; return b }

// Variant sets the variant, p0 .. p4.
func (b *Builder) Variant(v string) *Builder { b.deploy().Variant = v; return b }

// Transport sets the broker transport (P1-P4).
func (b *Builder) Transport(t string) *Builder { b.deploy().Transport = t; return b }

// Alloc sets P4's workers per stage.
func (b *Builder) Alloc(workers ...int) *Builder { b.deploy().Alloc = workers; return b }

// Mode sets P3/P4's worker mode.
func (b *Builder) Mode(m worker.Mode) *Builder { b.deploy().Mode = string(m); return b }

// Concurrency sets an async worker's messages in work at once.
func (b *Builder) Concurrency(n int) *Builder { b.deploy().Concurrency = &n; return b }

// Inflight sets P2's in-flight limit.
func (b *Builder) Inflight(n int) *Builder { b.deploy().Inflight = &n; return b }

// Window sets a closed-loop window (0: sized by Little's law).
func (b *Builder) Window(n int) *Builder { b.load().Window = &n; return b }

// Rate sets an open-loop rate in msgs/s.
func (b *Builder) Rate(r float64) *Builder { b.load().Rate = &r; return b }

// Load sets an open-loop load, a fraction of the bound.
func (b *Builder) Load(fraction float64) *Builder { b.load().Load = &fraction; return b }

// Arrivals sets the open loop's arrivals, fixed or poisson.
func (b *Builder) Arrivals(a pipelines.Arrivals) *Builder { b.load().Arrivals = string(a); return b }

// Messages sets the number of messages to send.
func (b *Builder) Messages(n int) *Builder { b.f.Messages = &n; return b }

// Seed sets the seed of service-time draws and Poisson arrivals.
func (b *Builder) Seed(s uint64) *Builder { b.f.Seed = &s; return b }

// File is the description as a File (what a YAML file decodes into).
func (b *Builder) File() File { return b.f }

// Build checks the description (as Parse checks a file) and returns it.
func (b *Builder) Build() (*Pipeline, error) { return b.f.Pipeline() }

func (b *Builder) deploy() *Deployment {
	if b.f.Deployment == nil {
		b.f.Deployment = &Deployment{}
	}
	return b.f.Deployment
}

func (b *Builder) load() *LoadSpec {
	if b.f.Load == nil {
		b.f.Load = &LoadSpec{}
	}
	return b.f.Load
}
