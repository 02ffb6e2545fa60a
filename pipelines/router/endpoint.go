package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// Endpoint is the harness's side of a run on a transport: a connection of
// its own, the source publishing into the first stage, and the sink's
// consumer of the done destination, which hands every message to the sink
// (pipelines.Sink.Complete) and then acknowledges it. It implements
// pipelines.Sender.
type Endpoint struct {
	nc   *nats.Conn
	conn transport.Conn
	src  transport.Publisher
}

// Attach connects the harness to the server conn names and, over tr (nil:
// core NATS), consumes run's done destination into sink; asynchronous
// errors go to sink.Fault. The pipeline must have been started (and the
// run set up on the transport) first.
func Attach(conn natsconn.Config, tr transport.Transport, run transport.Run, sink pipelines.Sink) (*Endpoint, error) {
	tr = transports.OrDefault(tr)
	nc, err := bus.Connect(conn, "natspipe-harness", sink)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bus.ConnectTimeout)
	defer cancel()
	c, err := tr.Open(ctx, transport.Env{NC: nc, NATS: conn, Name: "natspipe-harness", Faults: sink})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("harness: open transport %s: %w", tr.Name(), err)
	}
	e := &Endpoint{nc: nc, conn: c}
	fail := func(err error) (*Endpoint, error) {
		_ = c.Close()
		nc.Close()
		return nil, fmt.Errorf("harness: %w", err)
	}
	if e.src, err = c.Publisher(run, 0); err != nil {
		return fail(err)
	}
	_, err = c.Consume(ctx, run, run.Done(), transport.ConsumeOptions{Member: "sink"}, func(d transport.Delivery) {
		sink.Complete(d.Data, time.Now())
		if err := d.Ack(); err != nil {
			sink.Fault(fmt.Errorf("sink: acknowledge: %w", err))
		}
	})
	if err != nil {
		return fail(fmt.Errorf("sink: %w", err))
	}
	return e, nil
}

// Send implements pipelines.Sender: it publishes msg into the first stage.
func (e *Endpoint) Send(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.src.Publish(ctx, transport.Outgoing{Data: msg})
}

// Conn is the harness's NATS connection, for tests that publish on their own.
func (e *Endpoint) Conn() *nats.Conn { return e.nc }

// Close drains the sink's consumer and the harness's connection.
func (e *Endpoint) Close() error {
	err := e.conn.Drain()
	if e := bus.Drain(e.nc); e != nil {
		err = errors.Join(err, e)
	}
	return err
}
