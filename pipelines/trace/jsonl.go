package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/natspipe/natspipe/pipelines"
)

// Line types of the JSON Lines format, in each line's "type" field.
const (
	typeHeader  = "header"
	typeMessage = "msg"
)

type headerLine struct {
	Type string `json:"type"`
	*Meta
}

type messageLine struct {
	Type string `json:"type"`
	*Message
}

// WriteJSONL writes the trace as JSON Lines: a header line, then one line per
// message. The header's format, version and messages fields are filled in.
func (t *Trace) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	m := t.Meta
	m.Format, m.Version, m.Messages = Format, Version, len(t.Messages)
	if m.Stages == 0 {
		m.Stages = len(m.Durations)
	}
	if m.Lost == nil {
		m.Lost = []uint64{}
	}
	if err := enc.Encode(headerLine{Type: typeHeader, Meta: &m}); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	for i := range t.Messages {
		if err := enc.Encode(messageLine{Type: typeMessage, Message: &t.Messages[i]}); err != nil {
			return fmt.Errorf("message seq %d: %w", t.Messages[i].Seq, err)
		}
	}
	return bw.Flush()
}

// ReadFile reads a trace file: JSON Lines when its name ends in .jsonl (or
// .json), CSV when it ends in .csv.
func ReadFile(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	defer f.Close()
	var t *Trace
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl", ".json", ".ndjson":
		t, err = ReadJSONL(f, path)
	case ".csv":
		t, err = ReadCSV(f, path)
	default:
		return nil, fmt.Errorf("read trace %s: unknown extension %q (want .jsonl or .csv)", path, ext)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ReadJSONL reads a JSON Lines trace from r; name (the file name) prefixes
// errors, which say the line and wrap ErrMalformed or ErrTruncated.
func ReadJSONL(r io.Reader, name string) (*Trace, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	t := &Trace{Source: name}
	line := 0
	headerSeen := false
	var prev *Message
	for {
		data, rerr := br.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, fmt.Errorf("%s:%d: %w", name, line+1, rerr)
		}
		if len(data) == 0 && rerr != nil {
			break
		}
		line++
		incomplete := rerr != nil // no newline at the end of the file
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			if rerr != nil {
				break
			}
			continue
		}
		fail := func(err error) error {
			if incomplete {
				return fmt.Errorf("%s:%d: %w: last line incomplete (no newline at end of file): %v", name, line, ErrTruncated, err)
			}
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if !headerSeen {
			m := &t.Meta
			if err := parseHeader(data, m); err != nil {
				return nil, fail(err)
			}
			headerSeen = true
			t.Messages = make([]Message, 0, min(m.Messages, 1<<20))
		} else {
			var msg Message
			if err := parseMessage(data, &msg, &t.Meta, prev); err != nil {
				return nil, fail(err)
			}
			if len(t.Messages) == t.Meta.Messages {
				return nil, fail(fmt.Errorf("%w: more message records than the header's %d", ErrMalformed, t.Meta.Messages))
			}
			t.Messages = append(t.Messages, msg)
			prev = &t.Messages[len(t.Messages)-1]
		}
		if rerr != nil {
			break
		}
	}
	if !headerSeen {
		return nil, fmt.Errorf("%s:1: %w: empty file, want a header line", name, ErrTruncated)
	}
	if len(t.Messages) < t.Meta.Messages {
		return nil, fmt.Errorf("%s:%d: %w: file ends after %d of %d message records", name, line, ErrTruncated, len(t.Messages), t.Meta.Messages)
	}
	return t, nil
}

func parseHeader(data []byte, m *Meta) error {
	h := headerLine{Meta: m}
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Type != typeHeader || m.Format != Format {
		return fmt.Errorf("%w: want a header line {\"type\":%q,\"format\":%q,...} first, got type %q format %q",
			ErrMalformed, typeHeader, Format, h.Type, m.Format)
	}
	if m.Version != Version {
		return fmt.Errorf("%w: format version %d, this build reads %d", ErrMalformed, m.Version, Version)
	}
	if len(m.Lost) == 0 {
		m.Lost = nil
	}
	return validateMeta(m)
}

