package p4

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/fleetbench"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/core"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func TestMain(m *testing.M) {
	worker.Dispatch() // the test binary doubles as the worker process
	os.Exit(benchkit.Main(m))
}

// testSpec is a short pipeline for tests: 2, 8, 2, 2 ms, sleep work.
func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 32}
}

// rig is a P4 pipeline under test: a NATS server, the worker processes, the
// harness's endpoint and the runner.
type rig struct {
	srv      *natstest.Server // nil on a cluster (newRigOn)
	conn     natsconn.Config  // how the harness connects
	subjects bus.Subjects
	runner   *pipelines.Runner
	pipe     *Pipeline
	ep       *router.Endpoint
}

func newRig(t testing.TB, spec pipelines.Spec, opts Options, rc pipelines.RunConfig) *rig {
	t.Helper()
	srv := natstest.Start(t)
	r := newRigOn(t, srv.Conn, spec, opts, rc)
	r.srv = srv
	return r
}

// newRigOn is newRig on the server or cluster conn names: the harness
// (fleet, source and sink) connects with conn, each worker with opts.NATS
// changed by opts.Env.
func newRigOn(t testing.TB, conn natsconn.Config, spec pipelines.Spec, opts Options, rc pipelines.RunConfig) *rig {
	t.Helper()
	r := &rig{conn: conn, subjects: bus.NewSubjects()}
	launcher, err := fleet.Self()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Alloc == nil {
		opts.Alloc = DefaultAlloc()
	}
	rc.Spec, rc.Variant = spec, "p4"
	transports.Describe(&rc, opts.Transport)
	if rc.Bound == 0 {
		rc.Bound = Bound(spec, opts.Alloc, opts.Mode, opts.Concurrency)
	}
	if rc.Window == 0 {
		rc.Window = Window(spec, opts.Alloc, opts.Mode, opts.Concurrency, rc.Bound)
	}
	if r.runner, err = pipelines.NewRunner(rc); err != nil {
		t.Fatal(err)
	}
	opts.NATS, opts.Subjects, opts.Launcher = conn, r.subjects, launcher
	// Registered before the pipeline's Close, so it runs after it.
	t.Cleanup(func() {
		if r.pipe != nil {
			checkNoOrphans(t, r.pipe.Fleet)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.pipe, err = Start(ctx, opts, spec, r.runner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.pipe.Close(); err != nil && r.pipe.Err() == nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("%d workers ready in %v", len(r.pipe.Workers()), r.pipe.Startup().Round(time.Millisecond))
	if r.ep, err = router.Attach(conn, opts.Transport, transport.Run{Subjects: r.subjects, Stages: spec.Stages()}, r.runner); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.ep.Close() })
	return r
}

// checkNoOrphans fails t if any worker process of f still exists.
func checkNoOrphans(t testing.TB, f *fleet.Fleet) {
	t.Helper()
	for _, id := range f.Workers() {
		pid := f.PID(id.Name)
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker %s (pid %d) outlived its test: kill(pid, 0) = %v", id.Name, pid, err)
		}
	}
	if left := f.Leftovers(); len(left) > 0 {
		t.Errorf("left over: %v", left)
	}
}

func (r *rig) run(t testing.TB, n int) (*pipelines.Result, error) {
	t.Helper()
	if err := r.pipe.Err(); err != nil {
		t.Fatal(err)
	}
	return r.runner.Run(context.Background(), r.ep, n)
}

func TestParseAlloc(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Alloc
	}{
		{"1-4-1-1", Alloc{1, 4, 1, 1}},
		{"1,2,1,1", Alloc{1, 2, 1, 1}},
		{" 3 ", Alloc{3}},
		{"1 - 2", Alloc{1, 2}},
	} {
		got, err := ParseAlloc(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseAlloc(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if again, err := ParseAlloc(got.String()); err != nil || !slices.Equal(again, got) {
			t.Errorf("round trip of %v: %v, %v", got, again, err)
		}
	}
	for _, bad := range []string{"", "1-0-1-1", "1--1", "1-x-1", "-1", "1-4-1-1-", "1-300", "1-65-1-1", "64-64-64-64-1"} {
		if a, err := ParseAlloc(bad); err == nil {
			t.Errorf("ParseAlloc(%q) = %v, want an error", bad, a)
		}
	}
	if _, err := ParseAlloc("64-64-64-64"); err != nil {
		t.Errorf("64 workers a stage, 256 in all: %v", err)
	}
	if err := (Alloc{1, 4, 1}).Check(4); err == nil {
		t.Error("3-stage allocation accepted for 4 stages")
	}
	if s := DefaultAlloc().String(); s != "1-4-1-1" {
		t.Errorf("default allocation %q", s)
	}
	env := func(v string) pipelines.Getenv {
		return func(k string) string {
			if k == EnvAlloc {
				return v
			}
			return ""
		}
	}
	if a, err := AllocFromEnv(env("1-2-1-1"), DefaultAlloc()); err != nil || a.String() != "1-2-1-1" {
		t.Errorf("AllocFromEnv = %v, %v", a, err)
	}
	if _, err := AllocFromEnv(env("two"), DefaultAlloc()); err == nil || !strings.Contains(err.Error(), EnvAlloc) {
		t.Errorf("bad %s: %v", EnvAlloc, err)
	}
}

func TestBound(t *testing.T) {
	seed := pipelines.DefaultSpec()
	for _, tc := range []struct {
		alloc Alloc
		mode  worker.Mode
		conc  int
		want  float64
	}{
		{Alloc{1, 1, 1, 1}, worker.Sync, 0, 25},
		{Alloc{1, 2, 1, 1}, worker.Sync, 0, 50},
		{Alloc{1, 4, 1, 1}, worker.Sync, 0, 100},
		{Alloc{1, 8, 1, 1}, worker.Sync, 0, 100}, // S1, S3, S4 bind
		{Alloc{1, 1, 1, 1}, worker.Async, 2, 50},
	} {
		if got := Bound(seed, tc.alloc, tc.mode, tc.conc); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Bound(%v, %s x%d) = %v, want %v", tc.alloc, tc.mode, tc.conc, got, tc.want)
		}
	}
	cpu := seed
	cpu.Work = pipelines.CPU
	if got, cores := Bound(cpu, Alloc{1, 4, 1, 1}, worker.Sync, 0), Capacity(cpu, nil, "", 0).Cores; got > float64(cores)/0.07+1e-9 {
		t.Errorf("cpu bound %v exceeds %d cores / 70ms", got, cores)
	}
	if w := Window(seed, Alloc{1, 4, 1, 1}, worker.Sync, 0, 100); w <= pipelines.DefaultWindow(seed, 100) {
		t.Errorf("window %d leaves no room for random assignment", w)
	}
}

// recordsByWorker counts, per worker name, the completed messages whose
// stage records it stamped.
func recordsByWorker(res *pipelines.Result) map[string]uint64 {
	m := map[string]uint64{}
	for _, rec := range res.Records {
		if rec.Completed() {
			for _, s := range rec.Stages {
				m[s.Worker]++
			}
		}
	}
	return m
}

func TestExactlyOnce(t *testing.T) {
	alloc, err := AllocFromEnv(os.Getenv, DefaultAlloc())
	if err != nil {
		t.Fatal(err)
	}
	mode, err := worker.ModeFromEnv(os.Getenv, worker.Sync)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range slices.Compact([]worker.Mode{mode, worker.Async}) {
		t.Run("mode="+string(mode), func(t *testing.T) {
			benchkit.CheckLeaks(t)
			spec := testSpec()
			r := newRig(t, spec, Options{Alloc: alloc, Processes: fleet.Processes{Mode: mode}}, pipelines.RunConfig{Timeout: time.Minute})
			before, err := r.pipe.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			const n = 300
			res, err := r.run(t, n)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res.Summary())
			if res.Completed != n || len(res.Lost) != 0 || res.Duplicates != 0 || len(res.Violations) != 0 || res.Strays != 0 || res.Rejected != 0 {
				t.Fatalf("completed %d/%d, lost %v, duplicates %d, violations %v, strays %d, rejected %d",
					res.Completed, n, res.Lost, res.Duplicates, res.Violations, res.Strays, res.Rejected)
			}
			names := map[string]bool{}
			for _, id := range r.pipe.Workers() {
				names[id.Name] = true
			}
			for seq, rec := range res.Records {
				if rec.Seq != uint64(seq) || len(rec.Stages) != spec.Stages() {
					t.Fatalf("record %d: seq %d, %d stages", seq, rec.Seq, len(rec.Stages))
				}
				for i, s := range rec.Stages {
					if !names[s.Worker] || !strings.HasPrefix(s.Worker, "p4-"+pipelines.StageName(i)+"-w") {
						t.Fatalf("seq %d stage %s: worker %q is not one of the stage's", seq, pipelines.StageName(i), s.Worker)
					}
				}
			}
			// The workers' own counts agree with the records they stamped.
			after, err := r.pipe.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			handled := fleet.Handled(before, after)
			stamped := recordsByWorker(res)
			for _, id := range r.pipe.Workers() {
				if handled[id.Name] != stamped[id.Name] {
					t.Errorf("%s reports %d handled, stamped %d records", id.Name, handled[id.Name], stamped[id.Name])
				}
			}
			shares := fleet.Shares(r.pipe.Workers(), handled)
			t.Logf("balance:\n%s", fleet.FormatShares(shares))
			for _, s := range shares {
				if alloc[s.Stage] > 1 && s.Handled == 0 {
					t.Errorf("%s handled nothing", s.Name)
				}
			}
			final, err := r.pipe.Stop(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(final) != alloc.Total() {
				t.Errorf("%d stop replies, want %d", len(final), alloc.Total())
			}
			for _, s := range final {
				if !s.Stopped || s.Handled != handled[s.Name]+beforeCount(before, s.Name) {
					t.Errorf("stop reply %+v", s)
				}
			}
		})
	}
}

func beforeCount(ss []worker.Stats, name string) uint64 {
	for _, s := range ss {
		if s.Name == name {
			return s.Handled
		}
	}
	return 0
}

// runAsync starts a run of n messages and returns the channel its outcome
// comes on.
func (r *rig) runAsync(n int) <-chan outcome {
	done := make(chan outcome, 1)
	go func() {
		res, err := r.runner.Run(context.Background(), r.ep, n)
		done <- outcome{res, err}
	}()
	return done
}

type outcome struct {
	res *pipelines.Result
	err error
}

// wait waits, at most a minute, for a run's outcome.
func wait(t *testing.T, done <-chan outcome) (*pipelines.Result, error) {
	t.Helper()
	select {
	case o := <-done:
		if o.res == nil {
			t.Fatalf("no result: %v", o.err)
		}
		t.Logf("report:\n%s\nerror: %v", o.res.Report(), o.err)
		return o.res, o.err
	case <-time.After(time.Minute):
		t.Fatal("run did not end within a minute")
	}
	return nil, nil
}

// waitFor polls cond every 5 ms until it holds, failing t after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func incidentsOf(res *pipelines.Result, worker string, kind pipelines.IncidentKind) []pipelines.Incident {
	var out []pipelines.Incident
	for _, in := range res.Incidents {
		if in.Worker == worker && in.Kind == kind {
			out = append(out, in)
		}
	}
	return out
}

