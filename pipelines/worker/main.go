package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// Program is the name the worker uses in its messages.
const Program = "natspipe-worker"

// MaxTimeout bounds -ready-timeout and -drain-timeout.
const MaxTimeout = time.Hour

// Exit statuses of Main.
const (
	ExitOK    = 0 // stopped on request or signal after a clean drain
	ExitError = 1 // could not connect, subscribe or drain
	ExitUsage = 2 // bad flags
)

// Environment variables of test binaries that re-execute themselves as
// workers (see Dispatch).
const (
	// EnvChild set to "1" makes Dispatch run the worker instead of returning.
	EnvChild = "NATSPIPE_WORKER"
	// EnvCrash, test-only, "N:S": after handling its N-th message the worker
	// exits at once with status S, as a crash would. Only Dispatch honours it.
	EnvCrash = "NATSPIPE_WORKER_CRASH"
)

// ParseArgs reads a worker's command line (without the program name). Flag
// defaults come from NATSPIPE_DURATIONS and NATSPIPE_WORK when set; the
// connection settings from the NATS_* variables and the NATS CLI context
// they name (see natsconn), which the flags override. A parent passes a
// password or token through NATS_URL, NATS_PASSWORD or NATS_TOKEN, never a
// flag: command lines are visible to every user. -log-level and
// -log-format default to NATSPIPE_LOG_LEVEL and NATSPIPE_LOG_FORMAT; the
// Config's Logger writes to stderr. Usage and flag errors are written to
// stderr; -h gives flag.ErrHelp.
func ParseArgs(args []string, stderr io.Writer, getenv pipelines.Getenv) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	fs := flag.NewFlagSet(Program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	conn := natsconn.FromEnv(getenv)
	conn.RegisterFlags(fs, "NATS server URL, or a comma-separated list (default $NATS_URL, else "+bus.DefaultURL+")")
	stageFlag := fs.String("stage", "", "stage to serve: S1..SN, or its 1-based index (required)")
	prefix := fs.String("prefix", DefaultPrefix, "subject prefix: stages are <prefix>.s1..sN, results <prefix>.done")
	durations := fs.String("durations", envOr(pipelines.EnvDurations, pipelines.DurationsString(pipelines.SeedDurations())),
		"every stage's time or service-time distribution, comma-separated, e.g. 10ms,exp(40ms),uniform(2ms,8ms),lognormal(5ms,cv=1.5); the count sets the number of stages; $NATSPIPE_DURATIONS when set")
	seed := fs.Uint64("seed", 1, "seed of the service-time draws; the worker's stream is derived from it, its stage and its -name")
	work := fs.String("work", envOr(pipelines.EnvWork, string(pipelines.Sleep)), "work model: sleep or cpu; $NATSPIPE_WORK when set")
	mode := fs.String("mode", string(Sync), "sync (one message in stage work at a time) or async (up to -concurrency)")
	conc := fs.Int("concurrency", 0, fmt.Sprintf("messages in stage work at once in async mode (default %d)", DefaultConcurrency))
	name := fs.String("name", "", "worker name, stamped as the Worker of its stage records (default <stage>-<host>-<pid>)")
	ready := fs.Duration("ready-timeout", DefaultReadyTimeout, "bound on subscribing and announcing readiness once connected")
	drain := fs.Duration("drain-timeout", DefaultDrainTimeout, "bound on draining when asked to stop")
	transportName := fs.String("transport", transports.Default, "broker transport: "+strings.Join(transports.Names(), ", "))
	runConc := fs.String("run-concurrency", "", "each stage's total concurrency (its workers x their concurrency), comma-separated, as the harness set the run up: transports tell a stage's only member from one of several by it (default unknown)")
	slowdown := fs.String("slowdown", getenv(pipelines.EnvSlowdown), "hidden extra work, e.g. S2=2ms: a deliberate regression for testing the gate; $NATSPIPE_SLOWDOWN when set")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR"+MetricsPath+" (host:port, e.g. 127.0.0.1:9464; port 0 picks one, announced in the ready record and the micro metadata); default none")
	variant := fs.String("variant", "", "the variant the worker serves (p3, p4), for its micro service's metadata only")
	logLevel := fs.String("log-level", envOr(EnvLogLevel, "warn"), "log records of this level and above: debug (a record per message), info (ready, stopped), warn (incidents), error; $"+EnvLogLevel+" when set")
	logFormat := fs.String("log-format", envOr(EnvLogFormat, DefaultLogFormat), "log format on stderr: text (key=value) or json; $"+EnvLogFormat+" when set")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s -stage S2 [flags]\n\nServes one stage of a natspipe pipeline over NATS until stopped\n(SIGTERM, SIGINT or a stop request on <prefix>.ctl.stop.sK), registered\nas NATS micro service %q (nats micro ls). Quiet unless something goes\nwrong: -log-level info or debug for more.\n\nflags:\n", Program, ServiceName)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	usage := func(format string, a ...any) (Config, error) {
		err := fmt.Errorf(format, a...)
		fmt.Fprintf(stderr, "%s: %v\nRun '%s -h' for usage.\n", Program, err, Program)
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return usage("unexpected arguments %q", fs.Args())
	}
	conn, err := conn.Resolve(getenv)
	if err != nil {
		return usage("%v", err)
	}
	if conn.URL == "" {
		conn.URL = bus.DefaultURL
	}
	ts, err := pipelines.ParseServiceTimes(*durations)
	if err != nil {
		return usage("-durations: %v", err)
	}
	spec := pipelines.Spec{Seed: *seed}
	spec.SetTimes(ts)
	ds := spec.Durations
	wm, err := pipelines.ParseWorkModel(*work)
	if err != nil {
		return usage("-work: %v", err)
	}
	if *stageFlag == "" {
		return usage("-stage is required (S1..S%d)", len(ds))
	}
	stage, err := pipelines.ParseStage(strings.TrimSpace(*stageFlag), len(ds))
	if err != nil {
		return usage("-stage: %v", err)
	}
	var sd []time.Duration
	if *slowdown != "" {
		if sd, err = pipelines.ParseSlowdown(*slowdown, len(ds)); err != nil {
			return usage("-slowdown: %v", err)
		}
	}
	m, err := ParseMode(*mode)
	if err != nil {
		return usage("-mode: %v", err)
	}
	if err := CheckPrefix(*prefix); err != nil {
		return usage("-prefix: %v", err)
	}
	level, err := ParseLogLevel(*logLevel)
	if err != nil {
		return usage("-log-level: %v", err)
	}
	format, err := ParseLogFormat(*logFormat)
	if err != nil {
		return usage("-log-format: %v", err)
	}
	if err := checkVariant(*variant); err != nil {
		return usage("-variant: %v", err)
	}
	if *metricsAddr != "" {
		if _, _, err := net.SplitHostPort(*metricsAddr); err != nil {
			return usage("-metrics-addr %q: want host:port, e.g. 127.0.0.1:9464 (:9464 for every interface): %v", *metricsAddr, err)
		}
	}
	if *ready <= 0 || *drain <= 0 {
		return usage("-ready-timeout and -drain-timeout must be positive")
	}
	if *ready > MaxTimeout || *drain > MaxTimeout {
		return usage("-ready-timeout %v, -drain-timeout %v: want at most %v", *ready, *drain, MaxTimeout)
	}
	if *conc < 0 || *conc > pipelines.MaxConcurrency {
		return usage("-concurrency %d: want 0 (default %d) to %d", *conc, DefaultConcurrency, pipelines.MaxConcurrency)
	}
	if err := pipelines.CheckClockEnv(getenv); err != nil {
		return usage("%v", err)
	}
	tr, err := transports.Lookup(*transportName)
	if err != nil {
		return usage("-transport: %v", err)
	}
	var runConcurrency []int
	if *runConc != "" {
		for i, f := range strings.Split(*runConc, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || c < 0 || c > maxRunConcurrency {
				return usage("-run-concurrency %q: item %d: want a count from 0 to %d", *runConc, i+1, maxRunConcurrency)
			}
			runConcurrency = append(runConcurrency, c)
		}
		if len(runConcurrency) != len(ds) {
			return usage("-run-concurrency %q: %d counts for %d stages", *runConc, len(runConcurrency), len(ds))
		}
	}
	spec.Work, spec.Slowdown = wm, sd
	cfg := Config{
		NATS:           conn,
		Subjects:       bus.Subjects{Prefix: *prefix},
		Stage:          stage,
		Spec:           spec,
		Mode:           m,
		Concurrency:    *conc,
		Name:           *name,
		Variant:        *variant,
		MetricsAddr:    *metricsAddr,
		ReadyTimeout:   *ready,
		DrainTimeout:   *drain,
		Transport:      tr,
		RunConcurrency: runConcurrency,
		Logger:         NewLogger(stderr, format, level),
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s-%s-%d", pipelines.StageName(stage), host, os.Getpid())
		if len(cfg.Name) > 255 {
			cfg.Name = cfg.Name[:255]
		}
	}
	if err := cfg.Validate(); err != nil {
		return usage("%v", err)
	}
	return cfg, nil
}

