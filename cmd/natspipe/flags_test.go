package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p2"
)

// layeredRun is natspipe run's options for args, layered as runRun
// layers them (flags, environment, pipeline file), without running.
func layeredRun(t *testing.T, args ...string) (runOptions, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	o.register(fs, pipelines.DefaultSpec())
	if _, code, done := parseCommand("run", fs, args, runHelp(), io.Discard, io.Discard); done {
		t.Fatalf("%q: parse: exit %d", args, code)
	}
	err := o.layer(fs, runEnvs())
	return o, err
}

// clearRunEnv unsets, for the test, every variable that stands for a run
// flag, so that the machine's environment does not leak into the cases.
func clearRunEnv(t *testing.T) {
	t.Helper()
	for _, e := range runEnvs() {
		t.Setenv(e.name, "")
	}
}

// TestRunEnvNames: each variable is NATSPIPE_ and the upper-case name of
// a natspipe run flag (ff's mapping), and every NATSPIPE_* variable of the
// README's table either stands for a run flag or is named here as read
// elsewhere or the test suite's own: a variable added to the README must
// be placed.
func TestRunEnvNames(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	o.register(fs, pipelines.DefaultSpec())
	mapped := map[string]bool{}
	for _, e := range runEnvs() {
		if want := "NATSPIPE_" + strings.ToUpper(strings.ReplaceAll(e.flag, "-", "_")); e.name != want {
			t.Errorf("%s sets -%s: ff reads it as %s", e.name, e.flag, want)
		}
		if fs.Lookup(e.flag) == nil {
			t.Errorf("%s: natspipe run has no flag -%s", e.name, e.flag)
		}
		mapped[e.name] = true
	}
	elsewhere := map[string]string{
		"NATSPIPE_CLOCK":           "checked before the run (checkRunOptions)",
		"NATSPIPE_SLOWDOWN":        "read with the stages (execute)",
		"NATSPIPE_NATS_ORDERED":    "natsconn",
		"NATSPIPE_LOG_LEVEL":       "the workers', inherited; checked before the run (checkRunOptions)",
		"NATSPIPE_LOG_FORMAT":      "the workers', inherited; checked before the run (checkRunOptions)",
		"NATSPIPE_SWEEP":           "the benchmarks' own",
		"NATSPIPE_TOPOLOGY":        "the benchmarks' own",
		"NATSPIPE_QUEUEING":        "the tests' own",
		"NATSPIPE_REQUIRE_BROKERS": "the tests' own",
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `(NATSPIPE_[A-Z_]+)` \\|").FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 15 {
		t.Fatalf("found %d NATSPIPE_* rows in README.md's table", len(rows))
	}
	for _, r := range rows {
		if !mapped[r[1]] && elsewhere[r[1]] == "" {
			t.Errorf("README's %s: neither a natspipe run flag's variable (runEnvs) nor known to be read elsewhere", r[1])
		}
	}
}

// TestRunEnvLikeBenchmarks: each variable gives its flag the value the
// benchmarks' reader makes of it (NATSPIPE_PAYLOAD=010 is 10 to
// SpecFromEnv, where the flag's own parser would read octal 8;
// NATSPIPE_INFLIGHT=0 is "not set"), and counts as set, by the variable.
func TestRunEnvLikeBenchmarks(t *testing.T) {
	for _, c := range []struct {
		env, value string
		flag       string
		got        func(runOptions) any
		want       any
	}{
		{"NATSPIPE_ALLOC", "1,2,1,1", "alloc", func(o runOptions) any { return o.alloc }, "1-2-1-1"},
		{"NATSPIPE_MODE", "async", "mode", func(o runOptions) any { return o.mode }, "async"},
		{"NATSPIPE_DURATIONS", "5,exp(20ms)", "durations", func(o runOptions) any { return o.durations }, "5ms,exp(20ms)"},
		{"NATSPIPE_WORK", "cpu", "work", func(o runOptions) any { return o.work }, "cpu"},
		{"NATSPIPE_PAYLOAD", "010", "payload", func(o runOptions) any { return o.payload }, 10},
		{"NATSPIPE_WINDOW", "7", "window", func(o runOptions) any { return o.window }, 7},
		{"NATSPIPE_INFLIGHT", "8", "inflight", func(o runOptions) any { return o.inflight }, 8},
		{"NATSPIPE_INFLIGHT", "0", "", func(o runOptions) any { return o.inflight }, p2.DefaultInflight},
		{"NATSPIPE_CONCURRENCY", "2", "concurrency", func(o runOptions) any { return o.concurrency }, 2},
		{"NATSPIPE_TIMEOUT", "90s", "timeout", func(o runOptions) any { return o.timeout }, 90 * time.Second},
		{"NATSPIPE_TRANSPORT", "js", "transport", func(o runOptions) any { return o.transport }, "js"},
		{"NATSPIPE_TRACE", "traces", "trace", func(o runOptions) any { return o.traceDir }, "traces"},
	} {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			clearRunEnv(t)
			t.Setenv(c.env, c.value)
			o, err := layeredRun(t)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.got(o); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
			if c.flag != "" && (o.from[c.flag] != c.env || !o.set[c.flag]) {
				t.Errorf("-%s: from %q, set %v; want from %s and set", c.flag, o.from[c.flag], o.set[c.flag], c.env)
			}
			if c.flag == "" && len(o.from) != 0 {
				t.Errorf("set from the environment: %v, want nothing", o.from)
			}
		})
	}
}

