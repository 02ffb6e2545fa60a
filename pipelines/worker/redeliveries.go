package worker

import (
	"encoding/json"

	"github.com/natspipe/natspipe/pipelines/bus"
)

// RedeliverySubject is where workers report the redeliveries they receive
// (at-least-once transports), so the harness's Sink counts them by stage (see
// fleet.SubscribeRedeliveries).
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
	w.redeliveries.Add(1)
	b, _ := json.Marshal(Redelivery{Worker: w.cfg.Name, Stage: stage})
	if err := w.nc.Publish(RedeliverySubject(w.cfg.Subjects), b); err != nil {
		w.log.Warn("report a redelivery", "at", stage, "err", err)
	}
}
