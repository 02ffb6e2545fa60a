package p4

import (
	"syscall"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/benchrun"
	"github.com/natspipe/natspipe/internal/brokertest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
	"github.com/natspipe/natspipe/pipelines/transport/kafka"
)

// TestBrokerKillS2WorkerMidRun kills (SIGKILL) an S2 worker of 1-4-1-1
// mid-run over the brokers of their own, RabbitMQ (a private node, or
// RABBITMQ_URL) and Kafka (franz-go's kfake, or KAFKA_BROKERS): nothing is
// lost, every correlation ID reaches the sink once (a duplicate is counted
// and dropped), and what the victim held is redelivered (and, over
// RabbitMQ, counted; Kafka's count is a lower bound). S2 is made the
// bottleneck by far (4 workers x 40 ms, 100 msgs/s, against S1's 1 ms,
// which stays ahead even under -race on a busy machine where a hop costs
// milliseconds; window 32), so its workers always have work queued and the
// victim holds a message when it dies.
func TestBrokerKillS2WorkerMidRun(t *testing.T) {
	benchrun.SkipTest(t, "fault injection")
	for _, tr := range []transport.Transport{amqp.Transport{}, kafka.Transport{}} {
		t.Run("transport="+tr.Name(), func(t *testing.T) {
			benchkit.CheckLeaks(t)
			tr := brokertest.For(t, tr)
			spec := pipelines.Spec{Durations: []time.Duration{time.Millisecond, 40 * time.Millisecond, time.Millisecond, time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 32}
			const n = 200
			r := newRig(t, spec, Options{Alloc: Alloc{1, 4, 1, 1}, Processes: fleet.Processes{Transport: tr}},
				pipelines.RunConfig{Window: 32, LossTimeout: 45 * time.Second, Timeout: 2 * time.Minute})
			const victim = "p4-S2-w2"
			done := r.runAsync(n)
			waitFor(t, "a third of the messages", 60*time.Second, func() bool { return r.runner.Progress().Completed >= n/3 })
			if err := syscall.Kill(r.pipe.PID(victim), syscall.SIGKILL); err != nil {
				t.Fatalf("kill %s: %v", victim, err)
			}
			res, _ := wait(t, done)
			if died := incidentsOf(res, victim, pipelines.WorkerDied); len(died) != 1 {
				t.Errorf("incidents %v, want %s's death", res.Incidents, victim)
			}
			exactlyOnce(t, res, n)
			// RabbitMQ flags every redelivery. Kafka has no such flag: a
			// record counts as redelivered when it is at or below the
			// highest offset the last commit recorded as handed out, so a
			// record the victim took after its last commit (at most
			// CommitInterval before it died) comes again as a first
			// delivery: kafka's count is a lower bound (package doc).
			if res.Redeliveries["S2"] < 1 && tr.Name() != kafka.Name {
				t.Errorf("redeliveries %v: want at least one at S2 (what %s held)", res.Redeliveries, victim)
			}
			t.Logf("%s: duplicates %d, redeliveries %s", res.Name(), res.Duplicates, pipelines.FormatRedeliveries(res.Redeliveries))
		})
	}
}
