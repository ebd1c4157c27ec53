package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/inbox"
)

func BenchmarkScratchWrites(b *testing.B) {
	producer := openDB(b, "p.db")
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		e, _ := event.New("bench", topic, "OrderCreated", 1, fmt.Sprintf("order-%d", i), payload(i))
		if err := producer.Atomic(ctx, func(ctx context.Context) error { return outbox.Add(ctx, producer, e) }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScratchPublish(b *testing.B) {
	for _, br := range []broker{{"embedded", connectEmbedded}, {"NATS", connectMachineNATS}, {"RabbitMQ", connectRabbit}} {
		b.Run(br.name, func(b *testing.B) {
			conn := br.connect(b, namespace())
			ctx := context.Background()
			// a subscription so rabbit routes
			in := inbox.New(openDB(b, "c.db"), "", nil)
			_ = in
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ready := make(chan struct{})
			go conn.Subscribe(sctx, bus.Subscription{Group: group, Topics: []string{topic}, DeadLetter: in.DeadLetters(group), Ready: func() { close(ready) }}.WithDefaults(), func(context.Context, bus.Delivery) error { return nil })
			<-ready
			b.ResetTimer()
			t0 := time.Now()
			for i := range b.N {
				e, _ := event.New("bench", topic, "OrderCreated", 1, fmt.Sprintf("order-%d", i), payload(i))
				if err := conn.Publish(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "pub/s")
		})
	}
}
