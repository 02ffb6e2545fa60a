package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// startWorkers starts alloc[i] worker processes for each stage i of spec
// the way a user or a Compose stack does, not through a fleet: this test
// binary as natspipe-worker (worker.Dispatch), the connection in NATS_URL,
// the flags given by hand, the workers naming themselves. Extra flags go
// to every worker. It returns once every worker has announced itself, as
// a stack's workers have before a harness comes (bounded: a worker missing
// after 30 s fails the test, named). The group is closed (every process
// killed) at the test's end.
func startWorkers(t *testing.T, srv *natstest.Server, prefix string, spec pipelines.Spec, alloc []int, extra ...string) *procs.Group {
	t.Helper()
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(srv.Conn, "announcements", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ready, err := nc.SubscribeSync(worker.ReadySubject(bus.Subjects{Prefix: prefix}))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	g := procs.NewGroup(func(e *procs.Exit) { t.Errorf("worker %s exited: %v", e.Name, e) })
	t.Cleanup(func() { _ = g.Close() })
	env := childEnv(append(append([]string(nil), self.Env...), srv.Conn.Environ()...))
	waiting := map[string]bool{}
	for i, w := range alloc {
		for j := range w {
			name := fmt.Sprintf("byhand-%s-%d", pipelines.StageName(i), j+1)
			args := append([]string{"-stage", pipelines.StageName(i), "-prefix", prefix,
				"-durations", pipelines.DurationsString(spec.Durations), "-name", name}, extra...)
			if _, err := g.Start(procs.Spec{Name: name, Path: self.Path, Args: args, Env: env, Lifeline: true}); err != nil {
				t.Fatal(err)
			}
			waiting[name] = true
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(waiting) > 0 {
		m, err := ready.NextMsg(time.Until(deadline))
		if err != nil {
			var tails []string
			for _, p := range g.Procs() {
				tails = append(tails, p.Tail())
			}
			t.Fatalf("workers %v not ready after 30s: %v; stderr: %q", waiting, err, tails)
		}
		var s worker.Stats
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Fatal(err)
		}
		delete(waiting, s.Name)
	}
	return g
}

// TestAttachRuns: workers started by hand, before the harness listens,
// are found by Attach, serve a run exactly once over core NATS with no
// fault, report their shares, and are still running after the fleet's
// Close; a second Attach with StopAttached stops them (they exit 0).
func TestAttachRuns(t *testing.T) {
	benchrun.SkipTest(t, "attach (worker processes)")
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	alloc := []int{1, 2, 1, 1}
	subjects := bus.NewSubjects()
	g := startWorkers(t, srv, subjects.Prefix, spec, alloc)

	const n = 200
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p4", Window: 8, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Spec: spec, Alloc: alloc, Variant: "p4",
		Processes: Processes{NATS: srv.Conn, Subjects: subjects, Attach: true, ReadyTimeout: 30 * time.Second}}
	f, err := Start(context.Background(), cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	ids := f.Workers()
	want := []string{"byhand-S1-1", "byhand-S2-1", "byhand-S2-2", "byhand-S3-1", "byhand-S4-1"}
	if len(ids) != len(want) {
		t.Fatalf("attached to %v, want %v", ids, want)
	}
	for k, id := range ids {
		if id.Name != want[k] || (id.Name == "byhand-S2-2" && (id.Stage != 1 || id.Index != 1)) {
			t.Errorf("worker %d: %+v, want %s", k, id, want[k])
		}
	}
	before, err := f.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := runAttached(t, srv, nil, subjects, spec, r, n)
	if res.Completed != n || res.Duplicates != 0 || len(res.Lost) != 0 || len(res.Incidents) != 0 {
		t.Errorf("run: %s", res.Report())
	}
	after, err := f.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	perStage := map[int]uint64{}
	for _, s := range Shares(ids, Handled(before, after)) {
		perStage[s.Stage] += s.Handled
	}
	for i := range alloc {
		if perStage[i] != n {
			t.Errorf("stage %s handled %d, want %d", pipelines.StageName(i), perStage[i], n)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Procs() {
		if e := p.Exit(); e != nil {
			t.Errorf("worker %s exited after the attached fleet's Close: %v", e.Name, e)
		}
	}

	// Attach again, asked to stop them.
	cfg.StopAttached = true
	f, err = Attach(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeStopping(t, f, g)
}

// TestAttachTooFewWorkers: with a stage short of the allocation's count,
// Attach fails within its bound naming the stage, its count and the
// workers it has; a stage with too many, and workers whose stage times are
// not the run's, fail too, each naming what is wrong.
func TestAttachTooFewWorkers(t *testing.T) {
	benchrun.SkipTest(t, "attach (worker processes)")
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec()
	subjects := bus.NewSubjects()
	startWorkers(t, srv, subjects.Prefix, spec, []int{1, 2, 1, 1})
	attach := func(alloc []int, spec pipelines.Spec) error {
		t.Helper()
		f, err := Attach(context.Background(), Config{Spec: spec, Alloc: alloc, Variant: "p4",
			Processes: Processes{NATS: srv.Conn, Subjects: subjects, ReadyTimeout: 2 * time.Second}}, nil)
		if err == nil {
			_ = f.Close()
		}
		return err
	}

	start := time.Now()
	err := attach([]int{1, 3, 1, 1}, spec)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v with a bound of 2s", took)
	}
	wantErr(t, err, "attach to the workers of "+subjects.Prefix, "5 of 6 workers found after 2s",
		"stage S2 has 2 of 3 workers (byhand-S2-1, byhand-S2-2)")
	if err != nil && strings.Contains(err.Error(), "stage S1") {
		t.Errorf("names a stage that has its workers: %v", err)
	}

	wantErr(t, attach([]int{1, 1, 1, 1}, spec), "more workers than the allocation 1-1-1-1: stage S2 has 2 of 1 workers (byhand-S2-1, byhand-S2-2)")

	slower := spec
	slower.Durations = []time.Duration{2 * time.Millisecond, 9 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}
	wantErr(t, attach([]int{1, 2, 1, 1}, slower), "runs durations 2ms,8ms,2ms,2ms, this run 2ms,9ms,2ms,2ms")
}

// runAttached sends n messages through the attached workers of subjects
// over tr (nil: core NATS) with r, and returns the result; a run error
// fails t with the run's report.
func runAttached(t *testing.T, srv *natstest.Server, tr transport.Transport, subjects bus.Subjects, spec pipelines.Spec, r *pipelines.Runner, n int) *pipelines.Result {
	t.Helper()
	ep, err := router.Attach(srv.Conn, tr, transport.Run{Subjects: subjects, Stages: spec.Stages()}, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), ep, n)
	_ = ep.Close()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, res.Report())
	}
	return res
}

// closeStopping closes f, an attached fleet told to stop its workers, and
// checks that every worker of g exits cleanly (within 30 s).
func closeStopping(t *testing.T, f *Fleet, g *procs.Group) {
	t.Helper()
	for _, p := range g.Procs() {
		p.Expect()
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range g.Procs() {
		if e, err := p.Wait(ctx); err != nil || !e.Success() {
			t.Errorf("worker after a stop: %v, %v", e, err)
		}
	}
}

func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// TestAttachJetStream: JetStream workers started before any harness find
// their consumers missing, set the run up themselves and announce; Attach
// sets it up again with each stage's concurrency, and the run is served
// exactly once. With StopAttached, Close stops the workers and removes the
// run's stream.
func TestAttachJetStream(t *testing.T) {
	benchrun.SkipTest(t, "attach (worker processes)")
	benchkit.CheckLeaks(t)
	srv := natstest.StartJetStream(t)
	spec := testSpec()
	alloc := []int{1, 2, 1, 1}
	subjects := bus.NewSubjects()
	g := startWorkers(t, srv, subjects.Prefix, spec, alloc, "-transport", js.Name, "-log-level", "info", "-log-format", "text")
	tr := js.Transport{}

	const n = 100
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p4", Window: 8, Timeout: time.Minute, AtLeastOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Attach(context.Background(), Config{Spec: spec, Alloc: alloc, Variant: "p4",
		Processes: Processes{NATS: srv.Conn, Subjects: subjects, Transport: tr, StopAttached: true, ReadyTimeout: 30 * time.Second}}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	setUp := 0
	for _, p := range g.Procs() {
		if strings.Contains(p.Tail(), `msg="set the run up"`) && strings.Contains(p.Tail(), "transport=js") {
			setUp++
		}
	}
	if setUp == 0 {
		var tails []string
		for _, p := range g.Procs() {
			tails = append(tails, p.Tail())
		}
		t.Errorf("no worker says it set the run up, yet none had: %q", tails)
	}
	res := runAttached(t, srv, tr, subjects, spec, r, n)
	if res.Completed != n || len(res.Lost) != 0 || len(res.Incidents) != 0 {
		t.Errorf("run: %s", res.Report())
	}
	closeStopping(t, f, g)
	nc, err := bus.Connect(srv.Conn, "check", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	jsc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := jsc.Stream(ctx, js.StreamName(subjects)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the run's stream after a stopping Close: %v, want it removed", err)
	}
}
