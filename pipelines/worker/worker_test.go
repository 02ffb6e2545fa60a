package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/internal/procs/procstest"
	"github.com/natspipe/natspipe/internal/syncbuf"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

func TestMain(m *testing.M) {
	Dispatch()
	os.Exit(benchkit.Main(m))
}

func testSpec() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep}
}

func envOf(kv ...string) pipelines.Getenv {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestParseArgs(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := ParseArgs([]string{"-url", "nats://h:4222", "-stage", "s3", "-prefix", "x.y", "-durations", "1,2,3", "-work", "cpu",
		"-mode", "async", "-concurrency", "7", "-name", "box-S3", "-ready-timeout", "3s", "-slowdown", "S3=1ms",
		"-run-concurrency", "7,14, 7"}, &stderr, envOf())
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if cfg.NATS.URL != "nats://h:4222" || cfg.Stage != 2 || cfg.Subjects.Prefix != "x.y" || cfg.Spec.Stages() != 3 || cfg.Spec.Work != pipelines.CPU ||
		cfg.Mode != Async || cfg.Concurrent() != 7 || cfg.Name != "box-S3" || cfg.ReadyTimeout != 3*time.Second ||
		cfg.Spec.Durations[2] != 3*time.Millisecond || cfg.Spec.Slowdown[2] != time.Millisecond || !slices.Equal(cfg.RunConcurrency, []int{7, 14, 7}) {
		t.Errorf("config %+v", cfg)
	}
	// Defaults, some from the environment.
	cfg, err = ParseArgs([]string{"-stage", "2"}, &stderr, envOf(pipelines.EnvNATSURL, "nats://env:1", pipelines.EnvDurations, "5ms,6ms"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://env:1" || cfg.Stage != 1 || cfg.Spec.Stages() != 2 || cfg.Mode != Sync || cfg.Concurrent() != 1 ||
		cfg.Subjects.Prefix != DefaultPrefix || !strings.HasPrefix(cfg.Name, "S2-") || cfg.Spec.Work != pipelines.Sleep {
		t.Errorf("defaults %+v", cfg)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-stage is required"},
		{[]string{"-stage", "S5"}, "S1..S4"},
		{[]string{"-stage", "S0"}, "S1..S4"},
		{[]string{"-stage", "two"}, "stage"},
		{[]string{"-stage", "S1", "-mode", "fast"}, "-mode"},
		{[]string{"-stage", "S1", "-work", "think"}, "-work"},
		{[]string{"-stage", "S1", "-durations", "10ms,x"}, "-durations"},
		{[]string{"-stage", "S1", "-concurrency", "4"}, "sync mode"},
		{[]string{"-stage", "S1", "-url", "http://h:1"}, "-url"},
		{[]string{"-stage", "S1", "-url", "nats://"}, "-url"},
		{[]string{"-stage", "S1", "-prefix", "a.*"}, "-prefix"},
		{[]string{"-stage", "S1", "extra"}, "unexpected arguments"},
		{[]string{"-stage", "S1", "-ready-timeout", "0s"}, "must be positive"},
		{[]string{"-stage", "S1", "-slowdown", "S9=1ms"}, "-slowdown"},
		{[]string{"-stage", "S1", "-bogus"}, "not defined"},
		{[]string{"-stage", "S1", "-run-concurrency", "1,4,1"}, "3 counts for 4 stages"},
		{[]string{"-stage", "S1", "-run-concurrency", "1,x,1,1"}, "item 2"},
		{[]string{"-stage", "S1", "-run-concurrency", "1,-4,1,1"}, "item 2"},
		{[]string{"-stage", "S1", "-log-level", "trace"}, `-log-level: log level "trace": want debug, info, warn or error`},
		{[]string{"-stage", "S1", "-log-format", "xml"}, `-log-format: log format "xml": want text or json`},
		{[]string{"-stage", "S1", "-variant", "p4 x"}, "-variant"},
		{[]string{"-stage", "S1", "-metrics-addr", "9464"}, `-metrics-addr "9464": want host:port`},
	} {
		stderr.Reset()
		if _, err := ParseArgs(tc.args, &stderr, envOf()); err == nil {
			t.Errorf("%q: accepted", tc.args)
		} else if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: stderr %q does not mention %q", tc.args, stderr.String(), tc.want)
		}
	}
	if _, err := ParseArgs([]string{"-h"}, &stderr, envOf()); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	// A bad level in the environment names the flag it is the default of.
	stderr.Reset()
	if _, err := ParseArgs([]string{"-stage", "S1"}, &stderr, envOf(EnvLogLevel, "loud")); err == nil || !strings.Contains(stderr.String(), `"loud"`) {
		t.Errorf("%s=loud: %v, stderr %q", EnvLogLevel, err, stderr.String())
	}
}

// The log level and format: warn and text by default, from the
// environment, the flags over the environment; the Logger writes to the
// stderr ParseArgs is given.
func TestParseArgsLogging(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args    []string
		env     []string
		level   slog.Level
		jsonOut bool
	}{
		{nil, nil, slog.LevelWarn, false},
		{nil, []string{EnvLogLevel, "DEBUG", EnvLogFormat, "json"}, slog.LevelDebug, true},
		{[]string{"-log-level", "error", "-log-format", "text"}, []string{EnvLogLevel, "debug", EnvLogFormat, "json"}, slog.LevelError, false},
		{[]string{"-log-level", "info"}, nil, slog.LevelInfo, false},
	} {
		var stderr bytes.Buffer
		cfg, err := ParseArgs(append([]string{"-stage", "S2", "-variant", "p4"}, tc.args...), &stderr, envOf(tc.env...))
		if err != nil {
			t.Fatalf("%q %q: %v", tc.args, tc.env, err)
		}
		if cfg.Variant != "p4" {
			t.Errorf("variant %q", cfg.Variant)
		}
		if !cfg.Logger.Enabled(ctx, tc.level) || cfg.Logger.Enabled(ctx, tc.level-1) {
			t.Errorf("%q %q: want level %v", tc.args, tc.env, tc.level)
		}
		cfg.Logger.Error("x", "k", "v")
		if got := strings.HasPrefix(stderr.String(), "{"); got != tc.jsonOut || !strings.Contains(stderr.String(), "k") {
			t.Errorf("%q %q: record %q, want json %v", tc.args, tc.env, stderr.String(), tc.jsonOut)
		}
	}
}

func TestServiceVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3": "1.2.3", "v0.0.0-20260101120000-abcdef123456+dirty": "0.0.0-20260101120000-abcdef123456+dirty",
		"(devel)": "0.0.0-dev", "": "0.0.0-dev", "v1.2": "0.0.0-dev",
	} {
		if got := serviceVersion(in); got != want {
			t.Errorf("serviceVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCrash(t *testing.T) {
	if a, s, err := parseCrash("20:3"); err != nil || a != 20 || s != 3 {
		t.Errorf("parseCrash = %d, %d, %v", a, s, err)
	}
	for _, bad := range []string{"", "20", "x:3", "0:3", "5:0", "5:200"} {
		if _, _, err := parseCrash(bad); err == nil {
			t.Errorf("parseCrash(%q) accepted", bad)
		}
	}
}

// stage1 encodes n envelopes that have passed S1, ready for S2.
func stage1(t *testing.T, spec pipelines.Spec, n int) [][]byte {
	t.Helper()
	step := pipelines.StepsFor(pipelines.Spec{Durations: []time.Duration{0, 0, 0, 0}, Work: spec.Work}, func(int) string { return "test-S1" })[0]
	var msgs [][]byte
	for i := range n {
		env := pipelines.Envelope{ID: "id" + string(rune('A'+i%26)) + time.Now().Format("150405.000000000"), Seq: uint64(i), Sent: pipelines.Now()}
		if err := step.Run(context.Background(), &env, time.Now()); err != nil {
			t.Fatal(err)
		}
		b, err := env.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	return msgs
}

// collector gathers the envelopes published on a subject.
type collector struct {
	mu   sync.Mutex
	envs []pipelines.Envelope
}

func collect(t *testing.T, nc *nats.Conn, subject string) *collector {
	t.Helper()
	c := &collector{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var e pipelines.Envelope
		if e.Decode(m.Data) == nil {
			e.Payload = nil
			c.mu.Lock()
			c.envs = append(c.envs, e)
			c.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = bus.Unlimit(sub)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) wait(t *testing.T, n int) []pipelines.Envelope {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.envs)
		c.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages after 20s", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.envs)
}

// overlap is the most records of stage (0-based) in work at one instant.
func overlap(envs []pipelines.Envelope, stage int) int {
	recs := make([]pipelines.StageRecord, 0, len(envs))
	for _, e := range envs {
		recs = append(recs, e.Stages[stage])
	}
	return pipelines.PeakOverlap(recs)
}

func request(t *testing.T, nc *nats.Conn, subject string) Stats {
	t.Helper()
	m, err := nc.Request(subject, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	var s Stats
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunInProcess(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		conc int
	}{{Sync, 0}, {Async, 3}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			benchkit.CheckLeaks(t)
			srv := natstest.Start(t)
			spec := testSpec()
			subjects := bus.NewSubjects()
			nc, err := bus.Connect(srv.Conn, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			ready := collectRaw(t, nc, ReadySubject(subjects))
			out := collect(t, nc, subjects.Stage(2))
			var log syncbuf.Buffer
			cfg := Config{NATS: srv.Conn, Subjects: subjects, Stage: 1, Spec: spec, Mode: tc.mode, Concurrency: tc.conc, Name: "t-S2",
				Logger: NewLogger(&log, "json", slog.LevelDebug)}
			type result struct {
				s   Stats
				err error
			}
			done := make(chan result, 1)
			go func() {
				s, err := Run(context.Background(), cfg)
				done <- result{s, err}
			}()
			hello := ready.wait(t, 1)[0]
			var hs Stats
			if err := json.Unmarshal(hello, &hs); err != nil || hs.Name != "t-S2" || hs.Stage != 2 || hs.PID != os.Getpid() || hs.Mode != tc.mode {
				t.Fatalf("hello %s: %v", hello, err)
			}
			const n = 30
			for _, m := range stage1(t, spec, n) {
				if err := nc.Publish(subjects.Stage(1), m); err != nil {
					t.Fatal(err)
				}
			}
			envs := out.wait(t, n)
			for _, e := range envs {
				r := e.Stages[1]
				if r.Worker != "t-S2" || time.Duration(r.Finished-r.Started) < spec.Durations[1] || r.Arrived > r.Started {
					t.Errorf("seq %d: record %+v", e.Seq, r)
				}
			}
			want := cfg.Concurrent()
			if o := overlap(envs, 1); o != want {
				t.Errorf("at most %d messages in stage work at once, want %d (%s x%d)", o, want, tc.mode, tc.conc)
			}
			// Messages waited in the worker: their arrival precedes their start.
			waited := 0
			for _, e := range envs {
				if e.Stages[1].Started-e.Stages[1].Arrived > int64(time.Millisecond) {
					waited++
				}
			}
			if waited == 0 {
				t.Error("no message shows a wait between arrival and start")
			}
			if s := request(t, nc, StatsSubject(subjects)); s.Handled != n || s.Stopped {
				t.Errorf("stats %+v, want %d handled", s, n)
			}
			final := request(t, nc, StopSubject(subjects, 1))
			if !final.Stopped || final.Handled != n {
				t.Errorf("stop reply %+v", final)
			}
			select {
			case r := <-done:
				if r.err != nil || r.s.Handled != n {
					t.Errorf("Run = %+v, %v", r.s, r.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after the stop request")
			}
			checkDebugLog(t, log.String(), subjects.Prefix, envs)
		})
	}
}

// logRecord is a worker's JSON log record, the fields the tests read.
type logRecord struct {
	Level    string        `json:"level"`
	Msg      string        `json:"msg"`
	Pipeline string        `json:"pipeline"`
	Stage    string        `json:"stage"`
	Worker   string        `json:"worker"`
	CID      string        `json:"cid"`
	Seq      uint64        `json:"seq"`
	Wait     time.Duration `json:"wait"`
	Service  time.Duration `json:"service"`
	Handled  uint64        `json:"handled"`
}

func parseRecords(t *testing.T, log string) []logRecord {
	t.Helper()
	var out []logRecord
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// checkDebugLog checks a debug-level worker log (t-S2 at stage S2 of
// prefix) against the envelopes it handed on: ready, one handled record
// per message with its correlation ID, seq, wait and service time as the
// stage record says, and stopped with the count; every record carrying
// the pipeline, stage and worker.
func checkDebugLog(t *testing.T, log, prefix string, envs []pipelines.Envelope) {
	t.Helper()
	byID := map[string]pipelines.Envelope{}
	for _, e := range envs {
		byID[e.ID] = e
	}
	seen := map[string]bool{}
	var msgs []string
	for _, r := range parseRecords(t, log) {
		if r.Pipeline != prefix || r.Stage != "S2" || r.Worker != "t-S2" {
			t.Errorf("record %+v: want pipeline %s, stage S2, worker t-S2", r, prefix)
		}
		if r.Msg != "handled" {
			msgs = append(msgs, r.Level+" "+r.Msg)
			if r.Msg == "stopped" && r.Handled != uint64(len(envs)) {
				t.Errorf("stopped record says handled %d, want %d", r.Handled, len(envs))
			}
			continue
		}
		e, ok := byID[r.CID]
		if !ok || seen[r.CID] || r.Level != "DEBUG" {
			t.Errorf("handled record %+v: not one of the messages, a second time, or not at debug", r)
			continue
		}
		seen[r.CID] = true
		rec := e.Stages[1]
		if r.Seq != e.Seq || r.Service != time.Duration(rec.Finished-rec.Started) || r.Wait != time.Duration(rec.Started-rec.Arrived) {
			t.Errorf("handled record %+v, stage record %+v", r, rec)
		}
	}
	if len(seen) != len(envs) {
		t.Errorf("%d handled records, want %d", len(seen), len(envs))
	}
	if want := []string{"INFO ready", "INFO stop requested", "INFO stopped"}; !slices.Equal(msgs, want) {
		t.Errorf("records besides handled: %q, want %q", msgs, want)
	}
}

func TestRunRejectsAndReports(t *testing.T) {
	srv := natstest.Start(t)
	subjects := bus.NewSubjects()
	nc, err := bus.Connect(srv.Conn, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ready := collectRaw(t, nc, ReadySubject(subjects))
	rejects := collectRaw(t, nc, RejectSubject(subjects))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{NATS: srv.Conn, Subjects: subjects, Stage: 2, Spec: testSpec(), Name: "t-S3"})
		done <- err
	}()
	ready.wait(t, 1)
	_ = nc.Publish(subjects.Stage(2), []byte("garbage"))
	_ = nc.Publish(subjects.Stage(2), stage1(t, testSpec(), 1)[0]) // at S3 with one record: wrong stage
	got := rejects.wait(t, 2)
	for _, b := range got {
		var r Reject
		if err := json.Unmarshal(b, &r); err != nil || r.Worker != "t-S3" || r.Stage != "S3" || r.Error == "" {
			t.Errorf("reject report %s: %v", b, err)
		}
	}
	cancel() // as SIGTERM does: drain and return
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}

func TestRunConnectError(t *testing.T) {
	start := time.Now()
	_, err := Run(context.Background(), Config{NATS: natsconn.Config{URL: "nats://127.0.0.1:1"}, Subjects: bus.Subjects{Prefix: "x"}, Stage: 0, Spec: testSpec(), Name: "t"})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Run against no server: %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if _, err := Run(context.Background(), Config{NATS: natsconn.Config{URL: "nats://127.0.0.1:1"}, Subjects: bus.Subjects{Prefix: "x"}, Stage: 4, Spec: testSpec(), Name: "t"}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("stage 5 of 4: %v", err)
	}
}

// rawCollector gathers raw messages on a subject.
type rawCollector struct {
	mu   sync.Mutex
	msgs [][]byte
}

func collectRaw(t *testing.T, nc *nats.Conn, subject string) *rawCollector {
	t.Helper()
	c := &rawCollector{}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m.Data)
		c.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawCollector) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			defer c.mu.Unlock()
			return slices.Clone(c.msgs)
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d messages after 20s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// childEnv is the test's environment without the variables that steer
// test binaries, as a fleet gives its workers (fleet.Start).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == EnvChild || k == EnvCrash || k == procs.EnvLifeline {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runSelf runs the test binary as a worker process with args and returns
// its exit status and stderr.
func runSelf(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), EnvChild+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run worker: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// The real process: bad flags, a bad stage and a bad URL exit non-zero
// with a clear message.
func TestProcessExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"-h"}, ExitOK, "usage: natspipe-worker"},
		{[]string{"-stage", "S7"}, ExitUsage, `stage "S7": want S1..S4`},
		{[]string{"-stage", "S2", "-mode", "turbo"}, ExitUsage, `mode "turbo"`},
		{[]string{"-stage", "S2", "-frobnicate"}, ExitUsage, "flag provided but not defined: -frobnicate"},
		{[]string{"-stage", "S2", "-url", "nats://127.0.0.1:1"}, ExitError, "connect"},
		{[]string{"-stage", "S2", "-url", "://bad"}, ExitUsage, "-url"},
	} {
		status, stderr := runSelf(t, tc.args...)
		if status != tc.status || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, status, stderr, tc.status, tc.want)
		}
	}
	// The crash hook's own bad value is a usage error too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-stage", "S1")
	cmd.Env = append(os.Environ(), EnvChild+"=1", EnvCrash+"=soon")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != ExitUsage || !strings.Contains(string(out), EnvCrash) {
		t.Errorf("bad %s: exit %d, %s", EnvCrash, cmd.ProcessState.ExitCode(), out)
	}
}

