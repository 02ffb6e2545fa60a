package analysis

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines/trace"
)

// checkFigures fails if any figure of r is negative, NaN or infinite.
func checkFigures(t *testing.T, r *Run) {
	t.Helper()
	bad := func(what string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Errorf("%s = %v", what, v)
		}
	}
	bad("wall", r.Wall)
	bad("throughput", r.Throughput)
	bad("efficiency", r.Efficiency)
	dists := map[string]Dist{"latency": r.Latency, "transit": r.Transit}
	if o := r.OpenLoop; o != nil {
		bad("offered", o.Offered)
		dists["from send"], dists["publish delay"] = o.FromSend, o.PublishDelay
	}
	for _, s := range r.Stages {
		bad(s.Name+" busy", s.Busy)
		bad(s.Name+" utilization", s.Utilization)
		dists[s.Name+" service"], dists[s.Name+" wait"] = s.Service, s.Wait
	}
	for name, d := range dists {
		for i, v := range []float64{d.Mean, d.P50, d.P90, d.P99, d.P999, d.Max} {
			bad(name+" figure "+string(rune('0'+i)), v)
		}
	}
}

// TestStampsOutOfOrderSkipped: a message whose stamps contradict its path
// is left out and counted, with the field named; the others are analysed.
func TestStampsOutOfOrderSkipped(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(m *trace.Message)
		want  string
	}{
		{"finish before start", func(m *trace.Message) { m.Stages[1].Finished = m.Stages[1].Started - 1 }, "stage S2 finished"},
		{"start before arrival", func(m *trace.Message) { m.Stages[0].Started = m.Stages[0].Arrived - 1 }, "stage S1 started"},
		{"arrived before previous end", func(m *trace.Message) { m.Stages[1].Arrived = m.Stages[0].Finished - 1 }, "stage S2 arrived"},
		{"arrived before sent", func(m *trace.Message) { m.Sent = m.Stages[0].Arrived + 1 }, "stage S1 arrived"},
		{"received before the end", func(m *trace.Message) { m.Received = m.Stages[1].Finished - 1 }, "received"},
		{"sent after everything", func(m *trace.Message) { m.Sent = math.MaxInt64 }, "before sent 9223372036854775807"},
	} {
		tr := handTrace(false)
		c.spoil(&tr.Messages[2])
		r, err := AnalyzeTrace(tr, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Skipped != 1 || r.Completed != 4 || !strings.HasPrefix(r.Skip, "seq 2: ") || !strings.Contains(r.Skip, c.want) {
			t.Errorf("%s: skipped %d (%q), completed %d; want 1 skipped naming %q, 4 completed", c.name, r.Skipped, r.Skip, r.Completed, c.want)
		}
		checkFigures(t, r)
	}
}

// TestStampsNearInt64Max: stamps in order but near the int64 limit used
// to overflow the busy-time sum into a negative utilization.
func TestStampsNearInt64Max(t *testing.T) {
	tr := &trace.Trace{Meta: trace.Meta{Variant: "p3", Stages: 2, Durations: []time.Duration{0, 0}}}
	const top = math.MaxInt64
	for k := range 4 {
		tr.Messages = append(tr.Messages, trace.Message{
			Seq: uint64(k), ID: "m", Intended: int64(k), Sent: int64(k), Received: top,
			Stages: []trace.Stage{
				{Stage: 1, Worker: "a", Arrived: int64(k), Started: int64(k), Finished: top / 2},
				{Stage: 2, Worker: "b", Arrived: top / 2, Started: top / 2, Finished: top},
			},
		})
	}
	r, err := AnalyzeTrace(tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, r)
	if r.Completed != 4 || r.Stages[0].Utilization <= 0 {
		t.Errorf("completed %d, S1 utilization %v", r.Completed, r.Stages[0].Utilization)
	}
	var b bytes.Buffer
	if err := (&Report{Runs: []*Run{r}}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("report shows a non-finite figure:\n%s", out)
	}
}

// FuzzAnalyzeJSONL reads a JSON Lines trace and analyses whatever the
// reader accepts: no panic, and no figure negative, NaN or infinite.
func FuzzAnalyzeJSONL(f *testing.F) {
	for _, open := range []bool{false, true} {
		var b bytes.Buffer
		if err := handTrace(open).WriteJSONL(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte(`{"type":"header","format":"natspipe-trace","version":1,"stages":1,"durations_ns":[0],"messages":2,"rate":5,"start_stamp":-9223372036854775808}` + "\n" +
		`{"type":"msg","seq":0,"id":"a","intended":9223372036854775807,"sent":1,"received":9223372036854775807,"stages":[{"stage":1,"worker":"w","arrived":1,"started":1,"finished":9223372036854775807}]}` + "\n" +
		`{"type":"msg","seq":1,"id":"b","intended":0,"sent":0,"received":9223372036854775807,"stages":[{"stage":1,"worker":"w","arrived":0,"started":0,"finished":9223372036854775806}]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := trace.ReadJSONL(bytes.NewReader(data), "t")
		if err != nil {
			return
		}
		r, err := AnalyzeTrace(tr, Options{})
		if err != nil {
			return
		}
		checkFigures(t, r)
		notBack := 0
		for _, m := range tr.Messages {
			if !m.Completed() {
				notBack++
			}
		}
		if r.Completed+notBack+r.Skipped != r.Messages {
			t.Errorf("completed %d + not back %d + skipped %d != %d messages", r.Completed, notBack, r.Skipped, r.Messages)
		}
		if r.Lost != len(tr.Meta.Lost) || r.Late != tr.Meta.Late || r.Unaccounted != len(tr.Meta.Unaccounted) {
			t.Errorf("lost %d late %d unaccounted %d, header says %d %d %d", r.Lost, r.Late, r.Unaccounted, len(tr.Meta.Lost), tr.Meta.Late, len(tr.Meta.Unaccounted))
		}
		var b bytes.Buffer
		if err := (&Report{Runs: []*Run{r}}).WriteText(&b); err != nil {
			t.Fatal(err)
		}
	})
}
