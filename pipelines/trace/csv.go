package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/natspipe/natspipe/pipelines"
)

// CSVColumns returns the CSV trace's columns, in order. There is one row per
// message and stage; a lost message has one row with the stage columns
// (stage .. service_ns) empty and received_ns 0. Times are Unix ns.
//
//	variant      the run's variant, e.g. p2
//	seq          the message's sequence number
//	id           its correlation ID (empty when lost)
//	intended_ns  when the source meant to send it (open loop; else the send time)
//	sent_ns      the send time stamped in the envelope (0 when lost)
//	received_ns  when the sink received it (0 when lost)
//	stages       the pipeline's number of stages
//	stage        this row's stage, 1-based
//	worker       the worker that handled the stage
//	defined_ns   the stage's defined time
//	arrived_ns   when the stage received the message
//	started_ns   when its work began
//	finished_ns  when its work ended
//	wait_ns      started_ns - arrived_ns: time queued at the stage
//	service_ns   finished_ns - started_ns: time in the stage's work
func CSVColumns() []string {
	return []string{
		"variant", "seq", "id", "intended_ns", "sent_ns", "received_ns", "stages",
		"stage", "worker", "defined_ns", "arrived_ns", "started_ns", "finished_ns", "wait_ns", "service_ns",
	}
}

const (
	colVariant = iota
	colSeq
	colID
	colIntended
	colSent
	colReceived
	colStages
	colStage
	colWorker
	colDefined
	colArrived
	colStarted
	colFinished
	colWait
	colService
	nCols
)

