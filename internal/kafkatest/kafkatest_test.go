package kafkatest

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

// TestBrokersFake: without KAFKA_BROKERS, Brokers starts a kfake cluster
// on loopback ports that accept connections until the test ends.
func TestBrokersFake(t *testing.T) {
	benchkit.CheckLeaks(t)
	t.Setenv(EnvBrokers, "")
	brokers, kind := Brokers(t)
	if kind != KindKfake || len(brokers) != FakeBrokers {
		t.Fatalf("Brokers = %v, %q; want %d kfake brokers", brokers, kind, FakeBrokers)
	}
	for _, b := range brokers {
		if !strings.HasPrefix(b, "127.0.0.1:") {
			t.Errorf("broker %s not on loopback", b)
		}
		c, err := net.DialTimeout("tcp", b, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", b, err)
		}
		c.Close()
	}
}

// TestBrokersNamed: with KAFKA_BROKERS set, Brokers and Real return that
// cluster, starting nothing.
func TestBrokersNamed(t *testing.T) {
	t.Setenv(EnvBrokers, " a:1, b:2 ,")
	brokers, kind := Brokers(t)
	if kind != KindKafka || strings.Join(brokers, ",") != "a:1,b:2" {
		t.Errorf("Brokers = %v, %q", brokers, kind)
	}
	if got := Real(t); strings.Join(got, ",") != "a:1,b:2" {
		t.Errorf("Real = %v", got)
	}
}

// TestRealSkips: without KAFKA_BROKERS, Real skips with SkipReal.
func TestRealSkips(t *testing.T) {
	t.Setenv(EnvBrokers, "")
	var sub *testing.T
	t.Run("bench", func(t *testing.T) {
		sub = t
		Real(t)
		t.Error("Real did not skip")
	})
	if !sub.Skipped() {
		t.Error("not skipped")
	}
}