// TestKillS2WorkerMidRun kills (SIGKILL, from outside) an S2 worker while it
// holds messages: under the default policy the run goes on with the three
// others, names the dead worker, and reports lost exactly the messages that
// entered S2 and never left it.
func TestKillS2WorkerMidRun(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 400
	const lossTimeout = 1500 * time.Millisecond
	r := newRig(t, spec, Options{Alloc: Alloc{1, 4, 1, 1}}, pipelines.RunConfig{LossTimeout: lossTimeout, Timeout: time.Minute})
	sp := varianttest.NewSpy(t, r.srv.Conn, r.subjects, 1, spec.Stages())
	const victim = "p4-S2-w2"

	done := r.runAsync(n)
	waitFor(t, "a third of the messages", 30*time.Second, func() bool { return sp.Completions() >= n/3 })
	held, killedAt := sp.KillHolding(t, r.pipe.PID(victim), 30*time.Second)
	killed := pipelines.Stamp(killedAt)
	t.Logf("killed %s holding at least %v", victim, held)

	res, err := wait(t, done)
	if ferr := r.pipe.Err(); ferr == nil || !strings.Contains(ferr.Error(), victim) {
		t.Errorf("fleet Err() = %v, want the death of %s", ferr, victim)
	}
	died := incidentsOf(res, victim, pipelines.WorkerDied)
	if len(died) != 1 || !strings.Contains(died[0].Detail, "killed by signal killed") {
		t.Errorf("incidents %v, want %s's death with its exit status", res.Incidents, victim)
	}
	// Core NATS is at-most-once: what the victim held is lost, and the run
	// says exactly which messages those were.
	want := sp.Vanished()
	if !slices.Equal(res.Lost, want) {
		t.Errorf("run reports lost %v; messages that entered S2 and never left: %v", res.Lost, want)
	}
	for _, seq := range held {
		if !slices.Contains(res.Lost, seq) {
			t.Errorf("seq %d, held by the victim, is not reported lost", seq)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), victim+" died") {
		t.Errorf("run error %v, want one reporting lost messages and the death", err)
	}
	if res.EndedBy != "" || res.Completed+len(res.Lost) != n || res.Duplicates != 0 || len(res.Violations) != 0 || res.Late != 0 {
		t.Errorf("ended by %q, completed %d + lost %d of %d, duplicates %d, late %d, violations %v",
			res.EndedBy, res.Completed, len(res.Lost), n, res.Duplicates, res.Late, res.Violations)
	}
	// The other workers kept serving: messages sent after the kill came back,
	// none through the victim.
	later := 0
	for _, rec := range res.Records {
		if !rec.Completed() {
			continue
		}
		if rec.Stages[1].Worker == victim && rec.Stages[1].Finished > killed {
			t.Errorf("seq %d finished S2 on %s after it was killed", rec.Seq, victim)
		}
		if rec.Sent > killed {
			later++
		}
	}
	if later == 0 {
		t.Error("no message sent after the kill completed")
	}
	t.Logf("%d lost (%v), %d messages sent after the kill completed", len(res.Lost), res.Lost, later)
}

