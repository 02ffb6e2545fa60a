package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natspipe/natspipe/pipelines"
)

// MetricsPath is where a worker started with -metrics-addr serves its
// Prometheus metrics.
const MetricsPath = "/metrics"

// Metric names a worker exports (each with the labels pipeline, stage and
// worker), beside the Go runtime's and the process's.
const (
	// MetricService is the histogram of the stage work of the messages
	// handed on, in seconds.
	MetricService = "natspipe_stage_service_seconds"
	// MetricWait is the histogram of their waits in the worker, from
	// arrival to the start of the stage work, in seconds.
	MetricWait = "natspipe_stage_wait_seconds"
	// MetricHandled, MetricRejected, MetricPublishErrors and
	// MetricRedeliveries are the counters of Stats and ServiceStats.
	MetricHandled       = "natspipe_worker_handled_total"
	MetricRejected      = "natspipe_worker_rejected_total"
	MetricPublishErrors = "natspipe_worker_publish_errors_total"
	MetricRedeliveries  = "natspipe_worker_redeliveries_total"
)

// metricsShutdown bounds the metrics server's shutdown.
const metricsShutdown = 5 * time.Second

// metricBuckets are the histograms' upper bounds: 100 µs doubling to
// about 13 s, so a stage of any time the harness accepts below that falls
// in a bucket of its own size.
func metricBuckets() []float64 { return prometheus.ExponentialBuckets(0.0001, 2, 18) }

// metrics is a worker's Prometheus registry and HTTP server.
type metrics struct {
	service, wait prometheus.Histogram
	srv           *http.Server
	addr          string // the address it listens on (a port 0 resolved)
	done          chan error
}

// startMetrics registers the worker's metrics and serves them on addr at
// MetricsPath until close.
func startMetrics(addr string, w *worker) (*metrics, error) {
	labels := prometheus.Labels{"pipeline": w.cfg.Subjects.Prefix, "stage": pipelines.StageName(w.cfg.Stage), "worker": w.cfg.Name}
	m := &metrics{
		service: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricService, ConstLabels: labels, Buckets: metricBuckets(),
			Help: "Stage work of the messages the worker handed on, seconds."}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricWait, ConstLabels: labels, Buckets: metricBuckets(),
			Help: "Wait of the messages the worker handed on, from arrival in the worker to the start of the stage work, seconds."}),
		done: make(chan error, 1),
	}
	counter := func(name, help string, v func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return float64(v()) })
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		m.service, m.wait,
		counter(MetricHandled, "Messages worked on and handed to the next stage.", w.handled.Load),
		counter(MetricRejected, "Messages refused as malformed or at the wrong stage.", w.rejected.Load),
		counter(MetricPublishErrors, "Results that could not be handed on.", w.pubErrs.Load),
		counter(MetricRedeliveries, "Messages received again (at-least-once transports).", w.redeliveries.Load),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	m.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { m.done <- m.srv.Serve(ln) }()
	return m, nil
}

// observe records one handed-on message.
func (m *metrics) observe(service, wait time.Duration) {
	m.service.Observe(service.Seconds())
	m.wait.Observe(wait.Seconds())
}

// close shuts the server down (bounded) and waits for it.
func (m *metrics) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	if serr := <-m.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics server on %s: %w", m.addr, err)
	}
	return nil
}