// SIGTERM drains: every message the worker holds is finished and published
// before it exits 0. At the default level the worker prints one record, the
// stop from outside (a warning); at -log-level info its ready and stopped
// records too, the latter with its count.
func TestProcessSIGTERMDrains(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // level and msg of every record
	}{
		{"default", nil, []string{"WARN stopping"}},
		{"info", []string{"-log-level", "info"}, []string{"INFO ready", "WARN stopping", "INFO stopped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Start(t)
			subjects := bus.NewSubjects()
			nc, err := bus.Connect(srv.Conn, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			ready := collectRaw(t, nc, ReadySubject(subjects))
			out := collect(t, nc, subjects.Stage(2))
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			g := procstest.NewGroup(t, nil)
			spec := testSpec()
			p, err := g.Start(procs.Spec{Name: "sig-S2", Path: exe, Env: append(childEnv(), EnvChild+"=1", EnvLogFormat+"=json"), Lifeline: true,
				Args: append([]string{"-url", srv.URL, "-prefix", subjects.Prefix, "-stage", "S2", "-durations", pipelines.DurationsString(spec.Durations), "-name", "sig-S2"}, tc.args...)})
			if err != nil {
				t.Fatal(err)
			}
			ready.wait(t, 1)
			const n = 25 // 25 x 8 ms: most are still queued when the signal comes
			for _, m := range stage1(t, spec, n) {
				_ = nc.Publish(subjects.Stage(1), m)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			p.Expect()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			e, err := p.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !e.Success() {
				t.Errorf("exit %v", e)
			}
			var got []string
			for _, r := range parseRecords(t, e.Tail) {
				got = append(got, r.Level+" "+r.Msg)
				if r.Msg == "stopped" && r.Handled != n {
					t.Errorf("stopped record says handled %d, want %d", r.Handled, n)
				}
				if r.Stage != "S2" || r.Worker != "sig-S2" || r.Pipeline != subjects.Prefix {
					t.Errorf("record %+v", r)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("records %q, want %q; stderr:\n%s", got, tc.want, e.Tail)
			}
			if got := out.wait(t, n); len(got) != n {
				t.Errorf("%d results, want %d", len(got), n)
			}
		})
	}
}
