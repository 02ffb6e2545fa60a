package pipelines

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natspipe/natspipe/internal/benchrun"
)

// scriptedPipeline is a one-stage pipeline with no messaging: it runs the
// stage on each message as it is sent and hands it to the sink at once,
// except where its script says otherwise (drop, hold, duplicate, fault).
type scriptedPipeline struct {
	t    *testing.T
	sink Sink
	step Step
	// on, when set, is called with each message's seq and encoded result
	// after its stage; it returns whether to deliver it now.
	on func(seq uint64, msg []byte) bool
}

func (p *scriptedPipeline) Send(ctx context.Context, msg []byte) error {
	var env Envelope
	out, err := p.step.Process(ctx, msg, time.Now(), &env, nil)
	if err != nil {
		p.t.Errorf("stage: %v", err)
		return err
	}
	if p.on == nil || p.on(env.Seq, out) {
		p.sink.Complete(out, time.Now())
	}
	return nil
}

func scriptedRunner(t *testing.T, loss time.Duration) (*Runner, *scriptedPipeline) {
	t.Helper()
	spec := Spec{Durations: []time.Duration{0}, Work: Sleep, PayloadSize: 8}
	r, err := NewRunner(RunConfig{Spec: spec, Variant: "test", Window: 4, LossTimeout: loss, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptedPipeline{t: t, sink: r, step: StepsFor(spec, func(int) string { return "w1" })[0]}
	return r, p
}

// TestAccounting checks that lost, late, duplicate and stray messages are
// each reported by seq (or correlation ID), and that a message declared lost
// that comes back moves from Lost to Late.
func TestAccounting(t *testing.T) {
	const loss = 100 * time.Millisecond
	r, p := scriptedRunner(t, loss)
	var held []byte
	p.on = func(seq uint64, msg []byte) bool {
		switch seq {
		case 2: // late: held, delivered after its loss timeout
			held = msg
			return false
		case 4: // lost
			return false
		case 7: // duplicated
			p.sink.Complete(msg, time.Now())
		case 20:
			// Deliver seq 20, give the loss detector ten loss timeouts to
			// declare seq 2 lost, then deliver it, with a stray envelope.
			p.sink.Complete(msg, time.Now())
			time.Sleep(10 * loss)
			p.sink.Complete(held, time.Now())
			stray, _ := (&Envelope{ID: "strayid000000000000000", Seq: 3, Stages: []StageRecord{{Stage: 1}}}).Append(nil)
			p.sink.Complete(stray, time.Now())
			return false
		}
		return true
	}
	const n = 30
	res, err := r.Run(context.Background(), p, n)
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	t.Logf("report:\n%s", res.Report())
	if !slices.Equal(res.Lost, []uint64{4}) {
		t.Errorf("lost %v, want [4]", res.Lost)
	}
	if res.Late != 1 || !slices.Equal(res.LateSeqs, []uint64{2}) {
		t.Errorf("late %d %v, want seq 2", res.Late, res.LateSeqs)
	}
	if res.Duplicates != 1 || !slices.Equal(res.DuplicateSeqs, []uint64{7}) {
		t.Errorf("duplicates %d %v, want seq 7", res.Duplicates, res.DuplicateSeqs)
	}
	if res.Strays != 1 || len(res.StrayList) != 1 || res.StrayList[0].ID != "strayid000000000000000" || res.StrayList[0].Seq != 3 {
		t.Errorf("strays %d %v, want the stray envelope", res.Strays, res.StrayList)
	}
	if res.Completed != n-1 || len(res.Unaccounted) != 0 || res.Unsent != 0 || res.EndedBy != "" {
		t.Errorf("completed %d of %d, unaccounted %v, unsent %d, ended by %q", res.Completed, n, res.Unaccounted, res.Unsent, res.EndedBy)
	}
	if !res.Records[2].Completed() || len(res.Records[2].Stages) != 1 {
		t.Errorf("late seq 2's record not filled in: %+v", res.Records[2])
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"1 of 30 messages lost", "seq 4", "1 message late", "seq 2", "1 duplicate completion: seq 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	rep := res.Report()
	for _, want := range []string{"lost 1,", "late 1,", "duplicates 1,", "strays 1,", "lost (1, never reached S1): seq 4",
		"late (1, back after the 100ms loss timeout): seq 2", "duplicates (1): seq 7", "strayid000000000000000/3"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report does not say %q", want)
		}
	}
}

// TestAccountingAtFault checks that a run ending on a fault lists the
// messages it sent and never accounted for, and how many it never sent.
func TestAccountingAtFault(t *testing.T) {
	r, p := scriptedRunner(t, time.Minute)
	fault := errors.New("server gone")
	p.on = func(seq uint64, _ []byte) bool {
		if seq == 12 {
			p.sink.Fault(fault)
		}
		return seq < 10
	}
	r.Incident(Incident{Worker: "ignored", Kind: WorkerDied}) // between runs: dropped
	const n = 100
	res, err := r.Run(context.Background(), p, n)
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	t.Logf("report:\n%s", res.Report())
	if !errors.Is(err, fault) {
		t.Errorf("error %v does not wrap the fault", err)
	}
	if res.Completed != 10 || len(res.Lost) != 0 || len(res.Unaccounted) < 3 || res.Unaccounted[0] != 10 ||
		res.Completed+len(res.Unaccounted)+res.Unsent != n || len(res.Incidents) != 0 {
		t.Fatalf("completed %d, lost %v, unaccounted %v, unsent %d, incidents %v", res.Completed, res.Lost, res.Unaccounted, res.Unsent, res.Incidents)
	}
	for i, s := range res.Unaccounted {
		if s != uint64(10+i) {
			t.Fatalf("unaccounted %v, want 10 and up in a row", res.Unaccounted)
		}
	}
	if !strings.Contains(res.EndedBy, "server gone") {
		t.Errorf("ended by %q", res.EndedBy)
	}
	sum := res.Summary()
	if !strings.Contains(sum, "unaccounted at the end") || !strings.Contains(sum, "never sent") || !strings.Contains(sum, "ENDED EARLY") {
		t.Errorf("summary %q hides the unaccounted messages", sum)
	}
	if !strings.Contains(err.Error(), "unaccounted at the end") || !strings.Contains(err.Error(), "seq 10, 11, 12") {
		t.Errorf("error %q does not list the unaccounted messages", err)
	}
}

// TestIncidents checks that worker incidents reach the result, and that a
// death, or a worker still unresponsive at the end, is an error while a
// worker that came back is not.
func TestIncidents(t *testing.T) {
	r, p := scriptedRunner(t, time.Minute)
	p.on = func(seq uint64, _ []byte) bool {
		now := time.Now()
		switch seq {
		case 1:
			r.Incident(Incident{At: now, Worker: "w-a", Kind: WorkerUnresponsive, For: 2 * time.Second, Held: 3})
		case 2:
			r.Incident(Incident{At: now, Worker: "w-a", Kind: WorkerBack, For: 2500 * time.Millisecond, Held: 3})
		case 3:
			r.Incident(Incident{At: now, Worker: "w-b", Kind: WorkerUnresponsive, For: 2 * time.Second, Held: -1})
		}
		return true
	}
	res, err := r.Run(context.Background(), p, 5)
	if res == nil || len(res.Incidents) != 3 {
		t.Fatalf("result %v, error %v", res, err)
	}
	t.Logf("report:\n%s", res.Report())
	if err == nil || !strings.Contains(err.Error(), "worker w-b unresponsive for 2s") || strings.Contains(err.Error(), "w-a") {
		t.Errorf("error %v, want one naming w-b only", err)
	}
	if rep := res.Report(); !strings.Contains(rep, "worker w-a came back after 2.5s, holding 3 messages") ||
		!strings.Contains(rep, "worker w-a unresponsive for 2s (held 3 messages at its last answer)") {
		t.Errorf("report does not show w-a's spell:\n%s", rep)
	}
}

// TestDuplicatesCountedPastTheList: a Result lists the first MaxListed
// duplicates and strays, and counts every one.
func TestDuplicatesCountedPastTheList(t *testing.T) {
	r, p := scriptedRunner(t, time.Minute)
	const extra = 5
	p.on = func(seq uint64, msg []byte) bool {
		if seq == 1 {
			for range MaxListed + extra {
				p.sink.Complete(msg, time.Now())
			}
			stray, _ := (&Envelope{ID: "strayid000000000000000", Seq: 3, Stages: []StageRecord{{Stage: 1}}}).Append(nil)
			for range MaxListed + extra {
				p.sink.Complete(stray, time.Now())
			}
		}
		return true
	}
	res, err := r.Run(context.Background(), p, 4)
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	// The first of seq 1's completions counts; every later one is a duplicate.
	if want := MaxListed + extra; res.Duplicates != want || len(res.DuplicateSeqs) != MaxListed {
		t.Errorf("duplicates %d, %d listed; want %d, %d listed", res.Duplicates, len(res.DuplicateSeqs), want, MaxListed)
	}
	if want := MaxListed + extra; res.Strays != want || len(res.StrayList) != MaxListed {
		t.Errorf("strays %d, %d listed; want %d, %d listed", res.Strays, len(res.StrayList), want, MaxListed)
	}
	if !strings.Contains(res.Report(), fmt.Sprintf("... (%d more)", extra)) {
		t.Errorf("report does not say what is not listed:\n%.300s", res.Report())
	}
}

// TestProgress checks that Progress follows a run: zero between runs, then
// sent and completed counts that only grow, up to the run's own counts. It
// reads Progress at every message from inside the pipeline (so the samples
// do not depend on the machine's speed) and, for the race detector, from
// another goroutine meanwhile.
func TestProgress(t *testing.T) {
	r, p := scriptedRunner(t, time.Minute)
	if g := r.Progress(); g != (Progress{}) {
		t.Fatalf("before a run: %+v, want zero", g)
	}
	var seen []Progress
	p.on = func(seq uint64, _ []byte) bool {
		seen = append(seen, r.Progress())
		return true
	}
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
				_ = r.Progress()
				runtime.Gosched()
			}
		}
	}()
	const n = 500
	res, err := r.Run(context.Background(), p, n)
	close(stop)
	<-watched
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d progress samples, want one per message (%d)", len(seen), n)
	}
	for i, g := range seen {
		// Message i is sent (Sent i+1) and not yet back when its stage runs.
		if g.N != n || g.Sent != i+1 || g.Completed > i || g.Completed < i-r.Config().Window || g.Lost != 0 ||
			(i > 0 && g.Elapsed < seen[i-1].Elapsed) {
			t.Fatalf("progress at message %d: %+v (before: %+v)", i, g, seen[max(i-1, 0)])
		}
	}
	if res.Completed != n || r.Progress() != (Progress{}) {
		t.Errorf("completed %d, progress after the run %+v", res.Completed, r.Progress())
	}
}

