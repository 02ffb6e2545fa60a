// Package p1 is the variant with NATS between stages and one executor for
// all stage work in the process: while one stage works, every other stage
// waits, as in a single asyncio event loop making blocking calls.
//
// In Go a nats.go async subscription already runs its handler on a goroutine
// of its own, so blocking inside handlers would only block that stage. P1
// therefore has its handlers only stamp arrival and queue the message; one
// executor goroutine takes queued messages in arrival order and does all
// stage work.
package p1

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// DefaultQueue is the executor queue's capacity: far above any window a
// run uses; a full queue is reported, never waited on.
const DefaultQueue = 1 << 16

// Options configure a P1 pipeline.
type Options struct {
	NATS     natsconn.Config // how to connect to the server
	Subjects bus.Subjects    // the pipeline's subjects
	Queue    int             // executor queue capacity; 0: DefaultQueue
}

type task struct {
	stage   int
	data    []byte
	arrived time.Time
}

// Pipeline is a running P1 pipeline.
type Pipeline struct {
	nc     *nats.Conn
	queue  chan task
	cancel context.CancelFunc
	done   chan struct{}
}

// Start connects to the server opts.NATS names, subscribes every stage and starts the executor.
// It returns once the server has registered every subscription.
func Start(ctx context.Context, opts Options, spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	nc, err := bus.Connect(opts.NATS, "p1", sink)
	if err != nil {
		return nil, fmt.Errorf("p1: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Pipeline{nc: nc, queue: make(chan task, opts.Queue), cancel: cancel, done: make(chan struct{})}
	for i := range spec.Stages() {
		name := pipelines.StageName(i)
		_, err := bus.Subscribe(nc, opts.Subjects.Stage(i), "", func(m *nats.Msg) {
			select {
			case p.queue <- task{stage: i, data: m.Data, arrived: time.Now()}:
			default:
				sink.Fault(fmt.Errorf("p1: stage %s: executor queue full (%d messages)", name, cap(p.queue)))
			}
		})
		if err != nil {
			cancel()
			nc.Close()
			return nil, fmt.Errorf("p1: stage %s: %w", name, err)
		}
	}
	if err := nc.FlushTimeout(bus.ConnectTimeout); err != nil {
		cancel()
		nc.Close()
		return nil, fmt.Errorf("p1: flush subscriptions: %w", err)
	}
	steps := pipelines.StepsFor(spec, func(i int) string { return "p1-" + pipelines.StageName(i) })
	nexts := make([]string, len(steps)) // nexts[i]: where stage i's results go
	for i := range nexts {
		nexts[i] = opts.Subjects.Next(i, len(steps))
	}
	go p.execute(ctx, steps, nexts, sink)
	return p, nil
}

// execute is the one executor: all stage work of the process runs here.
func (p *Pipeline) execute(ctx context.Context, steps []pipelines.Step, nexts []string, sink pipelines.Sink) {
	defer close(p.done)
	var env pipelines.Envelope
	var out []byte
	for {
		var t task
		select {
		case <-ctx.Done():
			return
		case t = <-p.queue:
		}
		s := steps[t.stage]
		var err error
		out, err = s.Process(ctx, t.data, t.arrived, &env, out)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			sink.Reject(pipelines.StageName(t.stage), err)
			continue
		}
		next := nexts[t.stage]
		if err := p.nc.Publish(next, out); err != nil {
			sink.Fault(fmt.Errorf("p1: stage %s: publish to %s: %w", pipelines.StageName(t.stage), next, err))
		}
	}
}

// Close stops the executor and the connection and waits for both.
func (p *Pipeline) Close() error {
	p.cancel()
	<-p.done
	err := bus.Drain(p.nc)
	if errors.Is(err, nats.ErrConnectionClosed) {
		err = nil
	}
	return err
}

// Bound is P1's throughput bound: one executor, 1/sum(t).
func Bound(spec pipelines.Spec) float64 {
	return spec.Bound(pipelines.Capacity{Shared: 1, Cores: runtime.GOMAXPROCS(0)})
}
