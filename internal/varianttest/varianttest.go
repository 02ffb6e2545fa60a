// Package varianttest holds the checks every messaging variant's tests run:
// exactly-once accounting, stage minimums, overlap measurement and the
// malformed-message test.
package varianttest

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// StartFunc starts a variant's pipeline on the server conn names, under subjects, reporting to
// sink. The returned Closer stops it.
type StartFunc func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error)

// Fixture is a started pipeline with its runner and harness endpoint.
type Fixture struct {
	Runner   *pipelines.Runner
	Endpoint *router.Endpoint
	Subjects bus.Subjects
}

// Start starts a pipeline and the harness for it over core NATS; both
// stop in t's Cleanup.
func Start(t testing.TB, conn natsconn.Config, start StartFunc, cfg pipelines.RunConfig) *Fixture {
	t.Helper()
	return StartOn(t, conn, nil, start, cfg)
}

// StartOn is Start with the harness over transport tr (nil: core); start
// must start the pipeline over the same transport.
func StartOn(t testing.TB, conn natsconn.Config, tr transport.Transport, start StartFunc, cfg pipelines.RunConfig) *Fixture {
	t.Helper()
	if cfg.Transport == "" && cfg.Variant != "p0" {
		// A messaging variant: record its transport, as every result does.
		atLeastOnce := cfg.AtLeastOnce
		transports.Describe(&cfg, tr)
		cfg.AtLeastOnce = cfg.AtLeastOnce || atLeastOnce
	}
	r, err := pipelines.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	subjects := bus.NewSubjects()
	p, err := start(context.Background(), conn, subjects, cfg.Spec, r)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Variant, err)
	}
	benchkit.Cleanup(t, cfg.Variant, p)
	ep := benchkit.AttachOn(t, conn, tr, transport.Run{Subjects: subjects, Stages: cfg.Spec.Stages()}, r)
	return &Fixture{Runner: r, Endpoint: ep, Subjects: subjects}
}

// CheckExactlyOnce fails t unless every message of res passed every stage
// exactly once, in order, none lost or duplicated, none stage shorter than
// its defined time. It returns the number of stage records checked.
func CheckExactlyOnce(t testing.TB, spec pipelines.Spec, res *pipelines.Result) int {
	t.Helper()
	if res.Completed != res.N || len(res.Lost) != 0 || res.Duplicates != 0 || len(res.Violations) != 0 {
		t.Fatalf("%s: completed %d of %d, lost %v, duplicates %d, violations %v",
			res.Variant, res.Completed, res.N, res.Lost, res.Duplicates, res.Violations)
	}
	seen := make(map[string]int, res.N)
	checked := 0
	for seq, rec := range res.Records {
		if prev, dup := seen[rec.ID]; dup {
			t.Fatalf("correlation ID %s on seq %d and %d", rec.ID, prev, seq)
		}
		seen[rec.ID] = seq
		if rec.Seq != uint64(seq) || len(rec.Stages) != spec.Stages() {
			t.Fatalf("record %d: seq %d with %d stages, want %d", seq, rec.Seq, len(rec.Stages), spec.Stages())
		}
		for i, st := range rec.Stages {
			if st.Stage != i+1 {
				t.Fatalf("seq %d: record %d is for stage %d", seq, i, st.Stage)
			}
			if d, least := time.Duration(st.Finished-st.Started), spec.MinWork(i, time.Duration(st.Drawn)); d < least {
				t.Errorf("seq %d: stage %s worked %v, less than %v", seq, pipelines.StageName(i), d, least)
			}
			if st.Worker == "" {
				t.Errorf("seq %d: stage %s names no worker", seq, pipelines.StageName(i))
			}
			checked++
		}
	}
	return checked
}

// MaxOverlap is the largest number of messages in stage work at one instant,
// over all stages, from the records' start and finish stamps.
func MaxOverlap(res *pipelines.Result) int {
	var recs []pipelines.StageRecord
	for _, rec := range res.Records {
		recs = append(recs, rec.Stages...)
	}
	return pipelines.PeakOverlap(recs)
}

// Garbage is a set of malformed messages: not an envelope, truncated, an
// unknown version, and a valid envelope sent to the wrong stage.
func Garbage() map[string][]byte {
	e := pipelines.Envelope{ID: "garbage0000000000000000", Seq: 1 << 40, Sent: time.Now().UnixNano()}
	good, _ := e.Append(nil)
	version := append([]byte(nil), good...)
	version[2] = 99
	// Claims a 1000-byte payload it does not carry.
	short := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(short[len(short)-4:], 1000)
	return map[string][]byte{
		"not an envelope": []byte(`{"hello":"world"}`),
		"truncated":       good[:10],
		"short payload":   short,
		"unknown version": version,
		"wrong stage":     good, // no stage records: valid only at S1
	}
}

// Malformed runs n messages while publishing Garbage to every stage after S1
// (and all but "wrong stage" to S1), and checks that the stages reject each
// one, count it, and lose nothing else.
func Malformed(t *testing.T, fx *Fixture, spec pipelines.Spec, n int) {
	t.Helper()
	nc := fx.Endpoint.Conn()
	want := 0
	inject := func() {
		for i := range spec.Stages() {
			for name, data := range Garbage() {
				if i == 0 && name == "wrong stage" {
					continue
				}
				if err := nc.Publish(fx.Subjects.Stage(i), data); err != nil {
					t.Errorf("publish garbage %q: %v", name, err)
				}
				want++
			}
		}
		if err := nc.Publish(fx.Subjects.Done(), []byte("not an envelope")); err != nil {
			t.Errorf("publish garbage to the sink: %v", err)
		}
		want++
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(spec.Sum()) // mid-run
		inject()
	}()
	res, err := fx.Runner.Run(context.Background(), fx.Endpoint, n)
	<-done
	if err != nil {
		t.Fatalf("run with malformed messages: %v", err)
	}
	CheckExactlyOnce(t, spec, res)
	if res.Rejected != want {
		t.Errorf("rejected %d malformed messages, want %d: %v", res.Rejected, want, res.RejectErrs)
	}
	for _, e := range res.RejectErrs {
		t.Logf("rejected: %s", e)
	}
}
