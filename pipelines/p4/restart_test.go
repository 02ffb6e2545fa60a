package p4

import (
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// restartMidRun runs n messages through a P4 pipeline over tr, stops the
// embedded nats-server once a third have completed and starts it again on
// the same port and store 200 ms later, and returns the run's outcome.
// No worker may die of it.
func restartMidRun(t *testing.T, tr transport.Transport, alloc Alloc, n int, rc pipelines.RunConfig) (*pipelines.Result, error) {
	t.Helper()
	spec := testSpec()
	r := newRig(t, spec, Options{Alloc: alloc, Processes: fleet.Processes{Transport: tr}}, rc)
	if r.srv.External {
		t.Skip("restarts the embedded server")
	}
	sp := varianttest.NewSpy(t, r.srv.Conn, r.subjects, 1, spec.Stages())

	done := r.runAsync(n)
	waitFor(t, "a third of the messages", 60*time.Second, func() bool { return sp.Completions() >= n/3 })
	r.srv.Shutdown()
	time.Sleep(200 * time.Millisecond) // the server is away for a while
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("server restarted after %d completions", sp.Completions())

	res, err := wait(t, done)
	if died := incidentsOf(res, "", pipelines.WorkerDied); len(died) != 0 {
		t.Errorf("workers died: %v", died)
	}
	if err := r.pipe.Err(); err != nil {
		t.Errorf("fleet: %v", err)
	}
	return res, err
}

// TestJSServerRestart: over JetStream (file storage) a server restart
// mid-run loses nothing; every message completes once.
func TestJSServerRestart(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	const n = 300
	tr := js.Transport{Options: js.Options{AckWait: time.Second}}
	res, _ := restartMidRun(t, tr, Alloc{1, 2, 1, 1}, n, pipelines.RunConfig{LossTimeout: 30 * time.Second, Timeout: 2 * time.Minute})
	exactlyOnce(t, res, n)
	t.Logf("duplicates %d, redeliveries %s", res.Duplicates, pipelines.FormatRedeliveries(res.Redeliveries))
}

// TestCoreServerRestart: over core NATS every connection reconnects and
// the run goes on to its end. What the server held when it stopped is lost
// (at-most-once); the run reports exactly those messages as lost, each one
// sent and never completed, within its loss timeout, and the rest complete
// once each.
func TestCoreServerRestart(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	const n = 300
	res, err := restartMidRun(t, nil, Alloc{1, 2, 1, 1}, n, pipelines.RunConfig{LossTimeout: time.Second, Timeout: 2 * time.Minute})
	if res.EndedBy != "" {
		t.Fatalf("run ended by %q (%v); want it to go on after the reconnect", res.EndedBy, err)
	}
	if (err == nil) != (len(res.Lost) == 0) {
		t.Errorf("run error %v with %d lost: a run fails exactly when it loses messages", err, len(res.Lost))
	}
	// Exactly the lost: completed and lost partition the run.
	if res.Completed+len(res.Lost) != n || len(res.Unaccounted) != 0 || res.Unsent != 0 || res.Duplicates != 0 {
		t.Errorf("completed %d + lost %d != %d (unaccounted %v, unsent %d, duplicates %d)",
			res.Completed, len(res.Lost), n, res.Unaccounted, res.Unsent, res.Duplicates)
	}
	for _, seq := range res.Lost {
		rec := res.Records[seq]
		if rec.Completed() || rec.Intended == 0 {
			t.Errorf("lost seq %d: completed or never sent", seq)
		}
	}
	// Only what was in flight around the outage can be lost: at most the
	// window (the closed loop sends no more until messages complete or are
	// declared lost) for each loss timeout the outage spans.
	if limit := res.Window * 2; len(res.Lost) > limit {
		t.Errorf("lost %d, more than twice the window (%d) for a 200 ms outage", len(res.Lost), res.Window)
	}
	t.Logf("lost %d (%v) after the restart", len(res.Lost), res.Lost)
}
