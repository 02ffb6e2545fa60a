package worker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/transports"
)

// The NATS micro service every worker registers on its NATS connection, so
// that the NATS tools see a running pipeline's workers: `nats micro ls`,
// `nats micro info natspipe`, `nats micro stats natspipe` (requests on
// $SRV.PING, $SRV.INFO and $SRV.STATS, optionally .natspipe). Every
// transport's worker has a NATS connection (the control plane), so every
// worker registers.
const (
	// ServiceName is the service's name: every worker of every pipeline
	// registers under it, told apart by its metadata (see ServiceMetadata).
	ServiceName = "natspipe"
	// ServiceEndpoint is the name of the service's one endpoint, which
	// answers with the worker's Stats (see ServiceSubject).
	ServiceEndpoint = "stats"
	// devVersion is the service version of a build without a module
	// version (go test, go build of a work tree without VCS stamping).
	devVersion = "0.0.0-dev"
)

// Keys of the service's metadata (micro.Info.Metadata).
const (
	MetaStage       = "stage"       // "S2"
	MetaWorker      = "worker"      // the worker's name, e.g. "p4-S2-w1"
	MetaVariant     = "variant"     // "p3", "p4", or "" when not told (-variant)
	MetaTransport   = "transport"   // "core", "js", "amqp", "kafka"
	MetaPrefix      = "prefix"      // the pipeline's subject prefix
	MetaMode        = "mode"        // "sync" or "async"
	MetaConcurrency = "concurrency" // messages in stage work at once at most
	MetaMetrics     = "metrics"     // host:port of its Prometheus metrics, when served
)

// ServiceSubject is the subject of the service's stats endpoint for the
// workers of stage i (0-based): <prefix>.svc.stats.sK, outside the
// pipeline's data and control subjects. It has no queue group: a request
// on it gets a reply (the worker's Stats) from every worker of the stage.
func ServiceSubject(s bus.Subjects, i int) string {
	return s.Prefix + ".svc." + ServiceEndpoint + ".s" + strconv.Itoa(i+1)
}

// ServiceStats is what a worker's stats handler adds to its $SRV.STATS
// reply, as the endpoint's data (micro.EndpointStats.Data).
type ServiceStats struct {
	Stage  string `json:"stage"` // "S2"
	Worker string `json:"worker"`
	// Handled counts the messages worked on and handed to the next stage.
	Handled uint64 `json:"handled"`
	// Rejected counts the messages refused as malformed or at the wrong stage.
	Rejected uint64 `json:"rejected"`
	// PublishErrors counts the results that could not be handed on.
	PublishErrors uint64 `json:"publish_errors"`
	// Redeliveries counts the messages the worker received again (on
	// at-least-once transports; always 0 over core NATS).
	Redeliveries uint64 `json:"redeliveries"`
	// MeanServiceMS is the mean service time (stage work) of the handled
	// messages, and MeanWaitMS their mean wait in the worker before it, in
	// milliseconds; 0 before the first.
	MeanServiceMS float64 `json:"mean_service_ms"`
	MeanWaitMS    float64 `json:"mean_wait_ms"`
}

// semverRE is the SemVer 2.0 grammar (semver.org) micro requires of a
// service version.
const semverRE = `^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`

// ServiceVersion is the version the service registers with: the module
// version the binary was built from, without its "v" (a release's
// "1.2.0", a VCS-stamped build's "0.0.0-20260101120000-abcdef123456+dirty"),
// else "0.0.0-dev".
func ServiceVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return devVersion
	}
	return serviceVersion(bi.Main.Version)
}

func serviceVersion(module string) string {
	v := strings.TrimPrefix(module, "v")
	if !regexp.MustCompile(semverRE).MatchString(v) {
		return devVersion
	}
	return v
}

// ServiceMetadata is the metadata the worker registers with.
func (c Config) ServiceMetadata() map[string]string {
	return map[string]string{
		MetaStage:       pipelines.StageName(c.Stage),
		MetaWorker:      c.Name,
		MetaVariant:     c.Variant,
		MetaTransport:   transports.OrDefault(c.Transport).Name(),
		MetaPrefix:      c.Subjects.Prefix,
		MetaMode:        string(c.Mode),
		MetaConcurrency: strconv.Itoa(c.Concurrent()),
	}
}

// serviceStats is the worker's counts as its stats handler reports them.
func (w *worker) serviceStats() ServiceStats {
	s := ServiceStats{
		Stage:         pipelines.StageName(w.cfg.Stage),
		Worker:        w.cfg.Name,
		Handled:       w.handled.Load(),
		Rejected:      w.rejected.Load(),
		PublishErrors: w.pubErrs.Load(),
		Redeliveries:  w.redeliveries.Load(),
	}
	if n := w.timed.Load(); n > 0 {
		ms := func(ns int64) float64 { return float64(ns) / float64(n) / float64(time.Millisecond) }
		s.MeanServiceMS, s.MeanWaitMS = ms(w.serviceNS.Load()), ms(w.waitNS.Load())
	}
	return s
}

// register adds the worker's micro service on nc: see ServiceName. Stop
// the service before the connection closes.
func (w *worker) register(nc *nats.Conn) (micro.Service, error) {
	c := w.cfg
	stage := pipelines.StageName(c.Stage)
	meta := c.ServiceMetadata()
	if a := w.metricsAddr(); a != "" {
		meta[MetaMetrics] = a
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:    ServiceName,
		Version: ServiceVersion(),
		Description: fmt.Sprintf("natspipe stage %s worker %s of pipeline %s (%s, %s x%d)",
			stage, c.Name, c.Subjects.Prefix, transports.OrDefault(c.Transport).Name(), c.Mode, c.Concurrent()),
		Metadata:     meta,
		StatsHandler: func(*micro.Endpoint) any { return w.serviceStats() },
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			w.log.Warn("micro service error", "subject", err.Subject, "err", err.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("worker %s: register micro service %s: %w", c.Name, ServiceName, err)
	}
	if err := svc.AddEndpoint(ServiceEndpoint, micro.HandlerFunc(func(r micro.Request) {
		b, _ := json.Marshal(w.stats(false))
		_ = r.Respond(b)
	}), micro.WithEndpointSubject(ServiceSubject(c.Subjects, c.Stage)), micro.WithEndpointQueueGroupDisabled(),
		micro.WithEndpointMetadata(map[string]string{MetaStage: stage})); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("worker %s: add micro endpoint %s: %w", c.Name, ServiceEndpoint, err)
	}
	return svc, nil
}