// TestRunPrecedence holds the layers' order: a flag over its variable
// over the pipeline file over the default, a variable counting as given
// against the file, and a flag given hiding a bad variable.
func TestRunPrecedence(t *testing.T) {
	clearRunEnv(t)
	file := writeFile(t, "p.yaml", `name: prec
stages: [{time: 1ms}, {time: 2ms}, {time: 1ms}, {time: 1ms}]
deployment: {variant: p4, alloc: [1, 1, 1, 1], mode: sync}
load: {window: 3}
messages: 40
`)
	t.Setenv("NATSPIPE_ALLOC", "1-2-1-1")
	t.Setenv("NATSPIPE_MODE", "async")
	t.Setenv("NATSPIPE_WINDOW", "5")
	t.Setenv("NATSPIPE_DURATIONS", "bogus") // hidden by -durations
	o, err := layeredRun(t, "-f", file, "-window", "9", "-durations", "1ms,2ms,1ms,1ms")
	if err != nil {
		t.Fatal(err)
	}
	if o.alloc != "1-2-1-1" || o.mode != "async" { // the environment over the file
		t.Errorf("alloc %s mode %s: want the environment's 1-2-1-1 async", o.alloc, o.mode)
	}
	if o.window != 9 || o.from["window"] != "" { // the flag over the environment
		t.Errorf("window %d (from %q): want the flag's 9", o.window, o.from["window"])
	}
	if o.n != 40 || o.variant != "p4" { // the file over the defaults
		t.Errorf("n %d variant %s: want the file's 40 p4", o.n, o.variant)
	}

	// Without the environment, the file's.
	clearRunEnv(t)
	o, err = layeredRun(t, "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	if o.alloc != "1-1-1-1" || o.mode != "sync" || o.window != 3 {
		t.Errorf("alloc %s mode %s window %d: want the file's 1-1-1-1 sync 3", o.alloc, o.mode, o.window)
	}

	// -load given: the file's open-loop rate is not taken.
	open := writeFile(t, "open.yaml", "stages: [{time: 1ms}]\nload: {rate: 50}\n")
	if o, err = layeredRun(t, "-f", open, "-load", "0.5"); err != nil || o.load != 0.5 || o.rate != 0 {
		t.Errorf("load %v rate %v (%v): want -load 0.5 alone", o.load, o.rate, err)
	}
	if o, err = layeredRun(t, "-f", open); err != nil || o.rate != 50 {
		t.Errorf("rate %v (%v): want the file's 50", o.rate, err)
	}
}

