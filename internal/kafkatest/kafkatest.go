// Package kafkatest gives tests a Kafka cluster, in the manner of
// internal/natstest: the cluster KAFKA_BROKERS names when it is set, or
// else franz-go's in-process fake (kfake) on loopback ports, closed when
// the test ends.
//
// kfake speaks Kafka's protocol (topics, consumer groups, idempotent
// producing) but keeps everything in memory and replicates nothing: it is
// for correctness, and its timings are not Kafka's. Benchmarks take their
// cluster from Real, which skips them without a real one.
//
// In a test:
//
//	func TestRoundTrip(t *testing.T) {
//		brokers, kind := kafkatest.Brokers(t)
//		tr := kafka.Transport{Brokers: brokers}
//		// ...; kind ("kafka" or "kfake") says which figures these are.
//	}
package kafkatest

import (
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/natspipe/natspipe/internal/benchrun"
)

// EnvBrokers names a real cluster: host:port seed brokers, comma-separated
// (the same variable as the Kafka transport's).
const EnvBrokers = "KAFKA_BROKERS"

// Kinds of cluster Brokers returns.
const (
	// KindKafka is the real cluster EnvBrokers names.
	KindKafka = "kafka"
	// KindKfake is franz-go's in-process fake cluster.
	KindKfake = "kfake"
)

// FakeBrokers is the number of brokers of the fake cluster: three, so that
// a group's coordinator and its partitions' leaders are not all one.
const FakeBrokers = 3

// SkipReal is the one line a benchmark is skipped with when no real
// cluster is named.
const SkipReal = "kafka: benchmarks need a real Kafka cluster: set " + EnvBrokers + " (kfake's timings are not Kafka's)"

// Brokers returns the seed brokers of a cluster for tb and its kind: the
// cluster EnvBrokers names ("kafka"), or else a fresh kfake cluster
// ("kfake") of FakeBrokers brokers on 127.0.0.1, with automatic topic
// creation off (as the transport creates its topics), closed in tb's
// Cleanup. A test skips in a benchmark run (package benchrun).
func Brokers(tb testing.TB) (brokers []string, kind string) {
	tb.Helper()
	benchrun.SkipTest(tb, "kafka: broker test")
	if b := named(); b != nil {
		return b, KindKafka
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(FakeBrokers))
	if err != nil {
		tb.Fatalf("kafkatest: start kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs(), KindKfake
}

// Real returns the seed brokers EnvBrokers names, or skips tb with
// SkipReal: for benchmarks, whose figures must be Kafka's.
func Real(tb testing.TB) []string {
	tb.Helper()
	b := named()
	if b == nil {
		tb.Skip(SkipReal)
	}
	return b
}

func named() []string {
	var b []string
	for _, s := range strings.Split(os.Getenv(EnvBrokers), ",") {
		if s = strings.TrimSpace(s); s != "" {
			b = append(b, s)
		}
	}
	return b
}