// WriteCSV writes the trace as CSV with a header row of CSVColumns.
func (t *Trace) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVColumns()); err != nil {
		return err
	}
	stages := t.Meta.Stages
	if stages == 0 {
		stages = len(t.Meta.Durations)
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	row := make([]string, nCols)
	for i := range t.Messages {
		m := &t.Messages[i]
		row[colVariant] = t.Meta.Variant
		row[colSeq] = strconv.FormatUint(m.Seq, 10)
		row[colID] = m.ID
		row[colIntended] = i64(m.Intended)
		row[colSent] = i64(m.Sent)
		row[colReceived] = i64(m.Received)
		row[colStages] = strconv.Itoa(stages)
		if len(m.Stages) == 0 {
			for c := colStage; c < nCols; c++ {
				row[c] = ""
			}
			if err := cw.Write(row); err != nil {
				return err
			}
			continue
		}
		for _, s := range m.Stages {
			var def time.Duration
			if s.Stage >= 1 && s.Stage <= len(t.Meta.Durations) {
				def = t.Meta.Durations[s.Stage-1]
			}
			row[colStage] = strconv.Itoa(s.Stage)
			row[colWorker] = s.Worker
			row[colDefined] = i64(int64(def))
			row[colArrived] = i64(s.Arrived)
			row[colStarted] = i64(s.Started)
			row[colFinished] = i64(s.Finished)
			row[colWait] = i64(int64(s.Wait()))
			row[colService] = i64(int64(s.Service()))
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// tailReader remembers whether its reader reached EOF and the last byte read,
// to tell a truncated file (no final newline) from a malformed one.
type tailReader struct {
	r    io.Reader
	last byte
	eof  bool
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.last = p[n-1]
	}
	if errors.Is(err, io.EOF) {
		t.eof = true
	}
	return n, err
}

// ReadCSV reads a CSV trace from r; name (the file name) prefixes errors,
// which say the line and wrap ErrMalformed or ErrTruncated. A CSV trace has
// no header record: its Meta holds the variant, the stage count, the stage
// durations and the lost messages, and nothing else.
func ReadCSV(r io.Reader, name string) (*Trace, error) {
	tr := &tailReader{r: r}
	cr := csv.NewReader(tr)
	cr.FieldsPerRecord = nCols
	cr.ReuseRecord = true
	t := &Trace{Source: name}
	t.Meta.Format, t.Meta.Version = Format, Version
	truncated := func() bool { return tr.eof && tr.last != '\n' }

	hdr, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:1: %w: empty file, want a header row", name, ErrTruncated)
		}
		return nil, csvErr(name, err, truncated())
	}
	columns := CSVColumns()
	if !slices.Equal(hdr, columns) {
		return nil, fmt.Errorf("%s:1: %w: header row %q, want %q", name, ErrMalformed, hdr, columns)
	}

	var cur *Message // the message whose rows are being read
	curLine := 0
	finish := func(line int, atEOF bool) error {
		if cur == nil {
			return nil
		}
		if cur.Completed() && len(cur.Stages) != t.Meta.Stages {
			kind, at := ErrMalformed, curLine
			if atEOF {
				kind, at = ErrTruncated, line
			}
			return fmt.Errorf("%s:%d: %w: seq %d has %d of %d stage rows", name, at, kind, cur.Seq, len(cur.Stages), t.Meta.Stages)
		}
		var prev *Message
		if n := len(t.Messages); n > 0 {
			prev = &t.Messages[n-1]
		}
		if err := validateMessage(cur, &t.Meta, prev); err != nil {
			return fmt.Errorf("%s:%d: %w", name, curLine, err)
		}
		if !cur.Completed() {
			t.Meta.Lost = append(t.Meta.Lost, cur.Seq)
		} else {
			t.Meta.Completed++
		}
		t.Messages = append(t.Messages, *cur)
		cur = nil
		return nil
	}
	lastLine := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvErr(name, err, truncated())
		}
		line, _ := cr.FieldPos(0)
		lastLine = line
		bad := func(format string, args ...any) error {
			detail := fmt.Sprintf(format, args...)
			// A bad last row in a file without a final newline was cut short.
			if _, err := cr.Read(); errors.Is(err, io.EOF) && truncated() {
				return fmt.Errorf("%s:%d: %w: last line incomplete (no newline at end of file): %s", name, line, ErrTruncated, detail)
			}
			return fmt.Errorf("%s:%d: %w: %s", name, line, ErrMalformed, detail)
		}
		var row [nCols]int64
		for _, c := range []int{colIntended, colSent, colReceived, colStages} {
			v, err := strconv.ParseInt(rec[c], 10, 64)
			if err != nil {
				return nil, bad("column %s: %q is not an integer", columns[c], rec[c])
			}
			row[c] = v
		}
		seq, err := strconv.ParseUint(rec[colSeq], 10, 64)
		if err != nil {
			return nil, bad("column seq: %q is not an integer", rec[colSeq])
		}
		if t.Meta.Stages == 0 {
			if row[colStages] < 1 || row[colStages] > pipelines.MaxStages {
				return nil, bad("column stages: %d out of range 1..%d", row[colStages], pipelines.MaxStages)
			}
			t.Meta.Variant, t.Meta.Stages = rec[colVariant], int(row[colStages])
			t.Meta.Durations = make([]time.Duration, t.Meta.Stages)
		}
		if rec[colVariant] != t.Meta.Variant || int(row[colStages]) != t.Meta.Stages {
			return nil, bad("variant %q with %d stages, earlier rows say %q with %d", rec[colVariant], row[colStages], t.Meta.Variant, t.Meta.Stages)
		}
		if cur != nil && cur.Seq != seq {
			if err := finish(line, false); err != nil {
				return nil, err
			}
		}
		if cur == nil {
			cur = &Message{Seq: seq, ID: rec[colID], Intended: row[colIntended], Sent: row[colSent], Received: row[colReceived]}
			curLine = line
		} else if rec[colID] != cur.ID || row[colIntended] != cur.Intended || row[colSent] != cur.Sent || row[colReceived] != cur.Received {
			return nil, bad("seq %d: message columns differ from its earlier rows", seq)
		}
		if rec[colStage] == "" {
			for c := colStage; c < nCols; c++ {
				if rec[c] != "" {
					return nil, bad("seq %d: row without a stage has column %s set", seq, columns[c])
				}
			}
			if cur.Completed() || len(cur.Stages) > 0 {
				return nil, bad("seq %d: row without a stage for a completed message", seq)
			}
			continue
		}
		for _, c := range []int{colStage, colDefined, colArrived, colStarted, colFinished, colWait, colService} {
			v, err := strconv.ParseInt(rec[c], 10, 64)
			if err != nil {
				return nil, bad("column %s: %q is not an integer", columns[c], rec[c])
			}
			row[c] = v
		}
		if !cur.Completed() {
			return nil, bad("seq %d: stage row for a lost message (received_ns 0)", seq)
		}
		st := Stage{Stage: int(row[colStage]), Worker: rec[colWorker], Arrived: row[colArrived], Started: row[colStarted], Finished: row[colFinished]}
		if st.Stage != len(cur.Stages)+1 {
			return nil, bad("seq %d: stage %d row, want stage %d", seq, st.Stage, len(cur.Stages)+1)
		}
		if st.Stage > t.Meta.Stages {
			return nil, bad("seq %d: stage %d of a %d-stage pipeline", seq, st.Stage, t.Meta.Stages)
		}
		if time.Duration(row[colWait]) != st.Wait() || time.Duration(row[colService]) != st.Service() {
			return nil, bad("seq %d: stage %d: wait_ns/service_ns disagree with the times", seq, st.Stage)
		}
		def := time.Duration(row[colDefined])
		if def < 0 {
			return nil, bad("seq %d: stage %d: defined_ns %d < 0", seq, st.Stage, def)
		}
		if d := &t.Meta.Durations[st.Stage-1]; *d == 0 {
			*d = def
		} else if *d != def {
			return nil, bad("seq %d: stage %d: defined_ns %d, earlier rows say %d", seq, st.Stage, def, *d)
		}
		cur.Stages = append(cur.Stages, st)
	}
	if t.Meta.Stages == 0 {
		return nil, fmt.Errorf("%s:%d: %w: no message rows", name, lastLine, ErrTruncated)
	}
	if truncated() {
		return nil, fmt.Errorf("%s:%d: %w: last line incomplete (no newline at end of file)", name, lastLine, ErrTruncated)
	}
	if err := finish(lastLine, true); err != nil {
		return nil, err
	}
	t.Meta.Messages = len(t.Messages)
	return t, nil
}

func csvErr(name string, err error, truncated bool) error {
	var pe *csv.ParseError
	line := 0
	if errors.As(err, &pe) {
		line, err = pe.Line, pe.Err
	}
	if truncated {
		return fmt.Errorf("%s:%d: %w: last line incomplete (no newline at end of file): %v", name, line, ErrTruncated, err)
	}
	return fmt.Errorf("%s:%d: %w: %v", name, line, ErrMalformed, err)
}
