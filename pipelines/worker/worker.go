// Package worker is the stage worker of the distributed variants P3 and P4:
// one operating-system process serving one stage of a pipeline over NATS.
//
// A worker connects to a NATS server, queue-subscribes to its stage's
// subject (bus.Subjects.Stage) in the stage's queue group
// (bus.Subjects.Queue), so that the workers of a stage share its messages,
// does the stage's Step on each message and publishes the result to the next
// stage (bus.Subjects.Next). In Sync mode it has exactly one message in stage
// work at a time; in Async mode up to Concurrency. Messages that arrive while
// it is busy wait in the worker, stamped with their arrival time, so the
// stage records show the queueing.
//
// Around the data path runs a small control protocol on subjects under the
// same prefix, all JSON:
//
//	<prefix>.ready          a worker announces itself (Stats) once its queue
//	                        subscription is registered with the server
//	<prefix>.rejects        a worker reports a message it refused (Reject),
//	                        so the harness's Sink counts it as in-process
//	                        variants do
//	<prefix>.ctl.stats      request: every worker replies with its Stats
//	<prefix>.ctl.live       request: every worker replies with its Liveness,
//	                        from the client's goroutine for that subscription,
//	                        which stage work never blocks
//	<prefix>.ctl.stop.sK    request: the workers of stage K drain (finish
//	                        every message they hold, publish the results),
//	                        reply with their final Stats and exit
//
// SIGTERM and SIGINT drain and exit the same way, without a reply.
//
// Every worker also registers as a NATS micro service (ServiceName, with
// its stage, name, variant, transport, prefix and mode as metadata, and
// its counts and mean service time in its $SRV.STATS reply), so that
// `nats micro ls` and the other NATS tools list a pipeline's workers; its
// one endpoint, on ServiceSubject, answers with its Stats. It logs through
// log/slog (Config.Logger; see DefaultLogLevel for what each level
// carries): at the default level, warn, a healthy worker prints nothing.
//
// This package is the process side: Main, used both by the natspipe-worker
// command and by test binaries that re-execute themselves as workers
// (Dispatch), and the protocol's subjects and messages. The harness side,
// which starts worker processes, waits for their readiness, watches them
// and stops them, is package fleet (pipelines/fleet), which imports this
// one and never the other way round.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/router"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// Mode is how many messages a worker has in stage work at once.
type Mode string

const (
	// Sync works on exactly one message at a time; the default.
	Sync Mode = "sync"
	// Async works on up to Config.Concurrency messages at once.
	Async Mode = "async"
)

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Sync, Async:
		return Mode(s), nil
	}
	return "", fmt.Errorf("mode %q: want %q or %q", s, Sync, Async)
}

// Defaults.
const (
	// DefaultConcurrency is an async worker's messages in stage work at once.
	DefaultConcurrency = 4
	// DefaultReadyTimeout bounds a worker's subscribing and announcing.
	DefaultReadyTimeout = 10 * time.Second
	// DefaultDrainTimeout bounds a worker's drain when asked to stop.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultPrefix is the subject prefix when none is given.
	DefaultPrefix = "natspipe"
	// queueCap is the capacity of a worker's internal queue of received
	// messages; a full queue makes the subscription wait (the client's
	// pending buffer takes the rest), so it never drops a message.
	queueCap = 1 << 16
	// maxLogged limits the rejections and publish errors a worker logs.
	maxLogged = 5
)

// Config configures a worker.
type Config struct {
	// NATS is how to connect to the server: URL, credentials, TLS.
	NATS natsconn.Config
	// Subjects names the pipeline's subjects (its prefix).
	Subjects bus.Subjects
	// Stage is the 0-based stage this worker serves.
	Stage int
	// Spec gives the stage count, the stage's duration and the work model;
	// its payload size is not used.
	Spec pipelines.Spec
	// Mode is Sync or Async; "" is Sync.
	Mode Mode
	// Concurrency is, in Async mode, the messages in stage work at once;
	// 0: DefaultConcurrency. In Sync mode it must be 0 or 1.
	Concurrency int
	// Name identifies the worker: in its NATS connection, its reports, its
	// micro service's metadata, and as the Worker of the stage records it
	// stamps.
	Name string
	// Variant is the variant the worker serves ("p3", "p4"), for its micro
	// service's metadata only; "" when not told.
	Variant string
	// ReadyTimeout bounds subscribing and announcing readiness once
	// connected (connecting is bounded by bus.ConnectTimeout); 0: default.
	ReadyTimeout time.Duration
	// DrainTimeout bounds the drain when the worker is asked to stop; 0: default.
	DrainTimeout time.Duration
	// Logger receives the worker's records (see DefaultLogLevel for what
	// each level carries), with the pipeline (subject prefix), stage and
	// worker name added to each; nil discards them.
	Logger *slog.Logger
	// OnHandled, when set, is called after each message the worker has
	// handled and published, with the count so far. For tests.
	OnHandled func(handled uint64)
	// Transport is the broker's transport; nil: core NATS. The harness
	// (fleet.Fleet) sets the run up on it before the worker starts.
	Transport transport.Transport
	// RunConcurrency is each stage's total concurrency as the harness set
	// the run up (transport.Run.Concurrency); nil: unknown.
	RunConcurrency []int
	// MetricsAddr, when set, is the address (host:port; port 0 picks one)
	// where the worker serves Prometheus metrics at MetricsPath while it
	// runs: histograms of its service times and waits, its counts.
	MetricsAddr string
}

