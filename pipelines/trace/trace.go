// Package trace writes and reads natspipe traces: one record per message of a
// run, with every stage's worker and arrival, start and end times, so a run
// can be analysed after the fact (see package analysis and "natspipe analyze").
//
// Two formats carry the same messages:
//
//   - JSON Lines (.jsonl), the complete format: a header line describing the
//     run (variant, spec, window or rate, bound, NATS server version, start
//     time, the account of lost, late, duplicate, stray and unaccounted
//     messages by seq, worker incidents), then one line per message.
//   - CSV (.csv), for spreadsheets and notebooks: one row per message and
//     stage, with the derived wait and service times. It has no header
//     record, so the run's bound, window and rate are not in it.
//
// Times are stamps, int64 nanoseconds on the stamp clock (see
// pipelines.Stamp: the host's monotonic clock by default, Unix time with
// NATSPIPE_CLOCK=wall); the JSONL header says which and how to convert them
// to Unix time. Durations are nanoseconds. The formats are documented in
// full in docs/analysis.md.
package trace

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
)

// Format and Version identify the JSON Lines trace format.
const (
	Format  = "natspipe-trace"
	Version = 1
)

// EnvTrace names the environment variable that, set to a directory, makes
// benchmarks write a trace of each run there (see WriteEnv).
const EnvTrace = "NATSPIPE_TRACE"

// Errors a reader returns, wrapped with the file and line; test with errors.Is.
var (
	// ErrMalformed: a line or row that is not a valid trace record.
	ErrMalformed = errors.New("malformed trace")
	// ErrTruncated: the file ends before the trace does.
	ErrTruncated = errors.New("truncated trace")
)

// Trace is one run: what it was and every message it sent.
type Trace struct {
	Meta     Meta
	Messages []Message // ascending by Seq
	// Source is the file the trace was read from; empty for a trace built by New.
	Source string
}