// TestStoppedWorker stops an S2 worker (SIGSTOP) for longer than the loss
// timeout, then resumes it: the fleet names it unresponsive while stopped
// and back after, and the messages it held come back late, not lost.
func TestStoppedWorker(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 3000
	const lossTimeout = time.Second
	opts := Options{Alloc: Alloc{1, 4, 1, 1}, Processes: fleet.Processes{Liveness: time.Second}}
	r := newRig(t, spec, opts, pipelines.RunConfig{LossTimeout: lossTimeout, Timeout: 2 * time.Minute})
	sp := varianttest.NewSpy(t, r.srv.Conn, r.subjects, 1, spec.Stages())
	const victim = "p4-S2-w3"
	pid := r.pipe.PID(victim)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) // before the fleet's Close

	done := r.runAsync(n)
	waitFor(t, "a tenth of the messages", 30*time.Second, func() bool { return sp.Completions() >= n/10 })
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitFor(t, victim+" named unresponsive", 30*time.Second, func() bool { return slices.Contains(r.pipe.Unresponsive(), victim) })
	t.Logf("named unresponsive %v after the stop", time.Since(stopped).Round(time.Millisecond))
	// Stopped past the loss timeout of the messages it got once stopped.
	waitFor(t, "a message stuck at the stopped worker past the loss timeout", 30*time.Second, func() bool {
		return time.Since(stopped) > 2*lossTimeout+varianttest.Stuck
	})
	if entered := sp.Entered(); entered > n*3/4 {
		t.Fatalf("%d of %d messages sent while %s was stopped: too few left to see its messages come back", entered, n, victim)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("resumed %s after %v", victim, time.Since(stopped).Round(time.Millisecond))

	res, err := wait(t, done)
	if len(res.Lost) != 0 || res.Completed != n || res.EndedBy != "" || len(res.Unaccounted) != 0 {
		t.Errorf("lost %v, completed %d of %d, ended by %q", res.Lost, res.Completed, n, res.EndedBy)
	}
	// Late means back after the loss timeout, and the stopped worker's
	// messages are among them. On a loaded machine another worker's
	// message can be late too, and another worker can miss a liveness
	// check: that is what the account is for, so it is logged, not failed.
	onVictim := 0
	for _, seq := range res.LateSeqs {
		rec := res.Records[seq]
		if took := time.Duration(rec.Received - rec.Sent); took <= lossTimeout {
			t.Errorf("late seq %d came back %v after its send, within the %v loss timeout", seq, took, lossTimeout)
		}
		if w := rec.Stages[1].Worker; w == victim {
			onVictim++
		} else {
			t.Logf("late seq %d passed S2 on %s, not the stopped %s (a loaded machine)", seq, w, victim)
		}
	}
	if onVictim == 0 {
		t.Errorf("no late message passed S2 on the stopped %s (late: %v)", victim, res.LateSeqs)
	}
	if len(incidentsOf(res, victim, pipelines.WorkerUnresponsive)) == 0 || len(incidentsOf(res, victim, pipelines.WorkerBack)) == 0 {
		t.Errorf("incidents %v, want %s unresponsive and back", res.Incidents, victim)
	}
	for _, in := range res.Incidents {
		switch {
		case in.Kind == pipelines.WorkerDied:
			t.Errorf("a worker died: %v", in)
		case in.Worker != victim:
			t.Logf("incident of a worker never stopped (a loaded machine): %v", in)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "late") || strings.Contains(err.Error(), "lost") {
		t.Errorf("error %v, want one reporting late messages and none lost", err)
	}
	if got := r.pipe.Unresponsive(); len(got) != 0 {
		t.Errorf("still unresponsive after the run: %v", got)
	}
}

// TestServerDies shuts the NATS server down mid-run: the run ends at once
// on the fault and reports, by seq, every message it sent and never got
// back; a stray envelope published before is counted and shown.
func TestServerDies(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	benchkit.CheckLeaks(t)
	spec := testSpec()
	const n = 2000
	// The harness's transport with a short reconnect bound: the server is
	// not coming back (its workers keep the default).
	opts := Options{Alloc: Alloc{1, 2, 1, 1}}
	opts.Transport = core.Transport{Reconnect: time.Second}
	r := newRig(t, spec, opts, pipelines.RunConfig{LossTimeout: 30 * time.Second, Timeout: time.Minute})
	if r.srv.External {
		t.Skip("the server is NATS_URL's: not ours to shut down")
	}
	sp := varianttest.NewSpy(t, r.srv.Conn, r.subjects, 1, spec.Stages())
	done := r.runAsync(n)
	waitFor(t, "a tenth of the messages", 30*time.Second, func() bool { return sp.Completions() >= n/10 })
	stray, _ := (&pipelines.Envelope{ID: "strayid000000000000000", Seq: 7, Sent: 1,
		Stages: []pipelines.StageRecord{{Stage: 1}, {Stage: 2}, {Stage: 3}, {Stage: 4}}}).Append(nil)
	if err := r.ep.Conn().Publish(r.subjects.Done(), stray); err != nil {
		t.Fatal(err)
	}
	if err := r.ep.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stray at the sink", 30*time.Second, func() bool { return sp.Completions() >= n/10+1 })
	r.srv.Shutdown()
	res, err := wait(t, done)
	if err == nil || !strings.Contains(res.EndedBy, "fault") {
		t.Fatalf("ended by %q, error %v; want a fault", res.EndedBy, err)
	}
	if len(res.Unaccounted) == 0 || res.Completed+len(res.Lost)+len(res.Unaccounted)+res.Unsent != n {
		t.Errorf("completed %d + lost %d + unaccounted %d + unsent %d != %d", res.Completed, len(res.Lost), len(res.Unaccounted), res.Unsent, n)
	}
	for _, seq := range res.Unaccounted {
		if res.Records[seq].Completed() || res.Records[seq].Intended == 0 {
			t.Fatalf("unaccounted seq %d: completed or never sent", seq)
		}
	}
	rep := res.Report()
	for _, want := range []string{"unaccounted at the end", fmt.Sprintf("seq %d", res.Unaccounted[0]), "strays 1,", "strayid000000000000000/7"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report does not say %q", want)
		}
	}
	if strings.Contains(res.Summary(), "lost 0,") {
		t.Errorf("summary says lost 0 of a run that ended on a fault: %s", res.Summary())
	}
}

