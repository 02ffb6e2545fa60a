// Package p2 is the variant with NATS between stages and non-blocking stage
// work in one process: a handler never waits for work; a fixed pool of
// Inflight executors does the stage work of every stage, so up to Inflight
// messages are in work at once across all stages. The routing is
// pipelines/router's.
package p2

import (
	"context"
	"fmt"
	"runtime"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
)

// DefaultInflight is the default limit on messages in stage work at once.
const DefaultInflight = 64

// Options configure a P2 pipeline.
type Options struct {
	NATS     natsconn.Config // how to connect to the server
	Subjects bus.Subjects    // the pipeline's subjects
	Inflight int             // messages in stage work at once; 0: DefaultInflight
	// Queue is the capacity of the queue in front of the executors; a full
	// queue is reported, never waited on; 0: router.DefaultQueue.
	Queue int
	// Transport is the broker's transport; nil: core NATS.
	Transport transport.Transport
}

// Pipeline is a running P2 pipeline.
type Pipeline struct {
	*router.Local
}

// Start connects to the server opts.NATS names and subscribes every stage. It returns once the
// server has registered every subscription.
func Start(ctx context.Context, opts Options, spec pipelines.Spec, sink pipelines.Sink) (*Pipeline, error) {
	if opts.Inflight < 0 {
		return nil, fmt.Errorf("p2: inflight %d < 0", opts.Inflight)
	}
	if opts.Inflight == 0 {
		opts.Inflight = DefaultInflight
	}
	l, err := router.StartLocal(ctx, router.LocalOptions{
		Variant: "p2", NATS: opts.NATS, Subjects: opts.Subjects, Transport: opts.Transport,
		Executors: opts.Inflight, Queue: opts.Queue,
	}, spec, sink)
	if err != nil {
		return nil, err
	}
	return &Pipeline{Local: l}, nil
}

// Bound is P2's throughput bound: inflight/sum(t), and for cpu work at most
// cores/sum(t).
func Bound(spec pipelines.Spec, inflight int) float64 {
	if inflight == 0 {
		inflight = DefaultInflight
	}
	return spec.Bound(pipelines.Capacity{Shared: inflight, Cores: runtime.GOMAXPROCS(0)})
}