// sleepRunner is a runner of a one-stage pipeline whose stage sleeps stage
// a message, one message at a time (the scripted pipeline runs it inside
// Send): about 1/stage msgs/s.
func sleepRunner(t *testing.T, stage time.Duration, cfg RunConfig) (*Runner, *scriptedPipeline) {
	t.Helper()
	cfg.Spec = Spec{Durations: []time.Duration{stage}, Work: Sleep, PayloadSize: 8}
	cfg.Variant, cfg.Window = "test", 4
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, &scriptedPipeline{t: t, sink: r, step: StepsFor(cfg.Spec, func(int) string { return "w1" })[0]}
}

// TestProgressHook: RunConfig.Progress is called while the run lasts, with
// counts that only grow, from one goroutine at a time; its last call is
// Done and carries the Result's counts; no call comes after Run returns,
// and its goroutine is gone.
func TestProgressHook(t *testing.T) {
	benchrun.SkipTest(t, "progress hook")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var (
		mu      sync.Mutex
		calls   []Progress
		running atomic.Int32 // calls under way at once
		overlap atomic.Bool
	)
	hook := func(p Progress) {
		if running.Add(1) > 1 {
			overlap.Store(true)
		}
		defer running.Add(-1)
		mu.Lock()
		calls = append(calls, p)
		mu.Unlock()
	}
	const n = 200 // at 5 ms a message: about 1 s, some 5 ticks
	r, p := sleepRunner(t, 5*time.Millisecond, RunConfig{Progress: hook, LossTimeout: 50 * time.Millisecond})
	p.on = func(seq uint64, _ []byte) bool { return seq != 150 } // seq 150 is lost
	res, err := r.Run(context.Background(), p, n)
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	time.Sleep(2 * ProgressInterval)
	mu.Lock()
	after := len(calls)
	mu.Unlock()
	if after != len(got) {
		t.Errorf("%d progress calls after Run returned", after-len(got))
	}
	if overlap.Load() {
		t.Error("progress calls overlapped")
	}
	if len(got) < 3 {
		t.Fatalf("%d progress calls in a run of %v, want one every %v and the last", len(got), res.Elapsed, ProgressInterval)
	}
	for i, g := range got {
		if g.N != n || g.Completed > g.Sent || g.Sent > n || (g.Done != (i == len(got)-1)) {
			t.Errorf("call %d of %d: %+v", i+1, len(got), g)
		}
		if i > 0 {
			prev := got[i-1]
			if g.Sent < prev.Sent || g.Completed < prev.Completed || g.Completed+g.Lost < prev.Completed+prev.Lost || g.Elapsed < prev.Elapsed {
				t.Errorf("call %d went back: %+v after %+v", i+1, g, prev)
			}
		}
	}
	last := got[len(got)-1]
	if last.Completed != res.Completed || last.Lost != len(res.Lost) || last.Sent != n || last.Elapsed != res.Elapsed {
		t.Errorf("last call %+v; result: completed %d, lost %v, elapsed %v", last, res.Completed, res.Lost, res.Elapsed)
	}
	if res.Completed != n-1 || !slices.Equal(res.Lost, []uint64{150}) {
		t.Errorf("completed %d, lost %v: want all but seq 150, lost", res.Completed, res.Lost)
	}
}

