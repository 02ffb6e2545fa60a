package p1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/brokertest"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p1"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/core"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 32}
}

// p1v is P1 as the registry (pipelines/variants) starts it.
var p1v, _ = variants.Lookup("p1")

// startOn starts P1 over tr (nil: core) through the registry.
func startOn(tr transport.Transport) varianttest.StartFunc {
	return func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
		return p1v.Start(ctx, variants.Config{Spec: spec, NATS: conn, Subjects: subjects, Transport: tr}, sink)
	}
}

var start = startOn(nil)

func config(spec pipelines.Spec) pipelines.RunConfig {
	return pipelines.RunConfig{Spec: spec, Variant: "p1", Bound: p1v.Bound(variants.Config{Spec: spec}), Window: 8}
}

// TestP1ExactlyOnceOneAtATime runs P1 over every transport (a broker of
// its own found or started by internal/brokertest, or skipped saying why):
// every message once through every stage, one at a time, and a clean close
// (the run torn down on the broker).
func TestP1ExactlyOnceOneAtATime(t *testing.T) {
	for _, tr := range transports.All() {
		t.Run("transport="+tr.Name(), func(t *testing.T) { p1ExactlyOnce(t, brokertest.For(t, tr)) })
	}
}

func p1ExactlyOnce(t *testing.T, tr transport.Transport) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	fx := varianttest.StartOn(t, srv.Conn, tr, startOn(tr), config(spec))
	res, err := fx.Runner.Run(context.Background(), fx.Endpoint, 60)
	if err != nil {
		t.Fatal(err)
	}
	varianttest.CheckExactlyOnce(t, spec, res)
	// One executor: never two messages in stage work at once, although the
	// window keeps 8 in flight.
	if o := varianttest.MaxOverlap(res); o != 1 {
		t.Errorf("P1 had %d messages in stage work at once, want 1", o)
	}
	// Queue wait shows the blocking: some message waited at some stage.
	waited := false
	for _, rec := range res.Records {
		for _, st := range rec.Stages {
			waited = waited || st.Started-st.Arrived > int64(time.Millisecond)
		}
	}
	if !waited {
		t.Error("no message ever waited for the executor, though 8 were in flight")
	}
	if res.Throughput > res.Bound*1.02 {
		t.Errorf("throughput %.1f msgs/s above the bound %.1f: a stage finished early", res.Throughput, res.Bound)
	}
	t.Log(res.Summary())
}

func TestP1Malformed(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	fx := varianttest.Start(t, srv.Conn, start, config(spec))
	varianttest.Malformed(t, fx, spec, 40)
}

// TestP1ServerGone: a server that goes away for good fails the run,
// within the transport's reconnect bound, saying the connection went.
func TestP1ServerGone(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	if srv.External {
		t.Skip("needs an embedded server to stop")
	}
	spec := testSpec()
	cfg := config(spec)
	cfg.Timeout = 20 * time.Second
	// A short reconnect bound: the server is not coming back.
	tr := core.Transport{Reconnect: time.Second}
	fx := varianttest.StartOn(t, srv.Conn, tr, startOn(tr), cfg)
	time.AfterFunc(50*time.Millisecond, srv.Shutdown)
	begin := time.Now()
	_, err := fx.Runner.Run(context.Background(), fx.Endpoint, 1000)
	if err == nil {
		t.Fatal("run survived its server's shutdown")
	}
	if !strings.Contains(err.Error(), "disconnected") && !strings.Contains(err.Error(), "publish") {
		t.Errorf("error does not say the connection went: %v", err)
	}
	// A disconnect is a fault once the connection is not back within the
	// transport's bound (a restart is survived: see p4's
	// TestCoreServerRestart).
	if took := time.Since(begin); took > tr.Reconnect+5*time.Second {
		t.Errorf("run took %v to notice its server was gone (bound %v)", took, tr.Reconnect)
	}
}

func TestP1BadURL(t *testing.T) {
	benchkit.CheckLeaks(t)
	r, _ := pipelines.NewRunner(config(testSpec()))
	_, err := p1.Start(context.Background(), p1.Options{NATS: natsconn.Config{URL: "nats://127.0.0.1:1"}, Subjects: bus.NewSubjects()}, testSpec(), r)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("bad URL: error %v does not name it", err)
	}
}

func BenchmarkP1(b *testing.B) {
	srv := natstest.Start(b)
	base := benchkit.Spec(b, pipelines.DefaultSpec())
	trs, err := transports.FromEnv(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
		for _, tr := range trs {
			spec := base
			spec.Work = work
			fixture := benchkit.Once(func() *varianttest.Fixture {
				cfg := pipelines.RunConfig{Spec: spec, Variant: "p1", Bound: p1v.Bound(variants.Config{Spec: spec}),
					Window: benchkit.Int(b, pipelines.EnvWindow, 0), Timeout: benchkit.Timeout(b)}
				ready := brokertest.For(b, tr)
				return varianttest.StartOn(b, srv.Conn, ready, startOn(ready), cfg)
			})
			b.Run("work="+string(work)+"/transport="+tr.Name(), func(b *testing.B) {
				brokertest.For(b, tr) // skips, saying why, when tr's broker is not there
				fx := fixture()
				benchkit.Bench(b, fx.Runner, fx.Endpoint)
			})
		}
	}
}