// Meta describes a run. Zero values mean unknown: a trace read from CSV
// knows only the variant, the stage count and the stage durations.
type Meta struct {
	Format  string `json:"format"`  // Format
	Version int    `json:"version"` // Version
	Variant string `json:"variant"`
	// Transport is the broker transport ("core", "js", "amqp", "kafka");
	// empty for P0 and for traces from before transports were recorded
	// (which ran over core NATS).
	Transport string `json:"transport,omitempty"`
	// Broker names what served the transport when it was not the real
	// broker ("kfake"): see pipelines.RunConfig.Broker.
	Broker    string          `json:"broker,omitempty"`
	Stages    int             `json:"stages"`
	Durations []time.Duration `json:"durations_ns"` // each stage's defined time, S1 first (a distribution's mean)
	// Service is each stage's service-time distribution as
	// pipelines.ParseServiceTime reads it, when any stage is not constant.
	Service  []string `json:"service,omitempty"`
	Work     string   `json:"work"` // "sleep" or "cpu"
	Payload  int      `json:"payload_bytes"`
	N        int      `json:"n"`        // messages the run was asked to send
	Messages int      `json:"messages"` // message records that follow the header
	Window   int      `json:"window"`   // closed-loop window; 0 for open loop
	Rate     float64  `json:"rate"`     // open-loop rate, msgs/s; 0 for closed loop
	// Bound is the configuration's theoretical throughput, msgs/s; 0 when
	// unknown or unbounded.
	Bound float64 `json:"bound"`
	// Start is when the run started, wall time; StartStamp the same
	// instant on the stamp clock (0 when unknown).
	Start      time.Time `json:"start"`
	StartStamp int64     `json:"start_stamp"`
	// Clock is the stamp clock the message times are on: "monotonic" (the
	// host's, the default) or "wall" (Unix ns); see pipelines.Stamp.
	// WallOffset added to a stamp gives Unix ns.
	Clock      string        `json:"clock"`
	WallOffset int64         `json:"wall_offset_ns"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Completed  int           `json:"completed"` // messages that came back, late ones included
	Lost       []uint64      `json:"lost"`      // seqs declared lost that never came back
	Late       int           `json:"late"`      // messages declared lost that came back after all
	Duplicates int           `json:"duplicates"`
	// AtLeastOnce and Redeliveries: see pipelines.Account.
	AtLeastOnce  bool           `json:"at_least_once,omitempty"`
	Redeliveries map[string]int `json:"redeliveries,omitempty"`
	Strays       int            `json:"strays"`
	Rejected     int            `json:"rejected"`
	Violations   []string       `json:"violations,omitempty"`
	// RejectErrs holds the first few rejections of malformed messages (of
	// the Rejected).
	RejectErrs []string `json:"reject_errs,omitempty"`
	// LateSeqs lists the late messages' seqs (completed, in the message
	// records, but after LossTimeout).
	LateSeqs []uint64 `json:"late_seqs,omitempty"`
	// Unaccounted lists the messages sent and neither back nor declared
	// lost when the run ended early (see EndedBy); their records have no
	// stages, like lost ones. Unsent counts the messages never sent.
	Unaccounted []uint64 `json:"unaccounted,omitempty"`
	Unsent      int      `json:"unsent,omitempty"`
	// DuplicateSeqs lists the seq of each duplicate completion (the first
	// pipelines.MaxListed).
	DuplicateSeqs []uint64 `json:"duplicate_seqs,omitempty"`
	// StrayList lists the strays' correlation IDs and seqs (the first
	// pipelines.MaxListed).
	StrayList []Stray `json:"stray_list,omitempty"`
	// Incidents are what happened to workers during the run: deaths, spells
	// of unresponsiveness and returns.
	Incidents []Incident `json:"incidents,omitempty"`
	// EndedBy says why the run ended early ("fault: ...", "timeout: ...");
	// empty when it ran to its end.
	EndedBy string `json:"ended_by,omitempty"`
	// LossTimeout is how long after its send a message was declared lost.
	LossTimeout time.Duration `json:"loss_timeout_ns,omitempty"`
	// Throughput is the run's steady-state msgs/s as the runner measured
	// it; 0 when not finite.
	Throughput float64 `json:"throughput"`
	// NATSServer is the NATS server's version; empty when unknown or when
	// the variant uses no NATS (P0).
	NATSServer string `json:"nats_server,omitempty"`
	// GoVersion and GOMAXPROCS describe the process that wrote the trace.
	GoVersion  string `json:"go,omitempty"`
	GOMAXPROCS int    `json:"gomaxprocs,omitempty"`
}

// Stray is a completion that belonged to no message of the run.
type Stray struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
}

// Incident is something that happened to a worker during the run (see
// pipelines.Incident).
type Incident struct {
	At     int64  `json:"at"` // stamp
	Worker string `json:"worker"`
	Kind   string `json:"kind"` // "died", "unresponsive", "stuck", "back"
	// For is how long the worker had been silent (unresponsive, stuck), or
	// was (back).
	For    time.Duration `json:"for_ns,omitempty"`
	Held   int           `json:"held"` // messages it held at its last answer; -1 unknown
	Detail string        `json:"detail,omitempty"`
	Text   string        `json:"text"` // the whole incident in words
}

// OpenLoop reports whether the run's source sent at a fixed rate.
func (m *Meta) OpenLoop() bool { return m.Rate > 0 }

// SetAccount fills in the header's account of the run's messages from a
// (N, Start and StartStamp, Completed, the lost, late, unaccounted, unsent,
// duplicate and stray messages, rejections, violations, incidents, the
// early end and the loss timeout), converting times to stamps on this
// process's stamp clock: call it in the process that ran the run. New
// calls it; Account is its inverse.
func (m *Meta) SetAccount(a *pipelines.Account) {
	m.N, m.Start, m.StartStamp = a.N, a.Start, 0
	if !a.Start.IsZero() {
		m.StartStamp = pipelines.Stamp(a.Start)
	}
	m.Completed = a.Completed
	m.Lost = clone(a.Lost)
	m.Late, m.LateSeqs = a.Late, clone(a.LateSeqs)
	m.Unaccounted, m.Unsent = clone(a.Unaccounted), a.Unsent
	m.Duplicates, m.DuplicateSeqs = a.Duplicates, clone(a.DuplicateSeqs)
	m.Strays, m.StrayList = a.Strays, nil
	for _, st := range a.StrayList {
		m.StrayList = append(m.StrayList, Stray{ID: st.ID, Seq: st.Seq})
	}
	m.Rejected, m.RejectErrs = a.Rejected, clone(a.RejectErrs)
	m.Violations = clone(a.Violations)
	m.Incidents = nil
	for _, in := range a.Incidents {
		at := int64(0)
		if !in.At.IsZero() {
			at = pipelines.Stamp(in.At)
		}
		m.Incidents = append(m.Incidents, Incident{At: at, Worker: in.Worker, Kind: string(in.Kind),
			For: in.For, Held: in.Held, Detail: in.Detail, Text: in.String()})
	}
	m.EndedBy, m.LossTimeout = a.EndedBy, a.LossTimeout
	m.AtLeastOnce, m.Redeliveries = a.AtLeastOnce, maps.Clone(a.Redeliveries)
}

// Account is the run's account of its messages as the header records it,
// the Account its Result had (see pipelines.Account): Result.Report's
// lines and Account.Lines of it are the same text. An incident's time
// becomes Start plus its stamp's distance from StartStamp, so its time
// into the run is the run's own; without both it has none.
//
// A header from before a field existed (no late_seqs, unaccounted,
// duplicate_seqs, stray_list, incidents, ended_by, loss_timeout_ns) gives
// what it has: the counts without their lists. A CSV trace has no header:
// its Lost holds every message that did not come back, and N is 0.
func (m *Meta) Account() pipelines.Account {
	a := pipelines.Account{
		N:             m.N,
		Stages:        m.Stages,
		Start:         m.Start,
		Completed:     m.Completed,
		Lost:          clone(m.Lost),
		Late:          m.Late,
		LateSeqs:      clone(m.LateSeqs),
		Unaccounted:   clone(m.Unaccounted),
		Unsent:        m.Unsent,
		Duplicates:    m.Duplicates,
		DuplicateSeqs: clone(m.DuplicateSeqs),
		Strays:        m.Strays,
		Rejected:      m.Rejected,
		RejectErrs:    clone(m.RejectErrs),
		Violations:    clone(m.Violations),
		EndedBy:       m.EndedBy,
		LossTimeout:   m.LossTimeout,
		AtLeastOnce:   m.AtLeastOnce,
		Redeliveries:  maps.Clone(m.Redeliveries),
	}
	if a.Stages == 0 {
		a.Stages = len(m.Durations)
	}
	for _, st := range m.StrayList {
		a.StrayList = append(a.StrayList, pipelines.Stray{ID: st.ID, Seq: st.Seq})
	}
	for _, in := range m.Incidents {
		var at time.Time
		if in.At != 0 && m.StartStamp != 0 && !m.Start.IsZero() {
			at = m.Start.Add(time.Duration(in.At - m.StartStamp))
		}
		a.Incidents = append(a.Incidents, pipelines.Incident{At: at, Worker: in.Worker,
			Kind: pipelines.IncidentKind(in.Kind), For: in.For, Held: in.Held, Detail: in.Detail})
	}
	return a
}

// Message is one message's account.
type Message struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id,omitempty"` // correlation ID; empty for a lost message
	// Intended is when the source meant to send it (open loop); the send
	// time otherwise.
	Intended int64 `json:"intended"`
	// Sent is the send time stamped in the envelope; 0 for a lost message,
	// whose envelope never came back.
	Sent int64 `json:"sent"`
	// Received is when the sink received it; 0 if lost.
	Received int64   `json:"received"`
	Stages   []Stage `json:"stages,omitempty"`
}

