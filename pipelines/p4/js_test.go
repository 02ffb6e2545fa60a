package p4

import (
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

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
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 300
	// AckWait longer than varianttest.Stuck: the victim's message is still
	// its own when the spy finds it stuck.
	tr := js.Transport{Options: js.Options{AckWait: 3 * time.Second}}
	r := newRig(t, spec, Options{Alloc: Alloc{1, 4, 1, 1}, Processes: fleet.Processes{Transport: tr}}, pipelines.RunConfig{LossTimeout: 20 * time.Second, Timeout: 2 * time.Minute})
	sp := varianttest.NewSpy(t, r.srv.Conn, r.subjects, 1, spec.Stages())
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