// Concurrent is the number of messages the worker has in stage work at most.
func (c Config) Concurrent() int {
	if c.Mode == Async {
		if c.Concurrency == 0 {
			return DefaultConcurrency
		}
		return c.Concurrency
	}
	return 1
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	if err := c.Spec.Validate(); err != nil {
		return err
	}
	if c.Stage < 0 || c.Stage >= c.Spec.Stages() {
		return fmt.Errorf("stage %d out of range: the pipeline has stages S1..%s", c.Stage+1, pipelines.StageName(c.Spec.Stages()-1))
	}
	if c.Subjects.Prefix == "" {
		return errors.New("empty subject prefix")
	}
	switch c.Mode {
	case "", Sync:
		if c.Concurrency > 1 {
			return fmt.Errorf("concurrency %d: sync mode works on one message at a time (use -mode async)", c.Concurrency)
		}
	case Async:
		// Any concurrency but a negative one, checked below.
	default:
		_, err := ParseMode(string(c.Mode))
		return err
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("concurrency %d < 0", c.Concurrency)
	}
	if c.Name == "" || len(c.Name) > 255 {
		return fmt.Errorf("worker name %q: want 1 to 255 bytes", c.Name)
	}
	if c.ReadyTimeout < 0 || c.DrainTimeout < 0 {
		return errors.New("negative timeout")
	}
	return nil
}

// Stats is what a worker reports about itself: in its readiness
// announcement, in reply to a stats request, and in its stop reply.
type Stats struct {
	Name        string `json:"name"`
	Stage       int    `json:"stage"` // 1-based
	PID         int    `json:"pid"`
	Host        string `json:"host"`
	Mode        Mode   `json:"mode"`
	Concurrency int    `json:"concurrency"`
	// Handled counts messages worked on and published to the next stage.
	Handled uint64 `json:"handled"`
	// Rejected counts messages refused as malformed or at the wrong stage.
	Rejected uint64 `json:"rejected"`
	// PublishErrors counts results that could not be published.
	PublishErrors uint64 `json:"publish_errors"`
	// Stopped is set in the stop reply, after the drain.
	Stopped bool `json:"stopped"`
	// What the worker runs, so that a harness attached to workers it did
	// not start (fleet.Attach) can check them against its own run: every
	// stage's time (pipelines.DurationsString; the count is the stage
	// count), the work model and the transport's name.
	Durations string `json:"durations,omitempty"`
	Work      string `json:"work,omitempty"`
	Transport string `json:"transport,omitempty"`
	// Metrics is the address the worker serves Prometheus metrics on
	// (Config.MetricsAddr, its port resolved), "" when it does not.
	Metrics string `json:"metrics,omitempty"`
}

// ReadySubject is where workers announce readiness.
func ReadySubject(s bus.Subjects) string { return s.Prefix + ".ready" }

// StatsSubject is where a harness asks every worker for its Stats.
func StatsSubject(s bus.Subjects) string { return s.Prefix + ".ctl.stats" }

// LiveSubject is where a harness asks every worker whether it is alive
// (see Liveness).
func LiveSubject(s bus.Subjects) string { return s.Prefix + ".ctl.live" }

// Liveness is a worker's answer to a liveness request: that it answers at
// all says its process runs and its connection works; Handled and Held say
// whether its stage work makes progress.
type Liveness struct {
	Name    string `json:"name"`
	Handled uint64 `json:"handled"`
	// Held counts the messages it has received and not yet handed on:
	// pending in its client, queued, and in stage work.
	Held int `json:"held"`
}

// RejectSubject is where workers report the messages they refuse.
func RejectSubject(s bus.Subjects) string { return s.Prefix + ".rejects" }

