package bench

import (
	"context"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/brokertest"
	"github.com/natspipe/natspipe/pipelines"
)

// messagingWindow is BenchmarkMessaging's closed-loop window.
const messagingWindow = 256

// messagingRawN is how many messages the raw chain passes beside each
// variant, outside the timed section.
const messagingRawN = 5000

// BenchmarkMessaging measures pure messaging through the one stage router:
// P1 and P2 over transports.FromEnv's transports (core by default:
// BenchmarkMessaging/impl=p1/transport=core) with zero-duration stages and a window of
// 256, against a raw nats.go chain of the same shape (a subscriber per
// stage that republishes, 5 hops) at the same window, measured in the same
// run just before and just after the variant, outside the timed section. It reports msgs/s
// (messages over the whole run's wall time, for every impl alike) and
// of-raw, the variant's msgs/s over the raw chain's.
func BenchmarkMessaging(b *testing.B) {
	srv, spec, raw := messagingRig(b)
	payload := make([]byte, spec.PayloadSize)
	rawRate := func(tb testing.TB, n int) float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		took, err := raw.Windowed(ctx, n, messagingWindow, payload)
		if err != nil {
			tb.Fatal(err)
		}
		return float64(n) / took.Seconds()
	}
	b.Run("impl=raw", func(b *testing.B) {
		b.ResetTimer()
		rate := rawRate(b, b.N)
		b.StopTimer()
		b.ReportMetric(rate, "msgs/s")
		b.ReportMetric(1, "of-raw")
	})
	for _, v := range variantsOver(b, selectedTransports(b), true) {
		if v.impl != "p1" && v.impl != "p2" {
			continue
		}
		fx := benchkit.Once(func() fixture {
			return setup(b, srv.Conn, v, pipelines.RunConfig{Spec: spec, Window: messagingWindow, Timeout: benchkit.Timeout(b)})
		})
		b.Run(v.name(), func(b *testing.B) {
			brokertest.For(b, v.cfg.Transport) // skips, saying why, when its broker is not there
			f := fx()
			before := rawRate(b, messagingRawN) // beside the variant, outside the timed section
			b.ResetTimer()
			res, err := f.runner.Run(context.Background(), f.sender, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			// The raw chain's rate before and after the variant's run: on a
			// shared machine the load can change between the two.
			ref := (before + rawRate(b, messagingRawN)) / 2
			rate := float64(b.N) / res.Elapsed.Seconds()
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(rate/ref, "of-raw")
		})
	}
}
