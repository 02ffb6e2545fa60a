// Package bus is the NATS plumbing every messaging variant shares: subject
// names, connections whose asynchronous errors reach the run, the source
// that publishes into the first stage and the sink subscription on the last.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// DefaultURL is the NATS URL used when none is given.
const DefaultURL = natsconn.DefaultURL

// Subjects names a pipeline's subjects: "<prefix>.s1" .. "<prefix>.sN" for
// the stages' inputs and "<prefix>.done" for the sink.
type Subjects struct {
	Prefix string
}

// NewSubjects returns subjects under a fresh unique prefix, so runs sharing a
// server never see each other's messages.
func NewSubjects() Subjects { return Subjects{Prefix: "natspipe." + nuid.Next()} }

// Stage is the input subject of stage i (0-based).
func (s Subjects) Stage(i int) string { return s.Prefix + ".s" + strconv.Itoa(i+1) }

// Done is the subject the last stage publishes to.
func (s Subjects) Done() string { return s.Prefix + ".done" }

// Next is where stage i of n publishes: the next stage's input, or Done.
func (s Subjects) Next(i, n int) string {
	if i+1 >= n {
		return s.Done()
	}
	return s.Stage(i + 1)
}

// Queue is the queue group of stage i (0-based): its workers share its messages.
func (s Subjects) Queue(i int) string { return "natspipe-" + pipelines.StageName(i) }

// Faulter receives errors that break a run.
type Faulter interface {
	Fault(err error)
}

// ConnectTimeout bounds a connection attempt.
const ConnectTimeout = natsconn.ConnectTimeout

// Connect connects to the server conn names, with its credentials and TLS
// settings, as name. Slow-consumer errors, disconnects and other
// asynchronous errors are reported to f (which may be nil to drop them only
// when nobody can act on them), never swallowed silently. Errors, here and
// reported, show URLs masked and no secret of conn.
func Connect(conn natsconn.Config, name string, f Faulter) (*nats.Conn, error) {
	report := func(err error) {
		if f != nil {
			f.Fault(conn.RedactError(err))
		}
	}
	nc, err := conn.Connect(name,
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = " on " + sub.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
				n, _ := sub.Dropped()
				report(fmt.Errorf("nats %s: slow consumer%s: %d messages dropped: %w", name, subj, n, err))
				return
			}
			report(fmt.Errorf("nats %s: async error%s: %w", name, subj, err))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				report(fmt.Errorf("nats %s: disconnected: %w", name, err))
			}
		}),
	)
	if err != nil {
		return nil, err
	}
	return nc, nil
}

// TolerateDisconnects replaces nc's disconnect handler (Connect's reports
// every disconnect as a fault of the run) for a transport that goes on
// after a reconnect (a server restart): a disconnect is reported to f only
// when the connection is still away after within, as what's ("core
// transport on nats://...", the URL masked).
// What a broker lost meanwhile is the run's to count (lost messages), not
// a fault.
func TolerateDisconnects(nc *nats.Conn, f Faulter, within time.Duration, what string) {
	nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		if err == nil || f == nil {
			return // a deliberate close
		}
		time.AfterFunc(within, func() {
			if !nc.IsConnected() && !nc.IsClosed() {
				f.Fault(fmt.Errorf("%s: disconnected and not back after %v: %w", what, within, err))
			}
		})
	})
}

// Source publishes messages into a pipeline's first stage. It implements
// pipelines.Sender.
type Source struct {
	nc      *nats.Conn
	subject string
}

// NewSource returns a source publishing on nc to subjects.Stage(0).
func NewSource(nc *nats.Conn, subjects Subjects) *Source {
	return &Source{nc: nc, subject: subjects.Stage(0)}
}

// Send implements pipelines.Sender.
func (s *Source) Send(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.nc.Publish(s.subject, msg); err != nil {
		return fmt.Errorf("publish to %s: %w", s.subject, err)
	}
	return nil
}

// SubscribeSink subscribes sink to subjects.Done() on nc and waits until the
// server has registered the interest.
func SubscribeSink(nc *nats.Conn, subjects Subjects, sink pipelines.Sink) (*nats.Subscription, error) {
	sub, err := Subscribe(nc, subjects.Done(), "", func(m *nats.Msg) {
		sink.Complete(m.Data, time.Now())
	})
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	if err := nc.FlushTimeout(ConnectTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("sink: flush subscription %s: %w", subjects.Done(), err)
	}
	return sub, nil
}

// Subscribe subscribes h to subject on nc, in queue group queue unless it is
// empty, with the client-side pending limits lifted (see Unlimit).
func Subscribe(nc *nats.Conn, subject, queue string, h nats.MsgHandler) (*nats.Subscription, error) {
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = nc.Subscribe(subject, h)
	} else {
		sub, err = nc.QueueSubscribe(subject, queue, h)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	if err := Unlimit(sub); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// Unlimit lifts a subscription's client-side pending limits so a burst the
// window allows is never dropped as a slow consumer; the closed-loop window
// or the open-loop rate is what bounds the backlog.
func Unlimit(sub *nats.Subscription) error {
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return fmt.Errorf("subscription %s: pending limits: %w", sub.Subject, err)
	}
	return nil
}

// CloseTimeout bounds how long closing a connection may wait for its
// handlers to drain.
const CloseTimeout = 10 * time.Second

// Drain drains nc, letting in-progress handlers finish, and waits until it is
// closed, at most CloseTimeout; then it closes it hard. A connection that is
// not connected (reconnecting, or lost while draining) has nothing it can
// drain: it is closed at once, and that is not an error, since the loss of
// the connection was already reported to its Faulter.
func Drain(nc *nats.Conn) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	// The status can change between any check and Drain (reconnects are on),
	// so Drain's own answer decides, not a look beforehand.
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("drain %s: %w", nc.Opts.Name, err)
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	deadline := time.NewTimer(CloseTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-closed:
			return nil
		case <-poll.C:
			if st := nc.Status(); st == nats.RECONNECTING || st == nats.DISCONNECTED {
				// Lost mid-drain: nothing more can be flushed.
				nc.Close()
				return nil
			}
		case <-deadline.C:
			nc.Close()
			return fmt.Errorf("drain %s: not closed after %v", nc.Opts.Name, CloseTimeout)
		}
	}
}

// Endpoint is the harness's side of a messaging pipeline: a connection of its
// own, a Source into the first stage and the sink's subscription on Done.
type Endpoint struct {
	*Source
	nc *nats.Conn
}

// Attach connects the harness to the server conn names and subscribes sink
// to the pipeline's Done subject; asynchronous errors go to sink.Fault.
func Attach(conn natsconn.Config, subjects Subjects, sink pipelines.Sink) (*Endpoint, error) {
	nc, err := Connect(conn, "natspipe-harness", sink)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	if _, err := SubscribeSink(nc, subjects, sink); err != nil {
		nc.Close()
		return nil, fmt.Errorf("harness: %w", err)
	}
	return &Endpoint{Source: NewSource(nc, subjects), nc: nc}, nil
}

// Conn is the harness's connection, for tests that publish on their own.
func (e *Endpoint) Conn() *nats.Conn { return e.nc }

// Close drains and closes the harness's connection.
func (e *Endpoint) Close() error { return Drain(e.nc) }
