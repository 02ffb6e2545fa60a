package bench

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// RawChain is the floor natspipe's per-hop cost is held against: a chain of
// plain nats.go subscriptions, each republishing the message unchanged to
// the next subject, with no envelope, stage step or accounting.
type RawChain struct {
	nc   *nats.Conn
	in   string
	done chan struct{}
}

// NewRawChain subscribes a chain of hops on one connection to the server
// conn names: a message
// published to the chain passes hops-1 subscribers and then reaches the end.
func NewRawChain(conn natsconn.Config, hops int) (*RawChain, error) {
	if hops < 1 {
		return nil, fmt.Errorf("raw chain: %d hops, want at least 1", hops)
	}
	nc, err := bus.Connect(conn, "natspipe-raw", nil)
	if err != nil {
		return nil, fmt.Errorf("raw chain: %w", err)
	}
	subj := bus.NewSubjects()
	c := &RawChain{nc: nc, in: subj.Stage(0), done: make(chan struct{}, 1)}
	for i := 0; i < hops-1; i++ {
		next := subj.Stage(i + 1)
		if _, err := nc.Subscribe(subj.Stage(i), func(m *nats.Msg) { _ = nc.Publish(next, m.Data) }); err != nil {
			nc.Close()
			return nil, fmt.Errorf("raw chain: subscribe hop %d: %w", i+1, err)
		}
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

// Windowed sends n messages through the chain keeping window of them in
// flight (a closed loop, as natspipe's runner does) and returns the time
// from the first send to the last arrival.
func (c *RawChain) Windowed(ctx context.Context, n, window int, msg []byte) (time.Duration, error) {
	if n < 1 || window < 1 {
		return 0, fmt.Errorf("raw chain: %d messages, window %d: want at least 1 of each", n, window)
	}
	start := time.Now()
	sent := 0
	for ; sent < min(window, n); sent++ {
		if err := c.nc.Publish(c.in, msg); err != nil {
			return 0, fmt.Errorf("raw chain: publish message %d: %w", sent, err)
		}
	}
	for done := 0; done < n; done++ {
		select {
		case <-c.done:
		case <-ctx.Done():
			return 0, fmt.Errorf("raw chain: %d of %d messages came back: %w", done, n, ctx.Err())
		}
		if sent < n {
			if err := c.nc.Publish(c.in, msg); err != nil {
				return 0, fmt.Errorf("raw chain: publish message %d: %w", sent, err)
			}
			sent++
		}
	}
	return time.Since(start), nil
}

// Close closes the chain's connection (a process chain's hops are stopped
// by their procs.Group).
func (c *RawChain) Close() error { return bus.Drain(c.nc) }

// EnvRawHop makes a binary that calls RawHopMain run as one hop of a raw
// cross-process chain: its value is "IN OUT"; the hop connects with the
// NATS_* settings of its environment (natsconn.Load).
const EnvRawHop = "NATSPIPE_RAW_HOP"

// RawHopMain, when EnvRawHop is set, runs this process as one raw hop
// (subscribe to IN, republish every message unchanged to OUT) until its
// parent's lifeline closes or it is signalled, and never returns. It does
// nothing otherwise. Call it first in TestMain.
func RawHopMain() {
	v := os.Getenv(EnvRawHop)
	if v == "" {
		return
	}
	procs.ExitWithParent()
	f := strings.Fields(v)
	if len(f) != 2 {
		fmt.Fprintf(os.Stderr, "%s=%q: want \"IN OUT\"\n", EnvRawHop, v)
		os.Exit(2)
	}
	conn, err := natsconn.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	nc, err := bus.Connect(conn, "natspipe-raw-hop", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := f[1]
	if _, err := nc.Subscribe(f[0], func(m *nats.Msg) { _ = nc.Publish(out, m.Data) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := nc.FlushTimeout(bus.ConnectTimeout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	nc.Close()
	os.Exit(0)
}

// rawProbe marks the messages that check a chain is connected end to end.
const rawProbe = "natspipe-raw-probe"

// NewRawProcChain is NewRawChain with every republishing hop in a process of
// its own (exe, run with EnvRawHop, started in g), as P3 and P4 have: the
// floor their per-hop cost is held against. Hop i (0-based, stage i's
// place) connects with hopConn(i), conn when hopConn is nil; the chain's
// ends with conn. It returns once a probe has passed the whole chain,
// within ready.
func NewRawProcChain(conn natsconn.Config, hopConn func(i int) natsconn.Config, hops int, g *procs.Group, exe string, ready time.Duration) (*RawChain, error) {
	if hops < 1 {
		return nil, fmt.Errorf("raw process chain: %d hops, want at least 1", hops)
	}
	nc, err := bus.Connect(conn, "natspipe-raw", nil)
	if err != nil {
		return nil, fmt.Errorf("raw process chain: %w", err)
	}
	subj := bus.NewSubjects()
	c := &RawChain{nc: nc, in: subj.Stage(0), done: make(chan struct{}, 1)}
	probed := make(chan struct{}, 1)
	_, err = nc.Subscribe(subj.Stage(hops-1), func(m *nats.Msg) {
		if string(m.Data) == rawProbe {
			select {
			case probed <- struct{}{}:
			default:
			}
			return
		}
		c.done <- struct{}{}
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw process chain: subscribe end: %w", err)
	}
	for i := 0; i < hops-1; i++ {
		hc := conn
		if hopConn != nil {
			hc = hopConn(i)
		}
		_, err := g.Start(procs.Spec{
			Name: fmt.Sprintf("raw-hop-%d", i+1), Path: exe, Lifeline: true,
			Env: append(append(os.Environ(), hc.Environ()...), fmt.Sprintf("%s=%s %s", EnvRawHop, subj.Stage(i), subj.Stage(i+1))),
		})
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("raw process chain: hop %d: %w", i+1, err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(ready)
	for {
		if err := nc.Publish(c.in, []byte(rawProbe)); err != nil {
			nc.Close()
			return nil, fmt.Errorf("raw process chain: probe: %w", err)
		}
		select {
		case <-probed:
			// Let probes still in the chain arrive, then forget them.
			time.Sleep(50 * time.Millisecond)
			return c, nil
		case <-deadline:
			nc.Close()
			return nil, fmt.Errorf("raw process chain: no probe came through %d hops within %v", hops, ready)
		case <-tick.C:
		}
	}
}
