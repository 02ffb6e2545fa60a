package router

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// LocalOptions configure a pipeline whose every stage runs in this process
// (P1, P2).
type LocalOptions struct {
	// Variant names the pipeline: its NATS connection, errors, and the
	// worker stamped on stage records ("p1" gives "p1-S1" ..).
	Variant  string
	NATS     natsconn.Config // how to connect to the server
	Subjects bus.Subjects    // the pipeline's subjects
	// Transport is the broker's transport; nil: core NATS.
	Transport transport.Transport
	// Executors is the stage work done at once over all stages (P1: 1, P2:
	// its in-flight limit).
	Executors int
	// Queue is the router's queue capacity; 0: DefaultQueue.
	Queue int
}

// Local is a running pipeline whose every stage runs in this process.
type Local struct {
	nc     *nats.Conn
	conn   transport.Conn
	run    transport.Run
	router *Router
}

// StartLocal connects to the server, sets the run up on the transport,
// and routes every stage of spec through one router with opts.Executors
// executors. It returns once every stage's consumer is registered.
// Asynchronous errors, faults and rejections go to sink.
func StartLocal(ctx context.Context, opts LocalOptions, spec pipelines.Spec, sink pipelines.Sink) (*Local, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	tr := transports.OrDefault(opts.Transport)
	nc, err := bus.Connect(opts.NATS, opts.Variant, sink)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Variant, err)
	}
	l := &Local{nc: nc, run: transport.Run{
		Subjects:    opts.Subjects,
		Stages:      spec.Stages(),
		Concurrency: slices.Repeat([]int{max(opts.Executors, 1)}, spec.Stages()),
	}}
	l.conn, err = tr.Open(ctx, transport.Env{NC: nc, NATS: opts.NATS, Name: opts.Variant, Faults: sink})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: open transport %s: %w", opts.Variant, tr.Name(), err)
	}
	if err := l.conn.Setup(ctx, l.run); err != nil {
		_ = l.conn.Close()
		nc.Close()
		return nil, fmt.Errorf("%s: set up transport %s: %w", opts.Variant, tr.Name(), err)
	}
	steps := pipelines.StepsFor(spec, func(i int) string { return opts.Variant + "-" + pipelines.StageName(i) })
	l.router, err = Start(ctx, Options{
		Name: opts.Variant, Conn: l.conn, Run: l.run, Steps: steps,
		Executors: opts.Executors, Queue: opts.Queue, Report: sink,
	})
	if err != nil {
		_ = l.close()
		return nil, err
	}
	return l, nil
}

// Close stops the pipeline: stage work in progress is cancelled, and Close
// waits for every goroutine it started, removes the run from the broker
// and drains the connection.
func (l *Local) Close() error {
	l.router.Stop()
	return l.close()
}

func (l *Local) close() error {
	// The run is torn down on the Conn that set it up, before it closes
	// (a RabbitMQ Conn's connection closes with it); the router has
	// stopped its consumers.
	ctx, cancel := context.WithTimeout(context.Background(), transport.CloseTimeout)
	defer cancel()
	err := l.conn.Teardown(ctx, l.run)
	if e := l.conn.Close(); e != nil {
		err = errors.Join(err, e)
	}
	if e := bus.Drain(l.nc); e != nil && !errors.Is(e, nats.ErrConnectionClosed) {
		err = errors.Join(err, e)
	}
	return err
}