// TestHelp: natspipe help, -h, --help, help CMD and every CMD -h print
// their help on stdout, nothing on stderr, exit 0; each command's has a
// description, its flags and 2 to 4 examples.
func TestHelp(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, errOut := run(args...)
		if code != 0 || errOut != "" || !strings.Contains(out, "usage: natspipe COMMAND") || !strings.Contains(out, "Examples:") {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
		for name := range commands() {
			if !strings.Contains(out, "\n  "+name+" ") {
				t.Errorf("%q does not list %s", args, name)
			}
		}
	}
	for name := range commands() {
		if name == "help" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(name, "-h")
			if code != 0 || errOut != "" || out == "" {
				t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
			}
			if _, helpOut, _ := run("help", name); helpOut != out {
				t.Errorf("natspipe help %s differs from natspipe %s -h", name, name)
			}
			if name == "worker" {
				return // pipelines/worker's own usage
			}
			if !strings.HasPrefix(out, "usage: natspipe "+name) {
				t.Errorf("help does not start with the synopsis:\n%s", out)
			}
			_, ex, ok := strings.Cut(out, "\nExamples:\n")
			n := 0
			for _, l := range strings.Split(strings.TrimSuffix(ex, "\n"), "\n") {
				if strings.HasPrefix(l, "  ") && strings.Contains(l, "natspipe") {
					n++
				}
			}
			if !ok || n < 2 || n > 4 {
				t.Errorf("%d examples, want 2 to 4:\n%s", n, ex)
			}
			if name != "version" && !strings.Contains(out, "\nFlags:\n") {
				t.Errorf("no flags:\n%s", out)
			}
		})
	}
}

// TestVersion: natspipe version (and -version, --version) prints the Go
// version and the nats-server and nats.go versions this binary links;
// formatVersion prints the commit and a modified tree when the build
// recorded them.
func TestVersion(t *testing.T) {
	var first string
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(args, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
		out := stdout.String()
		t.Logf("%q:\n%s", args, out)
		for _, want := range []string{"go " + runtime.Version() + " ", "\nnats-server v" + server.VERSION + "\n", "\nnats.go v" + nats.Version + "\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: no %q in\n%s", args, want, out)
			}
		}
		if !strings.HasPrefix(out, "natspipe ") {
			t.Errorf("%q: does not start with natspipe's version:\n%s", args, out)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("%q differs from natspipe version", args)
		}
	}
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/natspipe/natspipe", Version: "v1.2.0"},
		Deps:      []*debug.Module{{Path: natsServerModule, Version: "v2.15.2"}, {Path: natsGoModule, Version: "v1.55.0", Replace: &debug.Module{Path: "../nats.go"}}},
		Settings:  []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}},
	}
	want := "natspipe v1.2.0 (commit 0123abcd, 2026-01-02T03:04:05Z, modified)\ngo go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH +
		"\nnats-server v2.15.2\nnats.go ../nats.go (replacing v1.55.0)\n"
	if got := formatVersion(bi); got != want {
		t.Errorf("formatVersion:\n%s\nwant:\n%s", got, want)
	}
	bi.Settings, bi.Deps = nil, nil
	if got := formatVersion(bi); !strings.HasPrefix(got, "natspipe v1.2.0\n") || !strings.Contains(got, "\nnats-server unknown\n") {
		t.Errorf("no vcs settings, no deps:\n%s", got)
	}
	if got := formatVersion(nil); !strings.HasPrefix(got, "natspipe unknown (no build information)\n") {
		t.Errorf("no build information:\n%s", got)
	}
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"version", "extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

// badInvocation is one case of TestBadInvocations.
type badInvocation struct {
	name string
	args []string
	env  map[string]string
	code int
	// stderr is the exact standard error; {tmp} stands for the case's
	// temporary directory.
	stderr string
}