// Reject is a worker's report of a message it refused.
type Reject struct {
	Worker string `json:"worker"`
	Stage  string `json:"stage"` // "S2"
	Error  string `json:"error"`
}

// StopSubject is where a harness asks the workers of stage i (0-based) to
// drain and exit.
func StopSubject(s bus.Subjects, i int) string {
	return s.Prefix + ".ctl.stop." + "s" + fmt.Sprint(i+1)
}

// worker is one running worker.
type worker struct {
	cfg          Config
	nc           *nats.Conn
	log          *slog.Logger // cfg.Logger with the pipeline, stage and worker
	host         string
	handled      atomic.Uint64
	rejected     atomic.Uint64
	pubErrs      atomic.Uint64
	redeliveries atomic.Uint64
	faults       atomic.Uint64 // router faults: failed publishes and settlements, logged up to maxLogged
	// The handed-on messages' stage records: how many, and the sums of
	// their service times and waits, ns (ServiceStats' means).
	timed     atomic.Uint64
	serviceNS atomic.Int64
	waitNS    atomic.Int64
	metrics   *metrics      // nil without Config.MetricsAddr
	closed    chan struct{} // the connection closed for good
}

// Fault implements bus.Faulter: a worker logs asynchronous NATS errors
// (slow consumer, disconnect) as warnings; what it cannot serve through
// shows up in the harness as lost messages.
func (w *worker) Fault(err error) { w.log.Warn("nats", "err", err) }

func (w *worker) stats(stopped bool) Stats {
	return Stats{
		Name:          w.cfg.Name,
		Stage:         w.cfg.Stage + 1,
		PID:           os.Getpid(),
		Host:          w.host,
		Mode:          w.cfg.Mode,
		Concurrency:   w.cfg.Concurrent(),
		Handled:       w.handled.Load(),
		Rejected:      w.rejected.Load(),
		PublishErrors: w.pubErrs.Load(),
		Stopped:       stopped,
		Durations:     pipelines.DurationsString(w.cfg.Spec.Durations),
		Work:          string(w.cfg.Spec.Work),
		Transport:     transports.OrDefault(w.cfg.Transport).Name(),
		Metrics:       w.metricsAddr(),
	}
}

// metricsAddr is the address the metrics are served on, "" if none.
func (w *worker) metricsAddr() string {
	if w.metrics == nil {
		return ""
	}
	return w.metrics.addr
}

