// Package p2 is the variant with NATS between stages and non-blocking stage
// work in one process: a handler never waits for work; each message's stage
// work runs on a goroutine of its own, up to Inflight messages in work at
// once across all stages.
package p2

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// DefaultInflight is the default limit on messages in stage work at once.
const DefaultInflight = 64

// Options configure a P2 pipeline.
type Options struct {
	NATS     natsconn.Config // how to connect to the server
	Subjects bus.Subjects    // the pipeline's subjects
	Inflight int             // messages in stage work at once; 0: DefaultInflight
}

// Pipeline is a running P2 pipeline.
type Pipeline struct {
	nc     *nats.Conn
	slots  chan struct{}
	cancel context.CancelFunc
	work   sync.WaitGroup
}

// Start connects to the server opts.NATS names and subscribes every stage. It returns once the
// server has registered every subscription.
func Start(ctx context.Context, opts Options, spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if opts.Inflight < 0 {
		return nil, fmt.Errorf("p2: inflight %d < 0", opts.Inflight)
	}
	if opts.Inflight == 0 {
		opts.Inflight = DefaultInflight
	}
	nc, err := bus.Connect(opts.NATS, "p2", sink)
	if err != nil {
		return nil, fmt.Errorf("p2: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Pipeline{nc: nc, slots: make(chan struct{}, opts.Inflight), cancel: cancel}
	n := spec.Stages()
	for i, step := range pipelines.StepsFor(spec, func(i int) string { return "p2-" + pipelines.StageName(i) }) {
		next := opts.Subjects.Next(i, n)
		_, err := bus.Subscribe(nc, opts.Subjects.Stage(i), "", func(m *nats.Msg) {
			arrived := time.Now()
			p.work.Add(1)
			go p.handle(ctx, step, next, m.Data, arrived, sink)
		})
		if err != nil {
			cancel()
			nc.Close()
			return nil, fmt.Errorf("p2: stage %s: %w", pipelines.StageName(i), err)
		}
	}
	if err := nc.FlushTimeout(bus.ConnectTimeout); err != nil {
		cancel()
		nc.Close()
		return nil, fmt.Errorf("p2: flush subscriptions: %w", err)
	}
	return p, nil
}

// handle does one message's stage work once an in-flight slot is free.
func (p *Pipeline) handle(ctx context.Context, step pipelines.Step, next string, data []byte, arrived time.Time, sink pipelines.Sink) {
	defer p.work.Done()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-p.slots }()
	var env pipelines.Envelope
	out, err := step.Process(ctx, data, arrived, &env, nil)
	if err != nil {
		if ctx.Err() == nil {
			sink.Reject(pipelines.StageName(step.Index), err)
		}
		return
	}
	if err := p.nc.Publish(next, out); err != nil && ctx.Err() == nil {
		sink.Fault(fmt.Errorf("p2: stage %s: publish to %s: %w", pipelines.StageName(step.Index), next, err))
	}
}

// Close stops the pipeline: in-progress work is cancelled, and Close waits
// for every goroutine it started.
func (p *Pipeline) Close() error {
	p.cancel()
	err := bus.Drain(p.nc)
	p.work.Wait()
	return err
}

// Bound is P2's throughput bound: inflight/sum(t), and for cpu work at most
// cores/sum(t).
func Bound(spec pipelines.Spec, inflight int) float64 {
	if inflight == 0 {
		inflight = DefaultInflight
	}
	return spec.Bound(pipelines.Capacity{Shared: inflight, Cores: runtime.GOMAXPROCS(0)})
}
