package fleet

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// SubscribeRedeliveries counts in sink the redeliveries the workers of the
// run under subjects report (worker.RedeliverySubject). Unsubscribe the
// subscription when done.
func SubscribeRedeliveries(nc *nats.Conn, subjects bus.Subjects, sink pipelines.RedeliverySink) (*nats.Subscription, error) {
	sub, err := bus.Subscribe(nc, worker.RedeliverySubject(subjects), "", func(m *nats.Msg) {
		var r worker.Redelivery
		if json.Unmarshal(m.Data, &r) == nil && r.Stage != "" {
			sink.Redelivered(r.Stage)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("redeliveries: %w", err)
	}
	return sub, nil
}
