// Package p1 is the variant with NATS between stages and one executor for
// all stage work in the process: while one stage works, every other stage
// waits, as in a single asyncio event loop making blocking calls.
//
// In Go a nats.go async subscription already runs its handler on a goroutine
// of its own, so blocking inside handlers would only block that stage. P1
// therefore has its handlers only stamp arrival and queue the message; one
// executor goroutine takes queued messages in arrival order and does all
// stage work. The routing is pipelines/router's, with one executor.
package p1

import (
	"context"
	"runtime"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
)

// DefaultQueue is the executor queue's capacity: far above any window a
// run uses; a full queue is reported, never waited on.
const DefaultQueue = router.DefaultQueue

// Options configure a P1 pipeline.
type Options struct {
	NATS     natsconn.Config // how to connect to the server
	Subjects bus.Subjects    // the pipeline's subjects
	Queue    int             // executor queue capacity; 0: DefaultQueue
	// Transport is the broker's transport; nil: core NATS.
	Transport transport.Transport
}

// Pipeline is a running P1 pipeline.
type Pipeline struct {
	*router.Local
}

// Start connects to the server opts.NATS names, subscribes every stage and starts the executor.
// It returns once the server has registered every subscription.
func Start(ctx context.Context, opts Options, spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	l, err := router.StartLocal(ctx, router.LocalOptions{
		Variant: "p1", NATS: opts.NATS, Subjects: opts.Subjects, Transport: opts.Transport,
		Executors: 1, Queue: opts.Queue,
	}, spec, sink)
	if err != nil {
		return nil, err
	}
	return &Pipeline{Local: l}, nil
}

// Bound is P1's throughput bound: one executor, 1/sum(t).
func Bound(spec pipelines.Spec) float64 {
	return spec.Bound(pipelines.Capacity{Shared: 1, Cores: runtime.GOMAXPROCS(0)})
}
