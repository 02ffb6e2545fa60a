package p4

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// jsEndpoint is the harness's side of a run over JetStream: the source
// into S1 and the sink's durable consumer of done, which completes each
// message in the runner and then acknowledges it, and the workers'
// redelivery reports counted in the runner.
type jsEndpoint struct {
	nc   *nats.Conn
	conn transport.Conn
	src  transport.Publisher
}

func attachJS(t testing.TB, srv *natstest.Server, tr js.Transport, run transport.Run, runner *pipelines.Runner) *jsEndpoint {
	t.Helper()
	nc, err := bus.Connect(srv.Conn, "natspipe-harness", runner)
	if err != nil {
		t.Fatal(err)
	}
	e := &jsEndpoint{nc: nc}
	t.Cleanup(func() { _ = e.close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.conn, err = tr.Open(ctx, transport.Env{NC: nc, NATS: srv.Conn, Name: "natspipe-harness", Faults: runner}); err != nil {
		t.Fatal(err)
	}
	if e.src, err = e.conn.Publisher(run, 0); err != nil {
		t.Fatal(err)
	}
	// The fleet counts the workers' redeliveries in runner (its sink).
	if _, err := e.conn.Consume(ctx, run, run.Done(), transport.ConsumeOptions{Member: "sink"}, func(d transport.Delivery) {
		runner.Complete(d.Data, time.Now())
		if err := d.Ack(); err != nil {
			runner.Fault(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

// Send implements pipelines.Sender.
func (e *jsEndpoint) Send(ctx context.Context, msg []byte) error {
	return e.src.Publish(ctx, transport.Outgoing{Data: msg})
}

func (e *jsEndpoint) close() error {
	var err error
	if e.conn != nil {
		err = e.conn.Drain()
		e.conn = nil
	}
	if e.nc != nil {
		err = errors.Join(err, bus.Drain(e.nc))
	}
	return err
}

// jsRig is a P4 pipeline over JetStream under test.
type jsRig struct {
	srv    *natstest.Server
	run    transport.Run
	runner *pipelines.Runner
	pipe   *Pipeline
	ep     *jsEndpoint
}

func newJSRig(t *testing.T, spec pipelines.Spec, alloc Alloc, tr js.Transport, rc pipelines.RunConfig) *jsRig {
	t.Helper()
	r := &jsRig{srv: natstest.StartJetStream(t)}
	r.run = transport.Run{Subjects: bus.NewSubjects(), Stages: spec.Stages()}
	launcher, err := fleet.Self()
	if err != nil {
		t.Fatal(err)
	}
	rc.Spec, rc.Variant, rc.AtLeastOnce = spec, "p4", tr.AtLeastOnce()
	rc.Bound = Bound(spec, alloc, worker.Sync, 0)
	rc.Window = Window(spec, alloc, worker.Sync, 0, rc.Bound)
	if r.runner, err = pipelines.NewRunner(rc); err != nil {
		t.Fatal(err)
	}
	opts := Options{Alloc: alloc}
	opts.NATS, opts.Subjects, opts.Launcher, opts.Transport = r.srv.Conn, r.run.Subjects, launcher, tr
	t.Cleanup(func() {
		if r.pipe != nil {
			checkNoOrphans(t, r.pipe.Fleet)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r.pipe, err = Start(ctx, opts, spec, r.runner); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.pipe.Close(); err != nil && r.pipe.Err() == nil {
			t.Errorf("close: %v", err)
		}
	})
	r.ep = attachJS(t, r.srv, tr, r.run, r.runner)
	return r
}

func (r *jsRig) runAsync(n int) <-chan outcome {
	done := make(chan outcome, 1)
	go func() {
		res, err := r.runner.Run(context.Background(), r.ep, n)
		done <- outcome{res, err}
	}()
	return done
}

// exactlyOnce checks that every message of res reached the sink: none
// lost, late or unaccounted, each correlation ID completed (a duplicate is
// counted, and the first kept).
func exactlyOnce(t *testing.T, res *pipelines.Result, n int) {
	t.Helper()
	if res.EndedBy != "" || res.Completed != n || len(res.Lost) != 0 || res.Late != 0 || len(res.Unaccounted) != 0 || len(res.Violations) != 0 {
		t.Errorf("ended by %q; completed %d of %d, lost %v, late %d, unaccounted %v, violations %v",
			res.EndedBy, res.Completed, n, res.Lost, res.Late, res.Unaccounted, res.Violations)
	}
	ids := map[string]bool{}
	for _, rec := range res.Records {
		if !rec.Completed() {
			t.Errorf("seq %d did not complete", rec.Seq)
			continue
		}
		if ids[rec.ID] {
			t.Errorf("correlation ID %s kept twice", rec.ID)
		}
		ids[rec.ID] = true
	}
	if len(ids) != n {
		t.Errorf("%d correlation IDs reached the sink, want %d", len(ids), n)
	}
}

// TestJSKillS2WorkerMidRun kills (SIGKILL) an S2 worker of 1-4-1-1 while it
// holds a message: over JetStream nothing is lost; what it held is
// delivered again to another S2 worker after AckWait, and the redelivery
// is counted.
func TestJSKillS2WorkerMidRun(t *testing.T) {
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 300
	// AckWait longer than varianttest.Stuck: the victim's message is still
	// its own when the spy finds it stuck.
	tr := js.Transport{Options: js.Options{AckWait: 3 * time.Second}}
	r := newJSRig(t, spec, Alloc{1, 4, 1, 1}, tr, pipelines.RunConfig{LossTimeout: 20 * time.Second, Timeout: 2 * time.Minute})
	sp := varianttest.NewSpy(t, r.srv.Conn, r.run.Subjects, 1, spec.Stages())
	const victim = "p4-S2-w2"

	done := r.runAsync(n)
	waitFor(t, "a third of the messages", 60*time.Second, func() bool { return sp.Completions() >= n/3 })
	held, _ := sp.KillHolding(t, r.pipe.PID(victim), 30*time.Second)
	t.Logf("killed %s holding at least %v", victim, held)

	res, _ := wait(t, done)
	if died := incidentsOf(res, victim, pipelines.WorkerDied); len(died) != 1 {
		t.Errorf("incidents %v, want %s's death", res.Incidents, victim)
	}
	exactlyOnce(t, res, n)
	if res.Redeliveries["S2"] < 1 {
		t.Errorf("redeliveries %v: want at least one at S2 (what %s held)", res.Redeliveries, victim)
	}
	t.Logf("duplicates %d, redeliveries %s", res.Duplicates, pipelines.FormatRedeliveries(res.Redeliveries))
}

// TestJSServerRestart stops the embedded nats-server mid-run and starts it
// again on the same port and store: the run completes with nothing lost.
func TestJSServerRestart(t *testing.T) {
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 300
	tr := js.Transport{Options: js.Options{AckWait: time.Second}}
	r := newJSRig(t, spec, Alloc{1, 2, 1, 1}, tr, pipelines.RunConfig{LossTimeout: 30 * time.Second, Timeout: 2 * time.Minute})
	if r.srv.External {
		t.Skip("restarts the embedded server")
	}
	sp := varianttest.NewSpy(t, r.srv.Conn, r.run.Subjects, 1, spec.Stages())

	done := r.runAsync(n)
	waitFor(t, "a third of the messages", 60*time.Second, func() bool { return sp.Completions() >= n/3 })
	r.srv.Shutdown()
	time.Sleep(200 * time.Millisecond) // the server is away for a while
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("server restarted after %d completions", sp.Completions())

	res, _ := wait(t, done)
	if died := incidentsOf(res, "", pipelines.WorkerDied); len(died) != 0 {
		t.Errorf("workers died: %v", died)
	}
	exactlyOnce(t, res, n)
	if err := r.pipe.Err(); err != nil {
		t.Errorf("fleet: %v", err)
	}
	t.Logf("duplicates %d, redeliveries %s", res.Duplicates, pipelines.FormatRedeliveries(res.Redeliveries))
}
