// Package brokertest readies a transport for a test or benchmark: a
// transport whose broker is not the embedded NATS server gets one, found
// (RABBITMQ_URL, KAFKA_BROKERS) or started for the test binary (a private
// rabbitmq-server node, an in-process kfake cluster for tests), or the
// test skips with one line saying how to get one.
//
// Call For inside the sub-test or sub-benchmark that uses the transport,
// so that a broker starts only for what runs:
//
//	b.Run("transport="+tr.Name(), func(b *testing.B) {
//		tr := brokertest.For(b, tr)
//		// ...
//	})
package brokertest

import (
	"testing"

	"github.com/natspipe/natspipe/internal/kafkatest"
	"github.com/natspipe/natspipe/internal/rabbittest"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/amqp"
	"github.com/natspipe/natspipe/pipelines/transport/kafka"
)

// For returns tr ready to open in tb: NATS transports as they are;
// RabbitMQ with the test binary's broker (RABBITMQ_URL's, or a private
// rabbitmq-server node started on first use and stopped at the binary's
// end: internal/rabbittest.Shared; without either tb skips, or fails when
// NATSPIPE_REQUIRE_BROKERS names amqp); Kafka
// with its brokers (KAFKA_BROKERS; for a test without it, a kfake cluster
// for tb, marked as the stand-in; a benchmark without it skips, since
// kfake's timings are not Kafka's).
func For(tb testing.TB, tr transport.Transport) transport.Transport {
	tb.Helper()
	switch t := tr.(type) {
	case amqp.Transport:
		if t.URL == "" {
			t.URL = rabbittest.Shared(tb)
		}
		return t
	case kafka.Transport:
		if t.Brokers != nil {
			return t
		}
		if _, bench := tb.(*testing.B); bench {
			t.Brokers = kafkatest.Real(tb)
			return t
		}
		brokers, kind := kafkatest.Brokers(tb)
		t.Brokers = brokers
		if kind == kafkatest.KindKfake {
			t.StandIn = kafkatest.KindKfake
		}
		return t
	}
	return tr
}
