package trace

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// seedTraces returns the hand-built trace in both formats, for seeds.
func seedTraces(f *testing.F) (jsonl, csv []byte) {
	tr := New(handResult())
	var j, c bytes.Buffer
	if err := tr.WriteJSONL(&j); err != nil {
		f.Fatal(err)
	}
	if err := tr.WriteCSV(&c); err != nil {
		f.Fatal(err)
	}
	return j.Bytes(), c.Bytes()
}

// checkReadErr fails unless err, from a reader given the name "t", says
// where and what: "t:LINE: " and ErrMalformed or ErrTruncated.
func checkReadErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("error is neither ErrMalformed nor ErrTruncated: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "t:") {
		t.Fatalf("error does not name the file: %v", err)
	}
}

// checkValid fails unless tr holds what the readers promise: ascending
// seqs, completed messages with one record per stage, in order, with
// non-negative times and each stage's arrived <= started <= finished.
func checkValid(t *testing.T, tr *Trace) {
	t.Helper()
	m := &tr.Meta
	if m.Stages < 1 || len(m.Durations) != m.Stages || m.Messages != len(tr.Messages) {
		t.Fatalf("meta: stages %d, durations %v, messages %d of %d", m.Stages, m.Durations, m.Messages, len(tr.Messages))
	}
	for i := range tr.Messages {
		msg := &tr.Messages[i]
		if i > 0 && msg.Seq <= tr.Messages[i-1].Seq {
			t.Fatalf("seq %d after %d", msg.Seq, tr.Messages[i-1].Seq)
		}
		if msg.Intended < 0 || msg.Sent < 0 || msg.Received < 0 {
			t.Fatalf("seq %d: negative time: %+v", msg.Seq, *msg)
		}
		if !msg.Completed() {
			if len(msg.Stages) != 0 {
				t.Fatalf("lost seq %d has stages", msg.Seq)
			}
			continue
		}
		if len(msg.Stages) != m.Stages {
			t.Fatalf("seq %d: %d stages, want %d", msg.Seq, len(msg.Stages), m.Stages)
		}
		for j, s := range msg.Stages {
			if s.Stage != j+1 || s.Arrived < 0 || s.Started < s.Arrived || s.Finished < s.Started {
				t.Fatalf("seq %d: stage record %d: %+v", msg.Seq, j+1, s)
			}
		}
	}
}

// FuzzReadJSONL: the JSON Lines reader never panics; what it accepts is a
// valid trace, and writing it back and reading that gives the same trace.
func FuzzReadJSONL(f *testing.F) {
	jsonl, _ := seedTraces(f)
	f.Add(jsonl)
	jl := lines(jsonl)
	f.Add([]byte(strings.Join(jl[:3], ""))) // cut after a message
	f.Add([]byte(jl[0] + jl[3] + jl[3]))    // a message twice
	f.Add([]byte(strings.Replace(string(jsonl), `"stages":3`, `"stages":2`, 1)))
	f.Add([]byte(`{"type":"header","format":"natspipe-trace","version":1,"stages":1,"durations_ns":[0],"messages":1}` + "\n" +
		`{"type":"msg","seq":0,"id":"a","intended":1,"sent":1,"received":9223372036854775807,"stages":[{"stage":1,"worker":"w","arrived":0,"started":0,"finished":9223372036854775807}]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ReadJSONL(bytes.NewReader(data), "t")
		if err != nil {
			checkReadErr(t, err)
			return
		}
		checkValid(t, tr)
		var b bytes.Buffer
		if err := tr.WriteJSONL(&b); err != nil {
			t.Fatalf("write back: %v", err)
		}
		back, err := ReadJSONL(&b, "t")
		if err != nil {
			t.Fatalf("read back what was written: %v\n%s", err, b.Bytes())
		}
		if !tr.Meta.Start.Equal(back.Meta.Start) {
			t.Fatalf("start %v, read back %v", tr.Meta.Start, back.Meta.Start)
		}
		back.Meta.Start = tr.Meta.Start
		if !reflect.DeepEqual(tr, back) {
			t.Fatalf("round trip differs:\n read %+v\n back %+v", tr, back)
		}
	})
}

// FuzzReadCSV: the CSV reader never panics; what it accepts is a valid
// trace, and writing it back and reading that gives the same trace.
func FuzzReadCSV(f *testing.F) {
	_, csvData := seedTraces(f)
	f.Add(csvData)
	cl := lines(csvData)
	f.Add([]byte(strings.Join(cl[:10], "")))                       // cut at a line end
	f.Add([]byte(strings.Join(cl[:6], "") + cl[6][:len(cl[6])/2])) // cut mid-line
	f.Add([]byte(cl[0] + setField(cl[1], colFinished, "9223372036854775807")))
	f.Add([]byte(cl[0] + cl[7])) // a lost message only
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ReadCSV(bytes.NewReader(data), "t")
		if err != nil {
			checkReadErr(t, err)
			return
		}
		checkValid(t, tr)
		var b bytes.Buffer
		if err := tr.WriteCSV(&b); err != nil {
			t.Fatalf("write back: %v", err)
		}
		back, err := ReadCSV(&b, "t")
		if err != nil {
			t.Fatalf("read back what was written: %v\n%s", err, b.Bytes())
		}
		if !reflect.DeepEqual(tr, back) {
			t.Fatalf("round trip differs:\n read %+v\n back %+v", tr, back)
		}
	})
}