// TestBadInvocations runs natspipe with each bad command line and
// environment and holds its exact exit status and message, which names
// the flag or variable and the value. Run with -v, it logs each case as
// a table row for the record.
func TestBadInvocations(t *testing.T) {
	benchkit.CheckLeaks(t)
	hint := func(cmd string) string { return "\nrun 'natspipe " + cmd + " -h' for its flags and examples\n" }
	seed := filepath.Join("..", "..", "testdata", "pipelines", "seed.yaml")
	cases := []badInvocation{
		{"unknown flag", []string{"run", "-bogus"}, nil, 2, "natspipe run: flag provided but not defined: -bogus" + hint("run")},
		{"flag without value", []string{"run", "-n"}, nil, 2, "natspipe run: flag needs an argument: -n" + hint("run")},
		{"flag value not a number", []string{"run", "-n", "many"}, nil, 2, `natspipe run: invalid value "many" for flag -n: parse error` + hint("run")},
		{"alloc stages", []string{"run", "-alloc", "1-4-1"}, nil, 2,
			"natspipe run: -alloc: allocation 1-4-1: 3 stages, the pipeline has 4 (one count per stage of -durations)" + hint("run")},
		{"variant", []string{"run", "-variant", "p5"}, nil, 2, `natspipe run: -variant "p5": want p0, p1, p2, p3 or p4` + hint("run")},
		{"mode", []string{"run", "-mode", "turbo"}, nil, 2, `natspipe run: -mode: mode "turbo": want "sync" or "async"` + hint("run")},
		{"durations", []string{"run", "-durations", "10ms,-5ms"}, nil, 2,
			`natspipe run: -durations "10ms,-5ms": durations: stage S2: negative duration "-5ms"` + hint("run")},
		{"rate with load", []string{"run", "-rate", "80", "-load", "0.8"}, nil, 2, "natspipe run: -rate 80 and -load 0.8: give one" + hint("run")},
		{"positional", []string{"run", "p4"}, nil, 2, `natspipe run: unexpected arguments ["p4"]: natspipe run takes flags only` + hint("run")},
		{"env alloc", []string{"run"}, map[string]string{"NATSPIPE_ALLOC": "1-x-1-1"}, 2,
			`natspipe run: NATSPIPE_ALLOC="1-x-1-1": allocation "1-x-1-1": stage S2: "x" is not a worker count >= 1` + hint("run")},
		{"env alloc stages", []string{"run"}, map[string]string{"NATSPIPE_ALLOC": "1-2-1"}, 2,
			"natspipe run: NATSPIPE_ALLOC: allocation 1-2-1: 3 stages, the pipeline has 4 (one count per stage of -durations)" + hint("run")},
		{"env mode", []string{"run"}, map[string]string{"NATSPIPE_MODE": "turbo"}, 2,
			`natspipe run: NATSPIPE_MODE="turbo": mode "turbo": want "sync" or "async"` + hint("run")},
		{"env log level", []string{"run"}, map[string]string{"NATSPIPE_LOG_LEVEL": "loud"}, 2,
			`natspipe run: NATSPIPE_LOG_LEVEL="loud": log level "loud": want debug, info, warn or error` + hint("run")},
		{"env transport list", []string{"run"}, map[string]string{"NATSPIPE_TRANSPORT": "core,js"}, 2,
			`natspipe run: NATSPIPE_TRANSPORT="core,js": natspipe run runs over one transport: want one of core, js, amqp, kafka (a list or "all" is for the benchmarks and natspipe sweep)` + hint("run")},
		{"env concurrency sync", []string{"run", "-variant", "p3"}, map[string]string{"NATSPIPE_CONCURRENCY": "4"}, 2,
			"natspipe run: NATSPIPE_CONCURRENCY=4: a sync worker works on one message at a time; add -mode async" + hint("run")},
		{"csv missing directory", []string{"run", "-variant", "p0", "-n", "5", "-csv", "{tmp}/none/runs.csv"}, nil, 2,
			"natspipe run: -csv {tmp}/none/runs.csv: directory {tmp}/none: no such file or directory" + hint("run")},
		{"pipeline file missing", []string{"run", "-f", "{tmp}/none.yaml"}, nil, 2, "natspipe run: -f {tmp}/none.yaml: no such file or directory" + hint("run")},
		{"unreachable server", []string{"run", "-variant", "p1", "-n", "5", "-url", "nats://bench:s3cret@127.0.0.1:1"}, nil, 1,
			"natspipe run: nats server: connect natspipe-probe to nats://bench:***@127.0.0.1:1: nats: no servers available for connection\n"},
		{"unknown command", []string{"frobnicate"}, nil, 2, "natspipe: unknown command \"frobnicate\"\nrun 'natspipe help' for the commands\n"},
		{"no command", nil, nil, 2, "natspipe: no command\nrun 'natspipe help' for the commands\n"},
		{"help for no command", []string{"help", "frobnicate"}, nil, 2, "natspipe help: unknown command \"frobnicate\"\nrun 'natspipe help' for the commands\n"},
		{"sweep workers", []string{"sweep", "-workers", "3", "-o", "{tmp}/sweep", seed}, nil, 2,
			"natspipe sweep: -workers 3: want at least one worker per stage (4)" + hint("sweep")},
		{"sweep env alloc", []string{"sweep", "-o", "{tmp}/sweep", seed}, map[string]string{"NATSPIPE_ALLOC": "1-2-1"}, 2,
			"natspipe sweep: NATSPIPE_ALLOC: allocation 1-2-1: 3 stages, the pipeline has 4" + hint("sweep")},
		{"plan without file", []string{"plan", "-workers", "7"}, nil, 2,
			"natspipe plan: want one pipeline file, got 0 arguments (natspipe plan -workers 7 testdata/pipelines/seed.yaml)" + hint("plan")},
		{"plan env durations", []string{"plan", "-workers", "7", seed}, map[string]string{"NATSPIPE_DURATIONS": "1ms,2ms"}, 2,
			`natspipe plan: NATSPIPE_DURATIONS="1ms,2ms": 2 stages, the file has 4` + hint("plan")},
		{"analyze without traces", []string{"analyze"}, nil, 2, "natspipe analyze: no trace files" + hint("analyze")},
		{"gate one file", []string{"gate", "base.txt"}, nil, 2, "natspipe gate: want 2 files (BASE.txt NEW.txt), got 1" + hint("gate")},
		{"version arguments", []string{"version", "now"}, nil, 2, `natspipe version: unexpected arguments ["now"]: natspipe version takes none` + hint("version")},
	}
	if len(cases) < 12 {
		t.Fatalf("%d cases, want at least 12", len(cases))
	}
	var table strings.Builder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearRunEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			tmp := t.TempDir()
			args := slices.Clone(c.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "{tmp}", tmp)
			}
			want := strings.ReplaceAll(c.stderr, "{tmp}", tmp)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := dispatch(args, &stdout, &stderr)
			took := time.Since(start)
			if code != c.code || stderr.String() != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, stderr.String(), c.code, want)
			}
			if strings.Contains(stderr.String(), "s3cret") || strings.Contains(stdout.String(), "s3cret") {
				t.Errorf("the password is printed")
			}
			if took > 5*time.Second {
				t.Errorf("took %v, want under 5s", took)
			}
			var env []string
			for k, v := range c.env {
				env = append(env, k+"="+v)
			}
			slices.Sort(env)
			line := strings.TrimSpace(strings.Join(append(env, append([]string{"natspipe"}, c.args...)...), " "))
			msg := strings.ReplaceAll(strings.TrimSuffix(c.stderr, "\n"), "\n", " / ")
			table.WriteString("| `" + line + "` | " + string(rune('0'+c.code)) + " | `" + msg + "` |\n")
		})
	}
	t.Logf("bad invocations (%d):\n| command | exit | stderr |\n|---|---|---|\n%s", len(cases), table.String())
}