// Run serves the configured stage until ctx is done or a stop request
// arrives, then drains and returns its final Stats. It returns an error if it
// cannot connect, subscribe or announce readiness in time, if the connection
// is lost for good, or if the drain does not finish in time.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Mode == "" {
		cfg.Mode = Sync
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if err := cfg.Validate(); err != nil {
		return Stats{}, fmt.Errorf("worker %s: %w", cfg.Name, err)
	}
	stage := pipelines.StageName(cfg.Stage)
	w := &worker{cfg: cfg, log: cfg.Logger, closed: make(chan struct{})}
	if w.log == nil {
		w.log = discard()
	}
	w.log = w.log.With(slog.String("pipeline", cfg.Subjects.Prefix), slog.String("stage", stage), slog.String("worker", cfg.Name))
	w.host, _ = os.Hostname()

	nc, err := bus.Connect(cfg.NATS, cfg.Name, w)
	if err != nil {
		return w.stats(false), err
	}
	w.nc = nc
	defer nc.Close()
	// The client calls the closed handler at most once per connection.
	nc.SetClosedHandler(func(*nats.Conn) { close(w.closed) })
	nc.SetReconnectHandler(func(*nats.Conn) { w.log.Warn("reconnected", "server", natsconn.Mask(nc.ConnectedUrl())) })

	subjects := cfg.Subjects
	tr := transports.OrDefault(cfg.Transport)
	conn, err := tr.Open(ctx, transport.Env{NC: nc, NATS: cfg.NATS, Name: cfg.Name, Faults: w})
	if err != nil {
		return w.stats(false), fmt.Errorf("worker %s: open transport %s: %w", cfg.Name, tr.Name(), err)
	}
	defer func() { _ = conn.Close() }()
	run := transport.Run{Subjects: subjects, Stages: cfg.Spec.Stages(), Concurrency: cfg.RunConcurrency}
	step := pipelines.StepsFor(cfg.Spec, func(int) string { return cfg.Name })[cfg.Stage]
	next := run.Subject(cfg.Stage + 1)
	readyCtx, cancelReady := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancelReady()
	opts := router.Options{
		Name: "worker " + cfg.Name, Conn: conn, Run: run, Steps: []pipelines.Step{step},
		Executors: cfg.Concurrent(), Queue: queueCap, Block: true, Shared: true,
		Report: reporter{w}, Forwarding: func() uint64 { return w.handled.Add(1) }, Forwarded: w.forwarded,
	}
	rt, err := router.Start(readyCtx, opts)
	if err != nil && tr.Name() != transports.Default {
		// A worker started before any harness (a Compose stack's) finds
		// its stage's input missing on a broker that keeps it (a JetStream
		// consumer): it sets the run up itself, as Setup allows more than
		// once, and tries again. A harness that attaches later sets it up
		// again with each stage's concurrency (fleet.Attach).
		if serr := conn.Setup(readyCtx, run); serr != nil {
			err = errors.Join(err, fmt.Errorf("set the run up: %w", serr))
		} else {
			w.log.Info("set the run up", "transport", tr.Name(), "why", "the stage's input was not there")
			rt, err = router.Start(readyCtx, opts)
		}
	}
	if err != nil {
		return w.stats(false), fmt.Errorf("worker %s: serve stage %s (%s): %w", cfg.Name, stage, w.input(tr, nc), err)
	}
	defer rt.Stop()
	stop := make(chan string, 1)
	if _, err := nc.Subscribe(StopSubject(subjects, cfg.Stage), func(m *nats.Msg) {
		select {
		case stop <- m.Reply:
		default:
		}
	}); err != nil {
		return w.stats(false), fmt.Errorf("worker %s: subscribe to stop requests: %w", cfg.Name, err)
	}
	if _, err := nc.Subscribe(StatsSubject(subjects), func(m *nats.Msg) {
		if m.Reply != "" {
			w.reply(m.Reply, w.stats(false))
		}
	}); err != nil {
		return w.stats(false), fmt.Errorf("worker %s: subscribe to stats requests: %w", cfg.Name, err)
	}
	if _, err := nc.Subscribe(LiveSubject(subjects), func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		b, _ := json.Marshal(Liveness{Name: cfg.Name, Handled: w.handled.Load(), Held: rt.Held()})
		_ = nc.Publish(m.Reply, b)
	}); err != nil {
		return w.stats(false), fmt.Errorf("worker %s: subscribe to liveness requests: %w", cfg.Name, err)
	}
	if cfg.MetricsAddr != "" {
		if w.metrics, err = startMetrics(cfg.MetricsAddr, w); err != nil {
			return w.stats(false), fmt.Errorf("worker %s: %w", cfg.Name, err)
		}
		defer func() {
			if err := w.metrics.close(); err != nil {
				w.log.Warn("metrics", "err", err)
			}
		}()
	}
	// Registered after the closed handler above, which the service's own
	// chains to; stopped after the drain, or on any return.
	svc, err := w.register(nc)
	if err != nil {
		return w.stats(false), err
	}
	defer func() { _ = svc.Stop() }()
	if err := nc.FlushTimeout(cfg.ReadyTimeout); err != nil {
		return w.stats(false), fmt.Errorf("worker %s: register subscriptions with %s: %w", cfg.Name, natsconn.Mask(nc.ConnectedUrl()), err)
	}

	hello, _ := json.Marshal(w.stats(false))
	announceErr := nc.Publish(ReadySubject(subjects), hello)
	if announceErr == nil {
		announceErr = nc.FlushTimeout(cfg.ReadyTimeout)
	}
	if err := announceErr; err != nil {
		return w.stats(false), fmt.Errorf("worker %s: announce readiness on %s: %w", cfg.Name, ReadySubject(subjects), err)
	}
	w.log.Info("ready", "stages", cfg.Spec.Stages(), "stage_time", step.Duration.String(), "work", string(step.Work),
		"input", w.input(tr, nc), "mode", string(cfg.Mode), "concurrency", cfg.Concurrent(), "next", next, "metrics", w.metricsAddr())

	var reply string
	select {
	case reply = <-stop:
		w.log.Info("stop requested")
	case <-ctx.Done():
		// A stop from outside (a signal, the caller's context), not the
		// harness's request: the harness names the worker's exit, and
		// its stderr's tail says why.
		w.log.Warn("stopping", "cause", context.Cause(ctx).Error())
	case <-w.closed:
		return w.stats(false), fmt.Errorf("worker %s: connection to NATS closed: %v", cfg.Name, nc.LastError())
	}

	// Drain: stop receiving, finish every message held, publish the results.
	drainErr := rt.Drain(cfg.DrainTimeout)
	if drainErr == nil {
		drainErr = conn.Drain()
	}
	if err := nc.FlushTimeout(cfg.DrainTimeout); err != nil && drainErr == nil {
		drainErr = fmt.Errorf("worker %s: flush results: %w", cfg.Name, err)
	}
	// Stopped only once the results are known to have reached the server.
	final := w.stats(drainErr == nil)
	if err := svc.Stop(); err != nil {
		w.log.Warn("stop micro service", "err", err)
	}
	if reply != "" {
		w.reply(reply, final)
		if err := nc.FlushTimeout(bus.ConnectTimeout); err != nil {
			// The harness then names this worker as one that did not reply.
			w.log.Warn("stop reply not flushed", "err", err)
		}
	}
	level := slog.LevelInfo
	if drainErr != nil {
		level = slog.LevelError
	}
	w.log.LogAttrs(context.Background(), level, "stopped", slog.Uint64("handled", final.Handled), slog.Uint64("rejected", final.Rejected),
		slog.Uint64("publish_errors", final.PublishErrors), slog.Uint64("redeliveries", w.redeliveries.Load()), slog.Bool("drained", drainErr == nil))
	return final, drainErr
}

