package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines/bus"
)

// RawChain is the floor natspipe's per-hop cost is held against: a chain of
// plain nats.go subscriptions, each republishing the message unchanged to
// the next subject, with no envelope, stage step or accounting.
type RawChain struct {
	nc   *nats.Conn
	in   string
	done chan struct{}
	subs []*nats.Subscription
}

// NewRawChain subscribes a chain of hops on one connection to url: a message
// published to the chain passes hops-1 subscribers and then reaches the end.
func NewRawChain(url string, hops int) (*RawChain, error) {
	if hops < 1 {
		return nil, fmt.Errorf("raw chain: %d hops, want at least 1", hops)
	}
	nc, err := bus.Connect(url, "natspipe-raw", nil)
	if err != nil {
		return nil, fmt.Errorf("raw chain: %w", err)
	}
	subj := bus.NewSubjects()
	c := &RawChain{nc: nc, in: subj.Stage(0), done: make(chan struct{}, 1)}
	for i := 0; i < hops-1; i++ {
		next := subj.Stage(i + 1)
		sub, err := nc.Subscribe(subj.Stage(i), func(m *nats.Msg) { _ = nc.Publish(next, m.Data) })
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("raw chain: subscribe hop %d: %w", i+1, err)
		}
		c.subs = append(c.subs, sub)
	}
	if _, err := nc.Subscribe(subj.Stage(hops-1), func(*nats.Msg) { c.done <- struct{}{} }); err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw chain: subscribe end: %w", err)
	}
	if err := nc.FlushTimeout(bus.ConnectTimeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw chain: flush: %w", err)
	}
	return c, nil
}

// RoundTrips sends n messages one at a time through the chain and returns the
// mean time for one message to pass every hop.
func (c *RawChain) RoundTrips(ctx context.Context, n int, msg []byte) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := c.nc.Publish(c.in, msg); err != nil {
			return 0, fmt.Errorf("raw chain: publish message %d: %w", i, err)
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return 0, fmt.Errorf("raw chain: message %d of %d did not come back: %w", i, n, ctx.Err())
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

// Close closes the chain's connection.
func (c *RawChain) Close() error { return bus.Drain(c.nc) }
