package trace

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p0"
)

// handResult is a 3-stage open-loop run of 4 messages, seq 2 lost.
func handResult() *pipelines.Result {
	start := time.Unix(1700000000, 0)
	t0 := start.UnixNano()
	ms := int64(time.Millisecond)
	rec := func(seq int, worker string) pipelines.Record {
		at := t0 + int64(seq)*10*ms
		r := pipelines.Record{Intended: at - ms, Received: at + 9*ms}
		r.ID, r.Seq, r.Sent = "id-"+string(rune('a'+seq)), uint64(seq), at
		for i := 0; i < 3; i++ {
			base := at + int64(i)*3*ms
			r.Stages = append(r.Stages, pipelines.StageRecord{
				Stage: i + 1, Worker: worker + pipelines.StageName(i),
				Arrived: base, Started: base + ms, Finished: base + 2*ms + int64(seq),
			})
		}
		return r
	}
	recs := []pipelines.Record{rec(0, "w1-"), rec(1, "w2-"), {Intended: t0 + 19*ms}, rec(3, "w1-")}
	return &pipelines.Result{
		Variant:   "p4",
		Transport: "kafka",
		Broker:    "kfake",
		Spec:      pipelines.Spec{Durations: []time.Duration{ms2(1), ms2(1), ms2(1)}, Work: pipelines.Sleep, PayloadSize: 8},
		Rate:      100,
		Bound:     math.Inf(1),
		Elapsed:   50 * time.Millisecond,
		Records:   append(recs, pipelines.Record{}),
		Account: pipelines.Account{
			N:         5, // seq 4 never sent
			Stages:    3,
			Start:     start,
			Completed: 3,
			Lost:      []uint64{2},
		},
		Throughput: 75,
	}
}