// TestSweepEnvAxes: NATSPIPE_TRANSPORT gives natspipe sweep its
// transports axis as it gives the benchmarks theirs (a list), and the
// -transports flag overrides it; the runs take NATSPIPE_DURATIONS over the
// file's stage times, as natspipe run does.
func TestSweepEnvAxes(t *testing.T) {
	benchrun.SkipTest(t, "natspipe sweep of P1 runs")
	clearRunEnv(t)
	t.Setenv("NATS_URL", "")
	t.Setenv("NATS_CONTEXT", "")
	file := writeFile(t, "p1.yaml", "name: p1\nstages: [{time: 5ms}, {time: 5ms}]\ndeployment: {variant: p1}\nmessages: 20\n")
	t.Setenv("NATSPIPE_TRANSPORT", "core,js")
	t.Setenv("NATSPIPE_DURATIONS", "1ms,1ms")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"transport=core", "transport=js"}},
		{[]string{"-transports", "js"}, []string{"transport=js"}},
	} {
		out := filepath.Join(t.TempDir(), "sweep")
		var stdout, stderr bytes.Buffer
		if code := dispatch(append(append([]string{"sweep", "-o", out}, c.args...), file), &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d, stderr:\n%s", c.args, code, stderr.String())
		}
		results, err := os.ReadFile(filepath.Join(out, "results.txt"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(string(results), "\n") {
			if name, _, ok := strings.Cut(l, " "); ok && strings.HasPrefix(name, "BenchmarkP1/") {
				name = name[strings.LastIndex(name, "/")+1:]
				got = append(got, name[:strings.LastIndex(name, "-")]) // GOMAXPROCS cut
			}
		}
		if !slices.Equal(got, c.want) || !strings.Contains(string(results), "durations: 1ms,1ms\n") {
			t.Errorf("%q: results %q, want %q with durations 1ms,1ms:\n%s", c.args, got, c.want, results)
		}
	}
}