// TestCrashingWorker: a worker that exits mid-run fails the run at once
// under the Fail policy, and under the default policy when its stage has no
// other worker, naming the worker, its exit status and stderr, and listing
// the messages left unaccounted for.
func TestCrashingWorker(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	for _, tc := range []struct {
		name   string
		alloc  Alloc
		policy fleet.ExitPolicy
		says   string
	}{
		{"policy=fail", Alloc{1, 2, 1, 1}, fleet.Fail, ""},
		{"last-of-stage", Alloc{1, 1, 1, 1}, "", "stage S2 has no worker left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			benchkit.CheckLeaks(t)
			spec := testSpec()
			const crasher = "p4-S2-w1"
			opts := Options{Alloc: tc.alloc, Processes: fleet.Processes{OnWorkerExit: tc.policy, Env: func(id fleet.WorkerID) []string {
				if id.Name == crasher {
					return []string{worker.EnvCrash + "=20:3"}
				}
				return nil
			}}}
			r := newRig(t, spec, opts, pipelines.RunConfig{LossTimeout: 30 * time.Second, Timeout: time.Minute})
			start := time.Now()
			res, err := r.runner.Run(context.Background(), r.ep, 1000)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("run succeeded: %s", res.Summary())
			}
			t.Logf("run failed after %v: %v", took, err)
			for _, want := range []string{crasher, "exit status 3", "crashing on purpose", "unaccounted at the end", tc.says} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q", want)
				}
			}
			if took > 20*time.Second {
				t.Errorf("run took %v to fail; the loss timeout is 30s", took)
			}
			if len(res.Unaccounted) == 0 || !strings.Contains(res.EndedBy, crasher) {
				t.Errorf("unaccounted %v, ended by %q", res.Unaccounted, res.EndedBy)
			}
			// The fleet keeps the fault, naming the worker, for callers that check
			// it before a later run (fleetbench refuses to run on a faulted fleet).
			if err := r.pipe.Err(); err == nil || !strings.Contains(err.Error(), crasher) {
				t.Errorf("after a worker crashed, Err() = %v, want an error naming %s", err, crasher)
			}
		})
	}
}

