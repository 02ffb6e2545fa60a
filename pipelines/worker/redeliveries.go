package worker

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
)

// RedeliverySubject is where workers report the redeliveries they receive
// (at-least-once transports), so the harness's Sink counts them by stage.
func RedeliverySubject(s bus.Subjects) string { return s.Prefix + ".redeliveries" }

// Redelivery is a worker's report of one redelivery it received.
type Redelivery struct {
	Worker string `json:"worker"`
	Stage  string `json:"stage"` // "S2"
}

// Redelivered implements pipelines.RedeliverySink for the worker's
// transport (which finds it in transport.Env.Faults): the redelivery is
// reported to the harness on RedeliverySubject.
func (w *worker) Redelivered(stage string) {
	b, _ := json.Marshal(Redelivery{Worker: w.cfg.Name, Stage: stage})
	if err := w.nc.Publish(RedeliverySubject(w.cfg.Subjects), b); err != nil {
		w.logf("report a redelivery at %s: %v", stage, err)
	}
}

// SubscribeRedeliveries counts in sink the redeliveries the workers of the
// run under subjects report. Unsubscribe the subscription when done.
func SubscribeRedeliveries(nc *nats.Conn, subjects bus.Subjects, sink pipelines.RedeliverySink) (*nats.Subscription, error) {
	sub, err := bus.Subscribe(nc, RedeliverySubject(subjects), "", func(m *nats.Msg) {
		var r Redelivery
		if json.Unmarshal(m.Data, &r) == nil && r.Stage != "" {
			sink.Redelivered(r.Stage)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("redeliveries: %w", err)
	}
	return sub, nil
}
