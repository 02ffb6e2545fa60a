package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/worker"
)

const (
	// askEvery is how often Attach asks for the workers while it waits
	// for the allocation's count.
	askEvery = 250 * time.Millisecond
	// settle is how long Attach goes on listening once every stage has its
	// count, so that a worker too many is seen.
	settle = 500 * time.Millisecond
)

// Attach is Start for workers that something else started and keeps: a
// Compose stack's containers, workers started by hand on other machines
// (natspipe-worker with the run's -prefix). They announced themselves
// before the harness listened, so Attach asks: it sends stats requests on
// the prefix's control subject every quarter second and collects the
// replies (and any announcement) until every stage i has cfg.Alloc[i]
// workers, within cfg.ReadyTimeout; then it listens a little longer, and
// a stage with more workers than its allocation is an error too (they
// would take messages the bound does not count). Each worker's reported
// stage times, work model, mode, concurrency and transport must be the
// harness's (cfg.Spec, cfg.Mode, cfg.Concurrency, cfg.Transport): a
// worker's stage time comes from its own flags or environment, and a
// mismatch is an error naming the worker and both values.
//
// The transport's run is set up before the wait, with each stage's
// concurrency from cfg.Alloc, as Start does (workers that found it
// missing set it up without: see worker.Run), so the harness's transport
// settings win: a JetStream stream the workers created with one replica
// gets the harness's js.Options.Replicas.
//
// The workers are named as they name themselves (natspipe-worker -name,
// or <stage>-<host>-<pid>), in stage order and by name within a stage.
// The fleet watches their liveness as Start's does; an attached worker
// that dies (a killed container) is not seen to exit, so it is named
// unresponsive, and what it held is lost (core) or redelivered. Close
// leaves the workers running, and the transport's run in place, unless
// cfg.StopAttached, when it stops them stage by stage as a started fleet's
// Close does (their processes are not waited for: they are not the
// fleet's).
func Attach(ctx context.Context, cfg Config, sink pipelines.Sink) (*Fleet, error) {
	if err := cfg.fill(false); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	begin := time.Now()
	f := newFleet(cfg, sink)
	f.attached = true
	want := 0
	for _, w := range cfg.Alloc {
		want += w
	}
	ready, unsubscribe, err := f.connect(ctx, sink, 4*want+64)
	if err != nil {
		return nil, err
	}
	defer unsubscribe()
	fail := func(err error) (*Fleet, error) {
		f.haltLiveness()
		f.release()
		f.nc.Close()
		return nil, fmt.Errorf("fleet %s: attach to the workers of %s: %w", cfg.Variant, cfg.Subjects.Prefix, err)
	}
	found, err := f.discover(ctx, ready)
	if err != nil {
		return fail(err)
	}
	for _, s := range found {
		f.ids = append(f.ids, WorkerID{Stage: s.Stage - 1, Name: s.Name})
	}
	slices.SortFunc(f.ids, func(a, b WorkerID) int {
		return cmp.Or(cmp.Compare(a.Stage, b.Stage), strings.Compare(a.Name, b.Name))
	})
	for k := range f.ids {
		if k > 0 && f.ids[k-1].Stage == f.ids[k].Stage {
			f.ids[k].Index = f.ids[k-1].Index + 1
		}
	}
	f.startup = time.Since(begin)
	if err := f.startLiveness(); err != nil {
		return fail(err)
	}
	return f, nil
}