// Completed reports whether the message came back.
func (m *Message) Completed() bool { return m.Received != 0 }

// Stage is what one stage recorded on a message.
type Stage struct {
	Stage    int    `json:"stage"` // 1-based
	Worker   string `json:"worker"`
	Arrived  int64  `json:"arrived"`
	Started  int64  `json:"started"`
	Finished int64  `json:"finished"`
	// Drawn is the time a stage with a service-time distribution drew for
	// this message, ns (pipelines.StageRecord.Drawn); 0 for a constant
	// stage. JSONL only: the CSV's defined_ns is the stage's mean.
	Drawn int64 `json:"drawn_ns,omitempty"`
}

// Wait is the time the message queued at the stage: Started - Arrived.
func (s Stage) Wait() time.Duration { return time.Duration(s.Started - s.Arrived) }

// Service is the stage's work time: Finished - Started.
func (s Stage) Service() time.Duration { return time.Duration(s.Finished - s.Started) }

// New builds the trace of res. Messages never sent (a run cut short) are
// left out; lost messages are kept, without stages. It records this
// process's stamp clock, so call it in the process that ran res.
func New(res *pipelines.Result) *Trace {
	m := Meta{
		Format:     Format,
		Version:    Version,
		Variant:    res.Variant,
		Transport:  res.Transport,
		Broker:     res.Broker,
		Stages:     res.Spec.Stages(),
		Durations:  append([]time.Duration(nil), res.Spec.Durations...),
		Work:       string(res.Spec.Work),
		Payload:    res.Spec.PayloadSize,
		Window:     res.Window,
		Rate:       res.Rate,
		Bound:      finite(res.Bound),
		Clock:      pipelines.StampClock(),
		WallOffset: pipelines.WallOffset(),
		Elapsed:    res.Elapsed,
		Throughput: finite(res.Throughput),
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	for _, st := range res.Spec.Service {
		m.Service = append(m.Service, st.String())
	}
	m.SetAccount(&res.Account)
	t := &Trace{Meta: m}
	for i := range res.Records {
		r := &res.Records[i]
		if !r.Completed() && r.Intended == 0 {
			continue // never sent
		}
		msg := Message{Seq: uint64(i), Intended: r.Intended, Received: r.Received}
		if r.Completed() {
			msg.ID, msg.Sent = r.ID, r.Sent
			msg.Stages = make([]Stage, len(r.Stages))
			for j, s := range r.Stages {
				msg.Stages[j] = Stage{Stage: s.Stage, Worker: s.Worker, Arrived: s.Arrived, Started: s.Started, Finished: s.Finished, Drawn: s.Drawn}
			}
		}
		t.Messages = append(t.Messages, msg)
	}
	t.Meta.Messages = len(t.Messages)
	return t
}

// clone copies s; nil when s is empty, as the JSON reader leaves an
// omitted list, so a header and its Account compare equal after a round
// trip.
func clone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

func finite(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0
	}
	return x
}