func ms2(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// checkSame fails unless tr holds res's records exactly.
func checkSame(t *testing.T, res *pipelines.Result, tr *Trace) {
	t.Helper()
	sent := 0
	for i := range res.Records {
		r := &res.Records[i]
		if !r.Completed() && r.Intended == 0 {
			continue
		}
		if sent >= len(tr.Messages) {
			t.Fatalf("trace has %d messages, want more", len(tr.Messages))
		}
		m := tr.Messages[sent]
		sent++
		if m.Seq != uint64(i) || m.Intended != r.Intended || m.Received != r.Received {
			t.Errorf("seq %d: got %+v, want record %+v", i, m, *r)
		}
		if !r.Completed() {
			if len(m.Stages) != 0 || m.ID != "" {
				t.Errorf("lost seq %d: got %+v", i, m)
			}
			continue
		}
		if m.ID != r.ID || m.Sent != r.Sent || len(m.Stages) != len(r.Stages) {
			t.Fatalf("seq %d: got %+v, want %+v", i, m, *r)
		}
		for j, s := range r.Stages {
			want := Stage{Stage: s.Stage, Worker: s.Worker, Arrived: s.Arrived, Started: s.Started, Finished: s.Finished}
			if m.Stages[j] != want {
				t.Errorf("seq %d stage %d: got %+v, want %+v", i, j+1, m.Stages[j], want)
			}
		}
	}
	if sent != len(tr.Messages) {
		t.Errorf("trace has %d messages, want %d", len(tr.Messages), sent)
	}
}

func roundTrip(t *testing.T, res *pipelines.Result) {
	t.Helper()
	dir := t.TempDir()
	if err := WriteDir(dir, "run", res); err != nil {
		t.Fatal(err)
	}
	j, err := ReadFile(filepath.Join(dir, "run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, res, j)
	want := New(res).Meta
	got := j.Meta
	if !got.Start.Equal(want.Start) {
		t.Errorf("start %v, want %v", got.Start, want.Start)
	}
	got.Start = want.Start
	if got.Transport != res.Transport || got.Broker != res.Broker {
		t.Errorf("transport %q on %q, want %q on %q", got.Transport, got.Broker, res.Transport, res.Broker)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("meta:\n got %+v\nwant %+v", got, want)
	}
	c, err := ReadFile(filepath.Join(dir, "run.csv"))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, res, c)
	if c.Meta.Variant != res.Variant || c.Meta.Stages != res.Spec.Stages() || !reflect.DeepEqual(c.Meta.Durations, res.Spec.Durations) ||
		!reflect.DeepEqual(c.Meta.Lost, want.Lost) || c.Meta.Completed != res.Completed {
		t.Errorf("csv meta %+v, want variant %s, durations %v, lost %v, completed %d", c.Meta, res.Variant, res.Spec.Durations, want.Lost, res.Completed)
	}
	if !reflect.DeepEqual(c.Messages, j.Messages) {
		t.Error("CSV and JSONL messages differ")
	}
}

func TestRoundTripHandBuilt(t *testing.T) {
	res := handResult()
	roundTrip(t, res)
	tr := New(res)
	if len(tr.Messages) != 4 {
		t.Errorf("%d messages, want 4 (seq 4 was never sent)", len(tr.Messages))
	}
	if tr.Meta.Bound != 0 {
		t.Errorf("infinite bound written as %v, want 0", tr.Meta.Bound)
	}
}

func TestRoundTripRealRun(t *testing.T) {
	spec := pipelines.Spec{Durations: []time.Duration{time.Millisecond, 0, time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 16}
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p0", Bound: p0.Bound(spec)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := p0.New(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), p, 30)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, res)
}

func TestWriteEnv(t *testing.T) {
	res := handResult()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	path, err := WriteEnv(getenv, "BenchmarkP4/alloc=1-4-1-1/mode=sync", res, versioned("2.99.0"))
	if err != nil || path != "" {
		t.Fatalf("unset: got %q, %v; want nothing written", path, err)
	}
	env[EnvTrace] = filepath.Join(t.TempDir(), "traces")
	path, err = WriteEnv(getenv, "BenchmarkP4/alloc=1-4-1-1/mode=sync", res, versioned("2.99.0"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(env[EnvTrace], "BenchmarkP4_alloc=1-4-1-1_mode=sync.jsonl"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	tr, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Meta.NATSServer != "2.99.0" {
		t.Errorf("nats server %q, want 2.99.0", tr.Meta.NATSServer)
	}
	if _, err := os.Stat(strings.TrimSuffix(path, ".jsonl") + ".csv"); err != nil {
		t.Error(err)
	}
}

func TestDirFromEnvResolvesAgainstModuleRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(root, "pipelines", "p4")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(pkg) // as go test runs a package's binary
	for value, want := range map[string]string{
		"":                       "",
		"traces":                 filepath.Join(root, "traces"),
		"out/traces":             filepath.Join(root, "out", "traces"),
		"../x":                   filepath.Join(filepath.Dir(root), "x"),
		filepath.Join(root, "a"): filepath.Join(root, "a"),
	} {
		got, err := DirFromEnv(func(k string) string {
			if k == EnvTrace {
				return value
			}
			return ""
		})
		if err != nil || got != want {
			t.Errorf("%s=%q: got %q, %v; want %q", EnvTrace, value, got, err, want)
		}
	}
}

func TestDirFromEnvWithoutModule(t *testing.T) {
	dir := t.TempDir()
	if moduleRoot(dir) != "" {
		t.Skipf("a go.mod above %s", dir)
	}
	t.Chdir(dir)
	got, err := DirFromEnv(func(string) string { return "traces" })
	if err != nil || got != "traces" {
		t.Errorf("got %q, %v; want traces, relative to the working directory", got, err)
	}
}

type versioned string

func (v versioned) ServerVersion() string            { return string(v) }
func (versioned) Send(context.Context, []byte) error { return nil }
func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkP4/alloc=1-4-1-1/work=sleep": "BenchmarkP4_alloc=1-4-1-1_work=sleep",
		"a b:c*?":                              "a_b_c__",
		"../..":                                "_",
		"":                                     "trace",
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// traceBytes returns the hand-built trace in both formats.
func traceBytes(t *testing.T) (jsonl, csv []byte) {
	t.Helper()
	tr := New(handResult())
	var j, c bytes.Buffer
	if err := tr.WriteJSONL(&j); err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	return j.Bytes(), c.Bytes()
}

// lines splits b after each newline, keeping them.
func lines(b []byte) []string { return strings.SplitAfter(string(b), "\n") }

func TestReadErrors(t *testing.T) {
	jsonl, csvData := traceBytes(t)
	jl, cl := lines(jsonl), lines(csvData)
	join := func(ls []string) string { return strings.Join(ls, "") }
	replace := func(ls []string, i int, s string) string {
		c := append([]string(nil), ls...)
		c[i] = s
		return join(c)
	}
	type tc struct {
		name, data string
		kind       error
		want       string // in the message, after "name:"
	}
	jsonCases := []tc{
		{"empty", "", ErrTruncated, "t.jsonl:1: "},
		{"no header", join(jl[1:]), ErrMalformed, "t.jsonl:1: "},
		{"bad json", replace(jl, 2, "{\"type\":\"msg\",\"seq\":\n"), ErrMalformed, "t.jsonl:3: "},
		{"cut mid-line", join(jl[:3]) + jl[3][:len(jl[3])/2], ErrTruncated, "t.jsonl:4: "},
		{"cut at line end", join(jl[:3]), ErrTruncated, "t.jsonl:3: truncated trace: file ends after 2 of 4"},
		{"seq order", join(jl[:2]) + jl[1] + join(jl[3:]), ErrMalformed, "t.jsonl:3: "},
		{"stage times", replace(jl, 1, strings.Replace(jl[1], `"started":1700000000001000000`, `"started":1600000000000000000`, 1)), ErrMalformed, "t.jsonl:2: "},
		{"version", strings.Replace(join(jl), `"version":1`, `"version":9`, 1), ErrMalformed, "t.jsonl:1: "},
		{"extra line", join(jl) + jl[1], ErrMalformed, "t.jsonl:6: "},
		{"lost with stages", replace(jl, 3, regexp.MustCompile(`"received":\d+`).ReplaceAllString(strings.Replace(jl[2], `"seq":1,`, `"seq":2,`, 1), `"received":0`)), ErrMalformed, "t.jsonl:4: "},
	}
	for _, c := range jsonCases {
		_, err := ReadJSONL(strings.NewReader(c.data), "t.jsonl")
		if !errors.Is(err, c.kind) || !strings.Contains(fmtErr(err), c.want) {
			t.Errorf("jsonl %s: got %v, want %v containing %q", c.name, err, c.kind, c.want)
		}
	}
	// CSV: line 1 header, 2-4 seq 0, 5-7 seq 1, 8 seq 2 (lost), 9-11 seq 3.
	csvCases := []tc{
		{"empty", "", ErrTruncated, "t.csv:1: "},
		{"header", replace(cl, 0, "variant,seq\n"), ErrMalformed, "t.csv:1: "},
		{"not a number", replace(cl, 5, strings.Replace(cl[5], ",1700000000", ",17x0000000", 1)), ErrMalformed, "t.csv:6: "},
		{"missing stage row", join(cl[:3]) + join(cl[4:]), ErrMalformed, "t.csv:2: "},
		{"cut mid-line", join(cl[:6]) + cl[6][:len(cl[6])/2], ErrTruncated, "t.csv:7: "},
		{"cut in last field", join(cl[:6]) + cl[6][:len(cl[6])-3], ErrTruncated, "t.csv:7: "},
		{"cut at line end", join(cl[:10]), ErrTruncated, "t.csv:10: truncated trace: seq 3 has 2 of 3"},
		{"derived columns", replace(cl, 1, setField(cl[1], colWait, "999")), ErrMalformed, "t.csv:2: "},
		{"wrong field count", replace(cl, 3, "p4,0\n"), ErrMalformed, "t.csv:4: "},
	}
	for _, c := range csvCases {
		_, err := ReadCSV(strings.NewReader(c.data), "t.csv")
		if !errors.Is(err, c.kind) || !strings.Contains(fmtErr(err), c.want) {
			t.Errorf("csv %s: got %v, want %v containing %q", c.name, err, c.kind, c.want)
		}
	}
}

// setField sets field i of a CSV line.
func setField(line string, i int, v string) string {
	f := strings.Split(strings.TrimSuffix(line, "\n"), ",")
	f[i] = v
	return strings.Join(f, ",") + "\n"
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadFile(filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("missing file: no error")
	}
	p := filepath.Join(dir, "x.txt")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), "x.txt") {
		t.Errorf("unknown extension: %v", err)
	}
}

// TestHeaderAccount checks that the header carries the run's whole account:
// late, unaccounted, duplicate and stray messages by seq, the early end and
// the worker incidents, and that they read back.
func TestHeaderAccount(t *testing.T) {
	res := handResult()
	res.Completed, res.Lost, res.Unaccounted = 3, nil, []uint64{2}
	res.Late, res.LateSeqs = 1, []uint64{3}
	res.Duplicates, res.DuplicateSeqs = 1, []uint64{1}
	res.Strays, res.StrayList = 1, []pipelines.Stray{{ID: "other", Seq: 9}}
	res.Unsent, res.EndedBy, res.LossTimeout = 1, "fault: server gone", 5*time.Second
	res.Redeliveries = map[string]int{"S2": 3, "done": 1}
	res.Incidents = []pipelines.Incident{{At: res.Start.Add(time.Second), Worker: "p4-S2-w2", Kind: pipelines.WorkerUnresponsive, For: 2 * time.Second, Held: 3}}
	var b bytes.Buffer
	if err := New(res).WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadJSONL(&b, "account.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Meta
	if !reflect.DeepEqual(m.LateSeqs, []uint64{3}) || !reflect.DeepEqual(m.Unaccounted, []uint64{2}) || m.Unsent != 1 ||
		!reflect.DeepEqual(m.DuplicateSeqs, []uint64{1}) || !reflect.DeepEqual(m.StrayList, []Stray{{ID: "other", Seq: 9}}) ||
		m.EndedBy != res.EndedBy || m.LossTimeout != res.LossTimeout || len(m.Lost) != 0 ||
		!reflect.DeepEqual(m.Redeliveries, res.Redeliveries) {
		t.Errorf("header account %+v", m)
	}
	if len(m.Incidents) != 1 || m.Incidents[0].Worker != "p4-S2-w2" || m.Incidents[0].Kind != "unresponsive" ||
		m.Incidents[0].Held != 3 || !strings.Contains(m.Incidents[0].Text, "unresponsive for 2s") {
		t.Errorf("incidents %+v", m.Incidents)
	}
}

// accountResult is handResult with every set of the account filled in:
// lost, late, unaccounted, never sent, duplicates, strays, rejections, a
// violation, an early end and incidents, on a run that started now (so its
// times are on this process's clocks, as a real run's are).
func accountResult() *pipelines.Result {
	res := handResult()
	start := time.Now()
	res.Account = pipelines.Account{
		N: 5, Stages: 3, Start: start, Completed: 3,
		Lost: []uint64{2}, Late: 1, LateSeqs: []uint64{3},
		Unaccounted: []uint64{4}, Unsent: 0,
		Duplicates: 2, DuplicateSeqs: []uint64{1, 0},
		Strays: 3, StrayList: []pipelines.Stray{{ID: "other", Seq: 9}, {ID: "x", Seq: 1}},
		Rejected: 1, RejectErrs: []string{"S2: not an envelope"},
		Violations: []string{"seq 1: stage S2 finished in 0.9ms, before its 1ms"},
		Incidents: []pipelines.Incident{
			{At: start.Add(1234 * time.Millisecond), Worker: "p4-S2-w2", Kind: pipelines.WorkerUnresponsive, For: 2 * time.Second, Held: 3},
			{At: start.Add(2 * time.Second), Worker: "p4-S2-w2", Kind: pipelines.WorkerBack, For: 2800 * time.Millisecond, Held: 0},
			{At: start.Add(3 * time.Second), Worker: "p4-S3-w1", Kind: pipelines.WorkerDied, Held: -1, Detail: "process p4-S3-w1: killed by signal killed"},
		},
		EndedBy:     "fault: server gone",
		LossTimeout: 5 * time.Second,
	}
	return res
}

// TestAccountRoundTrip: a Result's account, written into a trace's header
// and read back, is the same account: the same sets, and the same lines,
// word for word, as Result.Report prints under its summary.
func TestAccountRoundTrip(t *testing.T) {
	res := accountResult()
	var b bytes.Buffer
	if err := New(res).WriteJSONL(&b); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadJSONL(&b, "account.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Meta.Account()
	report := strings.Split(res.Report(), "\n")[1:]
	if lines := got.Lines(); !reflect.DeepEqual(lines, report) {
		t.Errorf("account lines from the trace:\n%s\nwant Report's:\n%s", strings.Join(lines, "\n"), strings.Join(report, "\n"))
	}
	if len(report) != 11 || !strings.HasPrefix(report[6], "incident at +1.234s: worker p4-S2-w2 unresponsive") {
		t.Errorf("Report's account lines:\n%s", strings.Join(report, "\n"))
	}
	if got.Counts() != res.Account.Counts() {
		t.Errorf("counts %q, want %q", got.Counts(), res.Account.Counts())
	}
	// The times come back as wall times: equal instants, compared apart.
	want := res.Account
	if !got.Start.Equal(want.Start) {
		t.Errorf("start %v, want %v", got.Start, want.Start)
	}
	for i := range got.Incidents {
		if !got.Incidents[i].At.Equal(want.Incidents[i].At) {
			t.Errorf("incident %d at %v, want %v", i, got.Incidents[i].At, want.Incidents[i].At)
		}
		got.Incidents[i].At = want.Incidents[i].At
	}
	got.Start = want.Start
	if !reflect.DeepEqual(got, want) {
		t.Errorf("account read back:\n got %+v\nwant %+v", got, want)
	}
}

// TestAccountOldHeader: a header written before the account's lists
// existed (a lost list and late, duplicate and stray counts only) still
// reads, and its account says what it has.
func TestAccountOldHeader(t *testing.T) {
	const old = `{"type":"header","format":"natspipe-trace","version":1,"variant":"p4","stages":2,"durations_ns":[1000000,1000000],` +
		`"n":4,"messages":2,"completed":1,"lost":[1],"late":2,"duplicates":1,"strays":1,"rejected":0}` + "\n" +
		`{"type":"msg","seq":0,"id":"a","intended":10,"sent":10,"received":50,"stages":[{"stage":1,"worker":"w1","arrived":11,"started":12,"finished":20},{"stage":2,"worker":"w2","arrived":21,"started":22,"finished":40}]}` + "\n" +
		`{"type":"msg","seq":1,"intended":20,"sent":0,"received":0}` + "\n"
	tr, err := ReadJSONL(strings.NewReader(old), "old.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	a := tr.Meta.Account()
	want := []string{
		"lost (1, never reached S2): seq 1",
		"late (2, back after the loss timeout)",
		"duplicates (1)",
		"strays (1, envelopes of no message of this run, id/seq)",
	}
	if got := a.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("old header's account:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := a.Counts(); c != "lost 1, late 2, duplicates 1, strays 1, rejected 0" {
		t.Errorf("counts %q", c)
	}
}
