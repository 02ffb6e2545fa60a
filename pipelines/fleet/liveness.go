package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// ExitPolicy is what a fleet does when one of its workers exits without
// being asked to (a crash, a kill from outside).
type ExitPolicy string

const (
	// Continue (the default) reports the death as an incident (name, exit
	// status, stderr tail) and lets the run go on with the stage's other
	// workers; what the dead worker held is reported lost, by seq, once
	// the loss timeout has passed. A stage left with no worker fails the
	// run at once.
	Continue ExitPolicy = "continue"
	// Fail fails the run at once (Sink.Fault), naming the worker; the run
	// reports the messages it had not accounted for by then.
	Fail ExitPolicy = "fail"
)

// ParseExitPolicy returns the policy named s.
func ParseExitPolicy(s string) (ExitPolicy, error) {
	switch ExitPolicy(s) {
	case Continue, Fail:
		return ExitPolicy(s), nil
	}
	return "", fmt.Errorf("worker exit policy %q: want %q or %q", s, Continue, Fail)
}

// DefaultLiveness is how long a worker may leave liveness requests
// unanswered, or hold messages without handing any on, before the fleet
// reports it unresponsive (or stuck). The fleet asks every Liveness/4, so a
// worker is named within 1.25 x Liveness of its last answer.
const DefaultLiveness = 2 * time.Second

// liveness is what the fleet knows of one worker's health.
type liveness struct {
	answered   time.Time // last answer
	handled    uint64
	held       int       // at the last answer; -1 before any
	progressed time.Time // last answer with progress, or holding nothing
	spell      pipelines.IncidentKind
	since      time.Time // the spell's start: the last answer, or progress
}

// livenessTimeout is the fleet's liveness timeout; 0 when checks are off.
func (f *Fleet) livenessTimeout() time.Duration {
	switch {
	case f.cfg.Liveness < 0:
		return 0
	case f.cfg.Liveness == 0:
		return DefaultLiveness
	}
	return f.cfg.Liveness
}

// stuckAfter is how long a worker of stage may hold messages without
// handing one on before it is reported stuck: the liveness timeout, or
// three of the stage's steps when they are longer.
func (f *Fleet) stuckAfter(stage int) time.Duration {
	step := f.cfg.Spec.Durations[stage]
	if stage < len(f.cfg.Spec.Slowdown) {
		step += f.cfg.Spec.Slowdown[stage]
	}
	return max(f.livenessTimeout(), 3*step)
}

// startLiveness starts the liveness checks: every timeout/4 a request on
// worker.LiveSubject, which every worker answers; a worker silent for the timeout
// is reported unresponsive, one that holds messages and hands none on is
// reported stuck, and either is reported back when it answers or hands a
// message on again. Reports go to the sink, if it takes incidents.
func (f *Fleet) startLiveness() error {
	timeout := f.livenessTimeout()
	if timeout == 0 {
		return nil
	}
	now := time.Now()
	f.live = map[string]*liveness{}
	for _, id := range f.ids {
		f.live[id.Name] = &liveness{answered: now, held: -1, progressed: now}
	}
	inbox := f.nc.NewRespInbox()
	sub, err := f.nc.Subscribe(inbox, func(m *nats.Msg) {
		var l worker.Liveness
		if json.Unmarshal(m.Data, &l) == nil {
			f.answered(l, time.Now())
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to liveness answers: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	f.stopLive = func() {
		cancel()
		<-done
		_ = sub.Unsubscribe()
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(max(timeout/4, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if !f.nc.IsConnected() {
				// Nobody's answers can come: judge no one. The lost
				// connection itself is a fault of the run.
				f.mu.Lock()
				for _, l := range f.live {
					l.answered, l.progressed = time.Now(), time.Now()
				}
				f.mu.Unlock()
				continue
			}
			_ = f.nc.PublishRequest(worker.LiveSubject(f.cfg.Subjects), inbox, nil)
			f.checkLiveness(time.Now(), timeout)
		}
	}()
	return nil
}

// answered takes a worker's liveness answer.
func (f *Fleet) answered(a worker.Liveness, now time.Time) {
	f.mu.Lock()
	l, ok := f.live[a.Name]
	if !ok {
		f.mu.Unlock()
		return
	}
	var back *pipelines.Incident
	progress := a.Handled != l.handled || a.Held == 0
	switch {
	case l.spell == pipelines.WorkerUnresponsive,
		l.spell == pipelines.WorkerStuck && progress:
		back = &pipelines.Incident{At: now, Worker: a.Name, Kind: pipelines.WorkerBack, For: now.Sub(l.since), Held: a.Held}
		l.spell = ""
	}
	l.answered, l.handled, l.held = now, a.Handled, a.Held
	if progress || back != nil {
		l.progressed = now
	}
	f.mu.Unlock()
	if back != nil {
		f.incident(*back)
	}
}

// checkLiveness reports the workers that have been silent, or held
// messages without progress, for too long.
func (f *Fleet) checkLiveness(now time.Time, timeout time.Duration) {
	var found []pipelines.Incident
	f.mu.Lock()
	for _, id := range f.ids {
		l := f.live[id.Name]
		if l.spell != "" || f.exited(id.Name) {
			continue
		}
		switch {
		case now.Sub(l.answered) >= timeout:
			l.spell, l.since = pipelines.WorkerUnresponsive, l.answered
		case l.held > 0 && now.Sub(l.progressed) >= f.stuckAfter(id.Stage):
			l.spell, l.since = pipelines.WorkerStuck, l.progressed
		default:
			continue
		}
		found = append(found, pipelines.Incident{At: now, Worker: id.Name, Kind: l.spell, For: now.Sub(l.since), Held: l.held})
	}
	f.mu.Unlock()
	for _, in := range found {
		f.incident(in)
	}
}

// haltLiveness stops the liveness checks, once; the workers are about to be
// stopped or killed.
func (f *Fleet) haltLiveness() {
	f.haltOnce.Do(func() {
		if f.stopLive != nil {
			f.stopLive()
		}
	})
}

// incident reports in to the sink, if it takes incidents.
func (f *Fleet) incident(in pipelines.Incident) {
	if f.incidents != nil {
		f.incidents.Incident(in)
	}
}

// Unresponsive lists, in worker order, the workers currently reported
// unresponsive or stuck by the liveness checks.
func (f *Fleet) Unresponsive() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, id := range f.ids {
		if l := f.live[id.Name]; l != nil && l.spell != "" {
			out = append(out, id.Name)
		}
	}
	return slices.Clip(out)
}

// held is what the named worker held at its last liveness answer; -1 when
// unknown.
func (f *Fleet) held(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.live[name]; l != nil {
		return l.held
	}
	return -1
}