func TestWorkerFailingAtStartup(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	launcher, err := fleet.Self()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Start(context.Background(), Options{
		Alloc: Alloc{1, 2, 1, 1},
		Processes: fleet.Processes{
			NATS: srv.Conn, Subjects: bus.NewSubjects(), Launcher: launcher,
			Env: func(id fleet.WorkerID) []string {
				if id.Name == "p4-S2-w2" {
					return []string{worker.EnvCrash + "=nonsense"}
				}
				return nil
			},
		},
	}, testSpec(), nil)
	if err == nil {
		t.Fatal("start succeeded")
	}
	for _, want := range []string{"p4-S2-w2", "before it was ready", "exit status 2", worker.EnvCrash} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("start took %v to fail", took)
	}
}

// BenchmarkP4 sweeps allocations (all ones, then the bottleneck stage x2
// and x4: 1-1-1-1, 1-2-1-1, 1-4-1-1 for the seed durations), worker modes,
// work models and transports, the transport last so that a pattern for the
// rest lists the transports side by side:
// BenchmarkP4/alloc=1-4-1-1/mode=sync/work=sleep/transport=js.
// NATSPIPE_ALLOC and NATSPIPE_MODE replace their sweeps. The transports are
// transports.FromEnv's (core unless NATSPIPE_TRANSPORT says otherwise),
// except for the sweep's last allocation (or NATSPIPE_ALLOC's) in sync mode
// on sleep work, where the queue group's random dispatch against a
// work-conserving pull is the result: there they are transports.Compared's
// (core and js by default). Cpu work runs only at the sweep's last
// allocation (on a few cores its throughput is the machine's, whatever the
// allocation), and async mode only at the first and the last, unless
// NATSPIPE_SWEEP=full or NATSPIPE_ALLOC is set.
func BenchmarkP4(b *testing.B) {
	spec := benchkit.Spec(b, pipelines.DefaultSpec())
	var allocs []Alloc
	if v := os.Getenv(EnvAlloc); v != "" {
		a, err := AllocFromEnv(os.Getenv, nil)
		if err != nil {
			b.Fatal(err)
		}
		allocs = []Alloc{a}
	} else {
		for _, k := range []int{1, 2, 4} {
			a := Ones(spec.Stages())
			a[spec.Bottleneck()] = k
			allocs = append(allocs, a)
		}
	}
	modes := []worker.Mode{worker.Sync, worker.Async}
	if m, err := worker.ModeFromEnv(os.Getenv, ""); err != nil {
		b.Fatal(err)
	} else if m != "" {
		modes = []worker.Mode{m}
	}
	conc := benchkit.Int(b, worker.EnvConcurrency, 0)
	full := benchkit.Full(b) || len(allocs) == 1
	trs, err := transports.FromEnv(nil)
	if err != nil {
		b.Fatal(err)
	}
	compared, err := transports.Compared(nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := natstest.Start(b)
	for i, alloc := range allocs {
		if err := alloc.Check(spec.Stages()); err != nil {
			b.Fatalf("%s: %v", EnvAlloc, err)
		}
		for _, mode := range modes {
			// Async at the middle allocation tells nothing the others do not.
			if mode == worker.Async && i > 0 && i < len(allocs)-1 && !full {
				continue
			}
			for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
				if work == pipelines.CPU && i < len(allocs)-1 && !full {
					continue
				}
				ts := trs
				if i == len(allocs)-1 && mode == worker.Sync && work == pipelines.Sleep {
					ts = compared
				}
				for _, tr := range ts {
					s := spec
					s.Work = work
					name := fmt.Sprintf("alloc=%s/mode=%s/work=%s/transport=%s", alloc, mode, work, tr.Name())
					fleetbench.Run(b, srv.Conn, name, benchConfig(s, Options{Alloc: alloc, Processes: fleet.Processes{Mode: mode, Concurrency: conc, Transport: tr}}))
				}
			}
		}
	}
}