func validateMeta(m *Meta) error {
	if m.Stages < 1 || m.Stages > pipelines.MaxStages {
		return fmt.Errorf("%w: header: %d stages, want 1..%d", ErrMalformed, m.Stages, pipelines.MaxStages)
	}
	if len(m.Durations) != m.Stages {
		return fmt.Errorf("%w: header: %d durations for %d stages", ErrMalformed, len(m.Durations), m.Stages)
	}
	for i, d := range m.Durations {
		if d < 0 {
			return fmt.Errorf("%w: header: stage %s duration %v < 0", ErrMalformed, pipelines.StageName(i), d)
		}
	}
	if m.Messages < 0 || m.N < 0 || m.Window < 0 || m.Rate < 0 || m.Bound < 0 {
		return fmt.Errorf("%w: header: negative count, rate or bound", ErrMalformed)
	}
	for _, s := range m.Lost {
		if m.N > 0 && s >= uint64(m.N) {
			return fmt.Errorf("%w: header: lost seq %d, but only %d messages", ErrMalformed, s, m.N)
		}
	}
	return nil
}

func parseMessage(data []byte, msg *Message, m *Meta, prev *Message) error {
	l := messageLine{Message: msg}
	if err := json.Unmarshal(data, &l); err != nil {
		return fmt.Errorf("%w: message: %v", ErrMalformed, err)
	}
	if l.Type != typeMessage {
		return fmt.Errorf("%w: line type %q, want %q", ErrMalformed, l.Type, typeMessage)
	}
	return validateMessage(msg, m, prev)
}

// validateMessage checks one message against the run's meta and the
// message before it.
func validateMessage(msg *Message, m *Meta, prev *Message) error {
	if prev != nil && msg.Seq <= prev.Seq {
		return fmt.Errorf("%w: seq %d after seq %d (want ascending)", ErrMalformed, msg.Seq, prev.Seq)
	}
	if m.N > 0 && msg.Seq >= uint64(m.N) {
		return fmt.Errorf("%w: seq %d, but the run sent %d messages", ErrMalformed, msg.Seq, m.N)
	}
	if msg.Intended < 0 || msg.Sent < 0 || msg.Received < 0 {
		return fmt.Errorf("%w: seq %d: negative time", ErrMalformed, msg.Seq)
	}
	if !msg.Completed() {
		if len(msg.Stages) != 0 {
			return fmt.Errorf("%w: seq %d: lost (received 0) yet has %d stage records", ErrMalformed, msg.Seq, len(msg.Stages))
		}
		return nil
	}
	if msg.ID == "" {
		return fmt.Errorf("%w: seq %d: completed without a correlation id", ErrMalformed, msg.Seq)
	}
	if len(msg.Stages) != m.Stages {
		return fmt.Errorf("%w: seq %d: %d stage records, want %d", ErrMalformed, msg.Seq, len(msg.Stages), m.Stages)
	}
	for i, s := range msg.Stages {
		if s.Stage != i+1 {
			return fmt.Errorf("%w: seq %d: stage record %d is for stage %d", ErrMalformed, msg.Seq, i+1, s.Stage)
		}
		if s.Started < s.Arrived || s.Finished < s.Started {
			return fmt.Errorf("%w: seq %d: stage %s times out of order (arrived %d, started %d, finished %d)",
				ErrMalformed, msg.Seq, pipelines.StageName(i), s.Arrived, s.Started, s.Finished)
		}
	}
	return checkOrder(msg)
}

// checkOrder checks that a completed message's stamps follow its path:
// sent, then each stage's arrival after the previous stage's end, then the
// sink's receipt after the last stage's end. Every stamp of a trace is on
// one clock (the host's monotonic clock, or synchronized wall clocks), so
// a message out of order is corrupt, or its clocks were not synchronized;
// the figures derived from it (waits, transit, wall time, utilization)
// would be wrong or negative.
func checkOrder(msg *Message) error {
	prevField, prev := "sent", msg.Sent
	for i, s := range msg.Stages {
		if s.Arrived < prev {
			return fmt.Errorf("%w: seq %d: stage %s arrived %d, before %s %d (stamps out of order)",
				ErrMalformed, msg.Seq, pipelines.StageName(i), s.Arrived, prevField, prev)
		}
		prevField, prev = "stage "+pipelines.StageName(i)+" finished", s.Finished
	}
	if msg.Received < prev {
		return fmt.Errorf("%w: seq %d: received %d, before %s %d (stamps out of order)",
			ErrMalformed, msg.Seq, msg.Received, prevField, prev)
	}
	return nil
}
