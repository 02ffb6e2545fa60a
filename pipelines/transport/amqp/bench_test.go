package amqp_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/natspipe/natspipe/pipelines/transport"
)

// BenchmarkHop is one hop's round trip: publish (confirmed), the
// delivery to a member of Limit 1, its ack. ns/op is the hop.
func BenchmarkHop(b *testing.B) {
	for _, quorum := range []bool{false, true} {
		queue := "classic"
		if quorum {
			queue = "quorum"
		}
		b.Run("queue="+queue, func(b *testing.B) {
			r := newRig(b, quorum)
			got := make(chan struct{}, 1)
			ctx := context.Background()
			k, err := r.conn.Consume(ctx, r.run, 0, transport.ConsumeOptions{Member: "w", Limit: 1}, func(d transport.Delivery) {
				if err := d.Ack(); err != nil {
					b.Error(err)
				}
				got <- struct{}{}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = k.Stop() }()
			p, err := r.conn.Publisher(r.run, 0)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 256)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := p.Publish(ctx, transport.Outgoing{Data: data, Key: strconv.Itoa(i)}); err != nil {
					b.Fatal(err)
				}
				<-got
			}
		})
	}
}

// BenchmarkPublishParallel is confirmed publishes from several goroutines
// on one publisher (the router's executors): ns/op per message.
func BenchmarkPublishParallel(b *testing.B) {
	for _, g := range []int{1, 4, 16} {
		b.Run("publishers="+strconv.Itoa(g), func(b *testing.B) {
			r := newRig(b, false)
			p, err := r.conn.Publisher(r.run, 0)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 256)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + g - 1) / g
			for range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if err := p.Publish(ctx, transport.Outgoing{Data: data, Key: "k"}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
