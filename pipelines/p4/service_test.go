package p4

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/syncbuf"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// Bounds on gathering the replies to a request that any number of
// responders answer (the $SRV requests): the replies are read until none
// has come for replyQuiet, and for replyBound at most.
const (
	replyQuiet = 300 * time.Millisecond
	replyBound = 5 * time.Second
)

// gather publishes a request on subject and returns every reply that
// comes before a replyQuiet without one (at most replyBound).
func gather(t *testing.T, nc *nats.Conn, subject string) [][]byte {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	deadline := time.Now().Add(replyBound)
	for {
		wait := min(replyQuiet, time.Until(deadline))
		if wait <= 0 {
			return out
		}
		m, err := sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) {
			return out // quiet, or nobody listens (the server says so at once)
		}
		if err != nil {
			t.Fatalf("replies on %s: %v", subject, err)
		}
		out = append(out, m.Data)
	}
}

// ofPipeline decodes the $SRV replies into T and keeps those of the
// workers of prefix (other tests' pipelines may share the server).
func ofPipeline[T any](t *testing.T, replies [][]byte, prefix string, meta func(T) map[string]string) []T {
	t.Helper()
	var out []T
	for _, b := range replies {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		if meta(v)[worker.MetaPrefix] == prefix {
			out = append(out, v)
		}
	}
	return out
}

// TestMicroService: every worker of a running P4 fleet (1-4-1-1: seven
// worker processes) is a NATS micro service that the NATS tools see: one
// $SRV.PING and one $SRV.INFO reply per worker, with its stage, name,
// variant, transport, prefix and mode as metadata; after a run of n
// messages the handled counts of their $SRV.STATS replies sum to n at
// every stage, and the mean service time is at least the stage's time;
// the stats endpoint answers for its stage's workers. After the fleet's
// stop no worker answers, and at the default log level no worker printed
// anything.
func TestMicroService(t *testing.T) {
	benchrun.SkipTest(t, "micro service (worker processes)")
	benchkit.CheckLeaks(t)
	spec := testSpec()
	alloc := Alloc{1, 4, 1, 1}
	var stderr syncbuf.Buffer
	opts := Options{Alloc: alloc, Processes: fleet.Processes{
		Stderr: &stderr,
		// The default level, whatever the environment says.
		Env: func(fleet.WorkerID) []string { return []string{worker.EnvLogLevel + "="} },
	}}
	r := newRig(t, spec, opts, pipelines.RunConfig{Timeout: time.Minute})
	nc, err := bus.Connect(r.conn, "monitor", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	prefix := r.subjects.Prefix
	infoMeta := func(i micro.Info) map[string]string { return i.Metadata }
	statsMeta := func(s micro.Stats) map[string]string { return s.Metadata }
	pingMeta := func(p micro.Ping) map[string]string { return p.Metadata }

	// One worker is one service instance: seven, as the fleet's workers.
	if pings := ofPipeline(t, gather(t, nc, "$SRV.PING"), prefix, pingMeta); len(pings) != alloc.Total() {
		t.Errorf("%d PING replies for pipeline %s, want %d", len(pings), prefix, alloc.Total())
	}
	infos := ofPipeline(t, gather(t, nc, "$SRV.INFO."+worker.ServiceName), prefix, infoMeta)
	perStage := map[string]int{}
	names := map[string]bool{}
	ids := map[string]bool{}
	for _, in := range infos {
		m := in.Metadata
		perStage[m[worker.MetaStage]]++
		names[m[worker.MetaWorker]] = true
		ids[in.ID] = true
		stage, err := pipelines.ParseStage(m[worker.MetaStage], spec.Stages())
		if in.Name != worker.ServiceName || in.Version == "" || m[worker.MetaVariant] != "p4" || m[worker.MetaTransport] != "core" ||
			m[worker.MetaMode] != string(worker.Sync) || err != nil || len(in.Endpoints) != 1 ||
			in.Endpoints[0].Subject != worker.ServiceSubject(r.subjects, stage) || in.Endpoints[0].Name != worker.ServiceEndpoint {
			t.Errorf("INFO %+v", in)
		}
	}
	wantStage := map[string]int{}
	var wantNames []string
	for _, id := range r.pipe.Workers() {
		wantStage[pipelines.StageName(id.Stage)]++
		wantNames = append(wantNames, id.Name)
	}
	if !maps.Equal(perStage, wantStage) || len(names) != len(wantNames) || len(ids) != len(infos) {
		t.Errorf("INFO replies per stage %v (want %v), workers %v (want %v), %d service IDs for %d replies",
			perStage, wantStage, slices.Sorted(maps.Keys(names)), wantNames, len(ids), len(infos))
	}
	for _, n := range wantNames {
		if !names[n] {
			t.Errorf("worker %s has no INFO reply", n)
		}
	}

	const n = 200
	res, err := r.run(t, n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != n {
		t.Fatalf("run: %s", res.Summary())
	}
	stats := ofPipeline(t, gather(t, nc, "$SRV.STATS."+worker.ServiceName), prefix, statsMeta)
	if len(stats) != alloc.Total() {
		t.Errorf("%d STATS replies, want %d", len(stats), alloc.Total())
	}
	handled := map[string]uint64{}
	for _, s := range stats {
		if len(s.Endpoints) != 1 {
			t.Errorf("STATS %+v: want one endpoint", s)
			continue
		}
		var ss worker.ServiceStats
		if err := json.Unmarshal(s.Endpoints[0].Data, &ss); err != nil {
			t.Fatalf("STATS data %s: %v", s.Endpoints[0].Data, err)
		}
		stage, err := pipelines.ParseStage(ss.Stage, spec.Stages())
		if err != nil || ss.Stage != s.Metadata[worker.MetaStage] || ss.Worker != s.Metadata[worker.MetaWorker] || ss.Rejected != 0 || ss.PublishErrors != 0 {
			t.Errorf("STATS data %+v of %v", ss, s.Metadata)
			continue
		}
		handled[ss.Stage] += ss.Handled
		// A stage never finishes sooner than its time: the mean neither.
		if min := float64(spec.Durations[stage]) / float64(time.Millisecond); ss.Handled > 0 && ss.MeanServiceMS < min {
			t.Errorf("%s: mean service time %.3f ms below the stage's %v", ss.Worker, ss.MeanServiceMS, spec.Durations[stage])
		}
	}
	for i := range spec.Stages() {
		if got := handled[pipelines.StageName(i)]; got != n {
			t.Errorf("stage %s: its workers handled %d in all, want %d", pipelines.StageName(i), got, n)
		}
	}
	// The endpoint: each of S2's workers answers with its Stats.
	var s2 uint64
	replies := gather(t, nc, worker.ServiceSubject(r.subjects, 1))
	for _, b := range replies {
		var s worker.Stats
		if err := json.Unmarshal(b, &s); err != nil || s.Stage != 2 {
			t.Errorf("stats endpoint reply %s: %v", b, err)
		}
		s2 += s.Handled
	}
	if len(replies) != alloc[1] || s2 != n {
		t.Errorf("stats endpoint of S2: %d replies handling %d, want %d handling %d", len(replies), s2, alloc[1], n)
	}

	// Stopped workers are no services.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.pipe.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if left := ofPipeline(t, gather(t, nc, "$SRV.PING."+worker.ServiceName), prefix, pingMeta); len(left) != 0 {
		t.Errorf("%d workers still answer PING after the stop: %+v", len(left), left)
	}
	if s := stderr.String(); s != "" {
		t.Errorf("workers printed at the default log level:\n%s", s)
	}
}
