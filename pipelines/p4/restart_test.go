package p4

import (
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
)

// TestCoreServerRestart stops the embedded nats-server mid-run and starts
// it again on the same port: over core NATS every connection reconnects
// and the run goes on to its end. What the server held when it stopped is
// lost (at-most-once); the run reports exactly those messages as lost,
// each one sent and never completed, within its loss timeout, and the
// rest complete once each.
func TestCoreServerRestart(t *testing.T) {
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 300
	const lossTimeout = time.Second
	r := newRig(t, spec, Options{Alloc: Alloc{1, 2, 1, 1}}, pipelines.RunConfig{LossTimeout: lossTimeout, Timeout: 2 * time.Minute})
	if r.srv.External {
		t.Skip("restarts the embedded server")
	}
	sp := varianttest.NewSpy(t, r.srv.Conn, r.subjects, 1, spec.Stages())

	done := r.runAsync(n)
	waitFor(t, "a third of the messages", 60*time.Second, func() bool { return sp.Completions() >= n/3 })
	r.srv.Shutdown()
	stopped := time.Now()
	time.Sleep(200 * time.Millisecond) // the server is away for a while
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("server restarted after %d completions", sp.Completions())

	res, err := wait(t, done)
	if res.EndedBy != "" {
		t.Fatalf("run ended by %q (%v); want it to go on after the reconnect", res.EndedBy, err)
	}
	if (err == nil) != (len(res.Lost) == 0) {
		t.Errorf("run error %v with %d lost: a run fails exactly when it loses messages", err, len(res.Lost))
	}
	if died := incidentsOf(res, "", pipelines.WorkerDied); len(died) != 0 {
		t.Errorf("workers died: %v", died)
	}
	if err := r.pipe.Err(); err != nil {
		t.Errorf("fleet: %v", err)
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
	if took := res.Elapsed; took > time.Since(stopped)+time.Minute {
		t.Errorf("run took %v", took)
	}
	t.Logf("lost %d (%v) after the restart", len(res.Lost), res.Lost)
}