// reporter is the worker's router.Reporter: a rejected message is counted,
// logged and reported to the harness on RejectSubject, so its Sink counts
// it as in-process variants do; a fault is logged.
type reporter struct{ w *worker }

func (r reporter) Reject(stage string, err error) {
	w := r.w
	if n := w.rejected.Add(1); n <= maxLogged {
		w.log.Warn("rejected", "err", err, "logged", fmt.Sprintf("%d of at most %d", n, maxLogged))
	}
	b, _ := json.Marshal(Reject{Worker: w.cfg.Name, Stage: stage, Error: err.Error()})
	_ = w.nc.Publish(RejectSubject(w.cfg.Subjects), b)
}

func (r reporter) Fault(err error) {
	if n := r.w.faults.Add(1); n <= maxLogged {
		r.w.log.Error("fault", "err", err, "logged", fmt.Sprintf("%d of at most %d", n, maxLogged))
	}
}

// forwarded is the router's Forwarded hook: n was counted as handled
// before the publish (so that a stats request that follows the sink's
// receipt of the message finds it counted); a failed publish uncounts it.
// A message handed on adds its stage record's service time and wait to
// the means, and at debug level is logged: msg=handled with its
// correlation ID.
func (w *worker) forwarded(n uint64, env *pipelines.Envelope, err error) {
	if err != nil {
		w.handled.Add(^uint64(0)) // not handed on after all
		w.pubErrs.Add(1)
		return
	}
	if i := w.cfg.Stage; i < len(env.Stages) {
		r := env.Stages[i]
		service, wait := time.Duration(r.Finished-r.Started), time.Duration(r.Started-r.Arrived)
		w.timed.Add(1)
		w.serviceNS.Add(int64(service))
		w.waitNS.Add(int64(wait))
		// Checked first: the hot path builds no record when debug is off.
		if w.metrics != nil {
			w.metrics.observe(service, wait)
		}
		if ctx := context.Background(); w.log.Enabled(ctx, slog.LevelDebug) {
			w.log.LogAttrs(ctx, slog.LevelDebug, "handled", slog.String("cid", env.ID), slog.Uint64("seq", env.Seq),
				slog.Duration("wait", wait), slog.Duration("service", service))
		}
	}
	if w.cfg.OnHandled != nil {
		w.cfg.OnHandled(n)
	}
}

func (w *worker) reply(to string, s Stats) {
	b, _ := json.Marshal(s)
	if err := w.nc.Publish(to, b); err != nil {
		w.log.Warn("reply", "to", to, "err", err)
	}
}

// input says where the worker takes its stage's messages: a subject and
// queue group on its NATS server over core NATS; the stage's destination
// over another transport (a JetStream consumer, a RabbitMQ queue, a Kafka
// topic), with the NATS server that carries the control plane.
func (w *worker) input(tr transport.Transport, nc *nats.Conn) string {
	s, i := w.cfg.Subjects, w.cfg.Stage
	if tr.Name() == transports.Default {
		return fmt.Sprintf("%s on %s in queue group %s over %s", natsconn.Mask(nc.ConnectedUrl()), s.Stage(i), s.Queue(i), tr.Name())
	}
	return fmt.Sprintf("stage %s's destination over %s, control on %s", s.Stage(i), tr.Name(), natsconn.Mask(nc.ConnectedUrl()))
}