// CheckPrefix reports a subject prefix that cannot name a pipeline's
// subjects: empty, with white space or wildcards, or a dot at either end.
func CheckPrefix(prefix string) error {
	if prefix == "" || strings.ContainsAny(prefix, " \t\r\n*>") || strings.HasPrefix(prefix, ".") || strings.HasSuffix(prefix, ".") {
		return fmt.Errorf("%q: want a subject prefix such as natspipe or natspipe.run1", prefix)
	}
	return nil
}

// checkVariant reports a -variant that is not a short name.
func checkVariant(v string) error {
	if len(v) > 32 || strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return fmt.Errorf("%q: want a short name such as p3 or p4 (letters, digits, - and _, at most 32)", v)
	}
	return nil
}

// Main runs a worker process: it parses args, serves the stage until a stop
// request, SIGTERM or SIGINT (a second signal kills it), and returns the
// exit status: ExitOK, ExitError or ExitUsage. Usage errors go to stderr as
// plain lines, everything else as log records (see ParseArgs).
func Main(args []string, stderr io.Writer) int {
	return runMain(args, stderr, nil)
}

// runMain is Main; crash, when set, makes the worker's OnHandled hook from
// its logger (Dispatch's EnvCrash).
func runMain(args []string, stderr io.Writer, crash func(*slog.Logger) func(uint64)) int {
	cfg, err := ParseArgs(args, stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage
	}
	if crash != nil {
		cfg.OnHandled = crash(cfg.Logger)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal takes the default action
	}()
	if _, err := Run(ctx, cfg); err != nil {
		cfg.Logger.Error(Program+" failed", "pipeline", cfg.Subjects.Prefix, "stage", pipelines.StageName(cfg.Stage), "worker", cfg.Name, "err", err)
		return ExitError
	}
	return ExitOK
}

