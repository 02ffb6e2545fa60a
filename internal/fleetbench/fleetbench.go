// Package fleetbench runs the sub-benchmarks of the multi-process variants
// (P3, P4): the worker processes start once per sub-benchmark, outside the
// timed section, serve every b.N testing.B tries, and stop after the last;
// besides benchkit's metrics it reports the fleet's start-up time and, for
// stages with several workers, the queue group's balance.
package fleetbench

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchunits"
	"github.com/natspipe/natspipe/internal/brokertest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// Config is one sub-benchmark's pipeline.
type Config struct {
	Variant string
	Spec    pipelines.Spec
	Alloc   []int   // workers per stage
	Bound   float64 // theoretical msgs/s
	Window  int     // default window; NATSPIPE_WINDOW overrides it
	// Processes configures the workers; the fixture sets their connection,
	// subjects and launcher (this test binary).
	Processes fleet.Processes
}

// StartTimeout bounds starting a fleet.
const StartTimeout = 2 * time.Minute

// fixture is a sub-benchmark's running pipeline.
type fixture struct {
	runner *pipelines.Runner
	fleet  *fleet.Fleet
	ep     *router.Endpoint
}

func newFixture(b *testing.B, conn natsconn.Config, cfg Config) (*fixture, error) {
	launcher, err := fleet.Self()
	if err != nil {
		return nil, err
	}
	window := benchkit.Int(b, pipelines.EnvWindow, 0)
	if window == 0 {
		window = cfg.Window
	}
	rc := pipelines.RunConfig{Spec: cfg.Spec, Variant: cfg.Variant, Bound: cfg.Bound, Window: window, Timeout: benchkit.Timeout(b)}
	transports.Describe(&rc, cfg.Processes.Transport)
	runner, err := pipelines.NewRunner(rc)
	if err != nil {
		return nil, err
	}
	subjects := bus.NewSubjects()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	p := cfg.Processes
	p.NATS, p.Subjects, p.Launcher = conn, subjects, launcher
	f, err := fleet.Start(ctx, fleet.Config{Processes: p, Spec: cfg.Spec, Alloc: cfg.Alloc, Variant: cfg.Variant}, runner)
	if err != nil {
		return nil, err
	}
	ep, err := router.Attach(conn, p.Transport, transport.Run{Subjects: subjects, Stages: cfg.Spec.Stages()}, runner)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &fixture{runner: runner, fleet: f, ep: ep}, nil
}

func (fx *fixture) close() error {
	err := fx.fleet.Close()
	if e := fx.ep.Close(); err == nil {
		err = e
	}
	return err
}

// Run runs the sub-benchmark name of b: b.N messages through a fleet started
// on its first call. It reports benchkit's metrics, the fleet's start-up time
// (startup-ms), each worker's share of its stage's messages for stages with
// several workers (s2-w1-share, ...) and the worst relative deviation from an
// even share (imbalance).
func Run(b *testing.B, conn natsconn.Config, name string, cfg Config) {
	var fx *fixture
	var setupErr error
	defer func() {
		if fx != nil {
			if err := fx.close(); err != nil {
				b.Errorf("%s: %v", name, err)
			}
		}
	}()
	b.Run(name, func(b *testing.B) {
		if fx == nil && setupErr == nil {
			// Skips, saying why, when the transport's broker is not there.
			cfg.Processes.Transport = brokertest.For(b, cfg.Processes.Transport)
			fx, setupErr = newFixture(b, conn, cfg)
		}
		if setupErr != nil {
			b.Fatal(setupErr)
		}
		if err := fx.fleet.Err(); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		before, err := fx.fleet.Stats(ctx)
		if err != nil {
			b.Fatal(fmt.Errorf("worker stats before the run: %w", err))
		}
		benchkit.Bench(b, fx.runner, fx.ep)
		after, err := fx.fleet.Stats(ctx)
		if err != nil {
			b.Fatal(fmt.Errorf("worker stats after the run: %w", err))
		}
		b.ReportMetric(float64(fx.fleet.Startup())/float64(time.Millisecond), benchunits.Startup)
		reportShares(b, fx.fleet.Workers(), fleet.Handled(before, after), cfg.Alloc)
	})
}

// reportShares reports the balance of stages with several workers.
func reportShares(b *testing.B, ids []fleet.WorkerID, handled map[string]uint64, alloc []int) {
	shares := fleet.Shares(ids, handled)
	worst := math.NaN()
	for st, n := range alloc {
		if n < 2 {
			continue
		}
		if im := fleet.Imbalance(shares, st); math.IsNaN(worst) || im > worst {
			worst = im
		}
	}
	if math.IsNaN(worst) {
		return
	}
	for _, s := range shares {
		if alloc[s.Stage] > 1 && !math.IsNaN(s.Share) {
			b.ReportMetric(s.Share, s.MetricName())
		}
	}
	b.ReportMetric(worst, benchunits.Imbalance)
	if b.N > 1 {
		b.Logf("N=%d %s", b.N, fleet.FormatShares(shares))
	}
}
