package trace

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestReadRefusesStampsOutOfOrder: a completed message whose stamps do
// not follow its path (sent, each stage in turn, received) is refused with
// the file, the line and the fields named, in both formats.
func TestReadRefusesStampsOutOfOrder(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(m *Message)
		want  string
	}{
		{"arrived before sent", func(m *Message) { m.Sent = m.Stages[0].Arrived + 1 }, "stage S1 arrived 1700000000010000000, before sent 1700000000010000001"},
		{"arrived before previous end", func(m *Message) {
			m.Stages[1].Arrived = m.Stages[0].Finished - 1
			m.Stages[1].Started = m.Stages[1].Arrived
		},
			"stage S2 arrived 1700000000012000000, before stage S1 finished 1700000000012000001"},
		{"received before the end", func(m *Message) { m.Received = m.Stages[2].Finished - 1 }, "received 1700000000018000000, before stage S3 finished 1700000000018000001"},
		{"finished near int64 max, received earlier", func(m *Message) { m.Stages[2].Finished = 1<<63 - 1 }, "received 1700000000019000000, before stage S3 finished 9223372036854775807"},
	} {
		tr := New(handResult())
		c.spoil(&tr.Messages[1]) // seq 1: line 3 of the JSONL, lines 5-7 of the CSV
		var j, csv bytes.Buffer
		if err := tr.WriteJSONL(&j); err != nil {
			t.Fatal(err)
		}
		if err := tr.WriteCSV(&csv); err != nil {
			t.Fatal(err)
		}
		_, err := ReadJSONL(&j, "t.jsonl")
		if !errors.Is(err, ErrMalformed) || !strings.HasPrefix(err.Error(), "t.jsonl:3: malformed trace: seq 1: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("jsonl %s: %v\nwant t.jsonl:3: ... %q", c.name, err, c.want)
		}
		_, err = ReadCSV(&csv, "t.csv")
		if !errors.Is(err, ErrMalformed) || !strings.HasPrefix(err.Error(), "t.csv:5: malformed trace: seq 1: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("csv %s: %v\nwant t.csv:5: ... %q", c.name, err, c.want)
		}
	}
}