// Dispatch makes a test binary double as a worker process: when EnvChild is
// "1" it runs Main on os.Args[1:] and exits the process with its status;
// otherwise it returns at once. Call it first in TestMain:
//
//	func TestMain(m *testing.M) {
//		worker.Dispatch()
//		os.Exit(benchkit.Main(m))
//	}
//
// Such a worker also honours the test-only EnvCrash, and exits when its
// parent dies (procs.ExitWithParent).
func Dispatch() {
	if os.Getenv(EnvChild) != "1" {
		return
	}
	procs.ExitWithParent()
	var crash func(*slog.Logger) func(uint64)
	if v := os.Getenv(EnvCrash); v != "" {
		after, status, err := parseCrash(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s=%q: %v\n", Program, EnvCrash, v, err)
			os.Exit(ExitUsage)
		}
		crash = func(log *slog.Logger) func(uint64) {
			return func(n uint64) {
				if n == after {
					log.Error("crashing on purpose", "after", n, "variable", EnvCrash, "status", status)
					os.Exit(status)
				}
			}
		}
	}
	os.Exit(runMain(os.Args[1:], os.Stderr, crash))
}

func parseCrash(v string) (after uint64, status int, err error) {
	a, s, ok := strings.Cut(v, ":")
	if ok {
		after, err = strconv.ParseUint(a, 10, 64)
	}
	if ok && err == nil {
		status, err = strconv.Atoi(s)
	}
	if !ok || err != nil || after == 0 || status < 1 || status > 125 {
		return 0, 0, errors.New(`want "N:S": exit with status S (1..125) after the N-th message (N >= 1)`)
	}
	return after, status, nil
}

// maxRunConcurrency bounds a stage's total concurrency in -run-concurrency:
// far above any allocation's workers x their concurrency.
const maxRunConcurrency = 1 << 20
