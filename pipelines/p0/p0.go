// Package p0 is the baseline variant: no messaging, the stages are
// sequential function calls in the caller's goroutine.
package p0

import (
	"context"
	"runtime"
	"time"

	"github.com/natspipe/natspipe/pipelines"
)

// Pipeline runs every stage of a message in turn, in the caller's goroutine.
// It implements pipelines.Sender.
type Pipeline struct {
	steps []pipelines.Step
	sink  pipelines.Sink
	env   pipelines.Envelope
	out   []byte
}

// New returns a P0 pipeline for spec reporting to sink.
func New(spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	steps := pipelines.StepsFor(spec, func(i int) string { return "p0-" + pipelines.StageName(i) })
	return &Pipeline{steps: steps, sink: sink}, nil
}

// Send runs msg through every stage and hands the result to the sink before
// returning. Sends must not overlap: P0 is sequential.
func (p *Pipeline) Send(ctx context.Context, msg []byte) error {
	if err := p.env.Decode(msg); err != nil {
		p.sink.Reject("p0", err)
		return nil
	}
	for _, s := range p.steps {
		if err := s.Run(ctx, &p.env, time.Now()); err != nil {
			return err
		}
	}
	var err error
	if p.out, err = p.env.Append(p.out[:0]); err != nil {
		return err
	}
	p.sink.Complete(p.out, time.Now())
	return nil
}

// Bound is P0's throughput bound: one message at a time, 1/sum(t).
func Bound(spec pipelines.Spec) float64 {
	return spec.Bound(pipelines.Capacity{Shared: 1, Cores: runtime.GOMAXPROCS(0)})
}

// Close implements io.Closer: P0 holds nothing to release.
func (p *Pipeline) Close() error { return nil }