// Save writes the trace as dir/name.jsonl and dir/name.csv, creating dir.
func (t *Trace) Save(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trace %s: %w", name, err)
	}
	base := filepath.Join(dir, name)
	if err := writeFile(base+".jsonl", t.WriteJSONL); err != nil {
		return err
	}
	return writeFile(base+".csv", t.WriteCSV)
}

// WriteDir writes res's trace as dir/name.jsonl and dir/name.csv.
func WriteDir(dir, name string, res *pipelines.Result) error {
	return New(res).Save(dir, name)
}

// WriteEnv writes res's trace into the directory named by NATSPIPE_TRACE,
// as SafeName(name).jsonl and .csv, and returns the JSONL file's path. When
// the variable is unset it does nothing and returns "". getenv nil means
// os.Getenv. s, the run's sender, is asked for the NATS server version: a
// sender with a ServerVersion() string method or a Conn() *nats.Conn method
// (bus.Endpoint) tells it.
//
// A benchmark calls its body several times while testing.B sizes b.N; each
// call overwrites the trace, so the file holds the last, largest run.
func WriteEnv(getenv pipelines.Getenv, name string, res *pipelines.Result, s pipelines.Sender) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dir, err := DirFromEnv(getenv)
	if dir == "" || err != nil {
		return "", err
	}
	path, err := Write(dir, name, res, ServerVersion(s))
	if err != nil {
		return "", fmt.Errorf("%s=%s: %w", EnvTrace, dir, err)
	}
	return path, nil
}

// DirFromEnv returns the directory NATSPIPE_TRACE names for a test or
// benchmark, "" when it is unset. A relative path is resolved against the
// module root (the nearest directory up from the working directory that
// holds go.mod), not the working directory: go test runs each package's
// binary in the package's own directory, so that NATSPIPE_TRACE=traces
// given at the repository's root means its traces/ for every package. With
// no go.mod above, a relative path stays relative to the working
// directory. getenv nil means os.Getenv.
func DirFromEnv(getenv pipelines.Getenv) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dir := getenv(EnvTrace)
	if dir == "" || filepath.IsAbs(dir) {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%s=%s: resolve against the module root: %w", EnvTrace, dir, err)
	}
	if root := moduleRoot(wd); root != "" {
		return filepath.Join(root, dir), nil
	}
	return dir, nil
}

// moduleRoot is the nearest directory from dir upwards holding go.mod, ""
// when there is none.
func moduleRoot(dir string) string {
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// Write writes res's trace, recording serverVersion as the NATS server's
// version ("" when unknown), into dir as SafeName(name).jsonl and .csv,
// creating dir, and returns the JSONL file's path.
func Write(dir, name string, res *pipelines.Result, serverVersion string) (string, error) {
	t := New(res)
	t.Meta.NATSServer = serverVersion
	name = SafeName(name)
	if err := t.Save(dir, name); err != nil {
		return "", err
	}
	return filepath.Join(dir, name+".jsonl"), nil
}

// ServerVersion asks s for the version of the NATS server it publishes to;
// "" when it cannot tell.
func ServerVersion(s any) string {
	switch v := s.(type) {
	case interface{ ServerVersion() string }:
		return v.ServerVersion()
	case interface{ Conn() *nats.Conn }:
		if nc := v.Conn(); nc != nil {
			return nc.ConnectedServerVersion()
		}
	}
	return ""
}

// SafeName turns a benchmark or test name into a file name: letters,
// digits, '.', '-', '_' and '=' are kept, anything else ('/' included)
// becomes '_'.
func SafeName(name string) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '-', r == '_', r == '=':
			return r
		}
		return '_'
	}, name)
	s = strings.Trim(s, ".")
	if s == "" {
		return "trace"
	}
	return s
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("trace: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("trace: close %s: %w", path, err)
	}
	return nil
}