// TestRunInterrupted: a run whose context is cancelled mid-run stops its
// source, drains the messages in flight within its drain bound (those
// that come back complete; one held back is listed in flight at the
// interrupt), and returns the partial result: completed + in flight +
// lost = sent, the rest never sent, marked interrupted in its account, an
// error wrapping ErrInterrupted and the cause.
func TestRunInterrupted(t *testing.T) {
	benchrun.SkipTest(t, "interrupted run")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const drain = 300 * time.Millisecond
	r, p := sleepRunner(t, 2*time.Millisecond, RunConfig{Drain: drain, LossTimeout: time.Minute})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := errors.New("test stop")
	var held [][]byte
	var stopped time.Time
	var late sync.WaitGroup
	defer late.Wait()
	p.on = func(seq uint64, msg []byte) bool {
		switch {
		case seq == 20: // in flight at the interrupt, never back
			return false
		case seq >= 98 && seq < 100: // back during the drain
			held = append(held, msg)
			return false
		case seq == 100:
			stopped = time.Now()
			cancel(stop)
			msgs := held
			late.Go(func() {
				time.Sleep(drain / 3)
				for _, m := range msgs {
					p.sink.Complete(m, time.Now())
				}
			})
		}
		return true
	}
	const n = 5000
	res, err := r.Run(ctx, p, n)
	took := time.Since(stopped)
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	t.Logf("report:\n%s", res.Report())
	if took > drain+time.Second {
		t.Errorf("Run returned %v after the interrupt, drain bound %v", took, drain)
	}
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, stop) {
		t.Errorf("error %v: want ErrInterrupted and the cause", err)
	}
	sent := n - res.Unsent
	if !res.Interrupted() || !strings.HasPrefix(res.EndedBy, "interrupted: test stop; the source stopped after ") {
		t.Errorf("ended by %q, interrupted %v", res.EndedBy, res.Interrupted())
	}
	// The source checks the context before each message: the send under
	// way when it was cancelled (seq 100) is the last.
	if sent != 101 {
		t.Errorf("%d sent, want 101 (up to the message that cancelled)", sent)
	}
	if res.Completed+len(res.Unaccounted)+len(res.Lost) != sent || !slices.Equal(res.Unaccounted, []uint64{20}) || len(res.Lost) != 0 {
		t.Errorf("completed %d + in flight %v + lost %v != %d sent", res.Completed, res.Unaccounted, res.Lost, sent)
	}
	for _, seq := range []int{98, 99} {
		if !res.Records[seq].Completed() {
			t.Errorf("seq %d, back during the drain, not completed", seq)
		}
	}
	counts := res.Account.Counts()
	for _, want := range []string{"lost 0 + 1 in flight at the interrupt", fmt.Sprintf("%d never sent", n-101), "(INTERRUPTED: partial, 101 of 5000 sent)"} {
		if !strings.Contains(counts, want) {
			t.Errorf("counts %q do not say %q", counts, want)
		}
	}
	if !strings.Contains(err.Error(), "1 of 5000 messages in flight at the interrupt") {
		t.Errorf("error %q does not list the message in flight", err)
	}
}

// TestRunInterruptedAfterTheEnd: a context cancelled once every message
// has settled changes nothing: the run is whole, not interrupted.
func TestRunInterruptedAfterTheEnd(t *testing.T) {
	r, p := scriptedRunner(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	const n = 10
	p.on = func(seq uint64, msg []byte) bool {
		if seq == n-1 {
			p.sink.Complete(msg, time.Now())
			cancel()
			return false
		}
		return true
	}
	res, err := r.Run(ctx, p, n)
	if err != nil || res.Completed != n || res.Interrupted() || res.EndedBy != "" {
		t.Errorf("error %v, completed %d, ended by %q", err, res.Completed, res.EndedBy)
	}
}