// discover collects the workers of the fleet's prefix: see Attach.
func (f *Fleet) discover(ctx context.Context, ready <-chan worker.Stats) (map[string]worker.Stats, error) {
	cfg := f.cfg
	replies := make(chan worker.Stats, 1024)
	inbox := f.nc.NewRespInbox()
	sub, err := f.nc.Subscribe(inbox, func(m *nats.Msg) {
		var s worker.Stats
		if json.Unmarshal(m.Data, &s) == nil {
			select {
			case replies <- s:
			default:
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to stats replies: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ask := func() error {
		if err := f.nc.PublishRequest(worker.StatsSubject(cfg.Subjects), inbox, nil); err != nil {
			return fmt.Errorf("ask for the workers on %s: %w", worker.StatsSubject(cfg.Subjects), err)
		}
		return nil
	}
	if err := ask(); err != nil {
		return nil, err
	}
	found := map[string]worker.Stats{}
	take := func(s worker.Stats) error {
		if err := f.check(s); err != nil {
			return err
		}
		found[s.Name] = s
		return nil
	}
	deadline := time.NewTimer(cfg.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(askEvery)
	defer tick.Stop()
	var settled <-chan time.Time
	for {
		select {
		case s := <-replies:
			if err := take(s); err != nil {
				return nil, err
			}
		case s := <-ready:
			if err := take(s); err != nil {
				return nil, err
			}
		case <-tick.C:
			if err := ask(); err != nil {
				return nil, err
			}
		case <-settled:
			if over := f.count(found, func(have, want int) bool { return have > want }); over != "" {
				return nil, fmt.Errorf("more workers than the allocation %s: %s (give -alloc the stack's counts, or scale the stack)", formatAlloc(cfg.Alloc), over)
			}
			return found, nil
		case <-deadline.C:
			return nil, fmt.Errorf("%d of %d workers found after %v: %s", len(found), sum(cfg.Alloc), cfg.ReadyTimeout,
				f.count(found, func(have, want int) bool { return have < want }))
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the workers: %w", ctx.Err())
		}
		if settled == nil && f.count(found, func(have, want int) bool { return have < want }) == "" {
			settled = time.After(settle)
			if err := ask(); err != nil {
				return nil, err
			}
		}
	}
}

// count describes the stages whose count of found workers is off by the
// allocation (off(have, want)), with the workers they have: "stage S2 has 3
// of 4 workers (a, b, c); stage S3 has 0 of 1". "" when none is.
func (f *Fleet) count(found map[string]worker.Stats, off func(have, want int) bool) string {
	names := make([][]string, len(f.cfg.Alloc))
	for _, s := range found {
		names[s.Stage-1] = append(names[s.Stage-1], s.Name)
	}
	var parts []string
	for i, want := range f.cfg.Alloc {
		if !off(len(names[i]), want) {
			continue
		}
		slices.Sort(names[i])
		part := fmt.Sprintf("stage %s has %d of %d workers", pipelines.StageName(i), len(names[i]), want)
		if len(names[i]) > 0 {
			part += " (" + strings.Join(names[i], ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// check compares what a worker says it runs with the fleet's run.
func (f *Fleet) check(s worker.Stats) error {
	cfg := f.cfg
	n := cfg.Spec.Stages()
	if s.Stage < 1 || s.Stage > n {
		return fmt.Errorf("worker %s serves stage %d, the pipeline has %d stages", s.Name, s.Stage, n)
	}
	stage := pipelines.StageName(s.Stage - 1)
	mismatch := func(what, theirs, ours, how string) error {
		return fmt.Errorf("worker %s (stage %s) runs %s %s, this run %s: give the workers' %s (%s)", s.Name, stage, what, theirs, ours, what, how)
	}
	// A worker that does not say (an older one) is taken on trust.
	if ours := pipelines.DurationsString(cfg.Spec.Durations); s.Durations != "" && s.Durations != ours {
		return mismatch("durations", s.Durations, ours, "-durations; the stack's NATSPIPE_DURATIONS")
	}
	if s.Work != "" && s.Work != string(cfg.Spec.Work) {
		return mismatch("work", s.Work, string(cfg.Spec.Work), "-work; the stack's NATSPIPE_WORK")
	}
	if ours := transports.OrDefault(cfg.Transport).Name(); s.Transport != "" && s.Transport != ours {
		return mismatch("transport", s.Transport, ours, "-transport; the stack's NATSPIPE_TRANSPORT")
	}
	if s.Mode != "" && s.Mode != cfg.Mode {
		return mismatch("mode", string(s.Mode), string(cfg.Mode), "-mode")
	}
	if per := (worker.Config{Mode: cfg.Mode, Concurrency: cfg.Concurrency}).Concurrent(); s.Concurrency != 0 && s.Concurrency != per {
		return mismatch("concurrency", fmt.Sprint(s.Concurrency), fmt.Sprint(per), "-concurrency")
	}
	return nil
}

// silent reports whether the named worker is in a spell of silence (the
// liveness checks named it unresponsive and it has not answered since).
func (f *Fleet) silent(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.live[name]
	return l != nil && l.spell == pipelines.WorkerUnresponsive
}

// release closes the fleet's transport connection without tearing the
// run down: the attached workers go on consuming from it.
func (f *Fleet) release() {
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// formatAlloc writes an allocation as on the command line: "1-4-1-1".
func formatAlloc(a []int) string {
	parts := make([]string, len(a))
	for i, w := range a {
		parts[i] = fmt.Sprint(w)
	}
	return strings.Join(parts, "-")
}
