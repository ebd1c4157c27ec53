package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/natsbus"
	"github.com/microshop/microshop/internal/bus/rabbitbus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// The machine's own brokers, next to the embedded JetStream.
const (
	machineNATS   = "nats://127.0.0.1:4222"
	machineRabbit = "amqp://guest:guest@127.0.0.1:5672/"
)

// The one topic and consumer group of the benchmark. The topic is a real
// one, so the event takes the path OrderCreated takes.
const (
	topic = "orders.order.created"
	group = "bench"
)

// broker is one broker under test: connect returns a connection in
// namespace ns, skipping the benchmark when the server is not there, and
// registers the clean-up of what the benchmark created on it.
type broker struct {
	name    string
	connect func(b *testing.B, ns string) bus.Broker
}

// BenchmarkEventFlow measures events per second from a committed outbox
// row to an applied inbox row: b.N events are each committed in a
// transaction of their own on a producer SQLite database, an outbox relay
// publishes them one at a time (each acknowledged by the broker before it is
// marked), and a subscription applies each through the inbox into a consumer
// SQLite database. The clock runs from the first commit to the last apply.
func BenchmarkEventFlow(b *testing.B) {
	for _, br := range []broker{
		{"embedded", connectEmbedded},
		{"NATS", connectMachineNATS},
		{"RabbitMQ", connectRabbit},
	} {
		b.Run(br.name, func(b *testing.B) { flow(b, br) })
	}
}

func flow(b *testing.B, br broker) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := br.connect(b, namespace())
	producer := sqldbtest.OpenMessaging(b, "producer")
	consumer := sqldbtest.OpenMessaging(b, "consumer")
	if _, err := consumer.ExecContext(ctx, `CREATE TABLE applied (event_id TEXT PRIMARY KEY, key TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}

	relay := outbox.NewRelay(producer, conn, logger(b), outbox.Options{Service: "bench"})
	producer.OnCommit(relay.Wake) // as internal/shop wires it: publish at once, not at the next poll
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()

	// The handler's effect is a row of its own, in the inbox's transaction.
	in := inbox.New(consumer, "bench", logger(b))
	apply := in.Handle(group, func(ctx context.Context, e event.Event) error {
		_, err := consumer.ExecContext(ctx, `INSERT INTO applied (event_id, key, applied_at) VALUES (?, ?, ?)`,
			e.ID, e.Key, sqldb.Stamp(time.Now()))
		return err
	})
	var (
		seen    sync.Map // event ids applied and committed, so a redelivery is not counted twice
		applied atomic.Int64
		all     = make(chan struct{})
	)
	counted := func(ctx context.Context, d bus.Delivery) error {
		if err := apply(ctx, d); err != nil {
			return err
		}
		if _, dup := seen.LoadOrStore(d.Event.ID, true); !dup && applied.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	}
	ready := make(chan struct{})
	subDone := make(chan error, 1)
	go func() {
		subDone <- conn.Subscribe(ctx, bus.Subscription{
			Group: group, Topics: []string{topic}, DeadLetter: in.DeadLetters(group),
			Ready: func() { close(ready) },
		}.WithDefaults(), counted)
	}()
	select {
	case <-ready:
	case err := <-subDone:
		b.Fatalf("subscribing on %s: %v", br.name, err)
	case <-time.After(30 * time.Second):
		b.Fatalf("the subscription on %s was not ready after 30s", br.name)
	}

	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		e, err := event.New("bench", topic, "OrderCreated", 1, fmt.Sprintf("order-%d", i), payload(i))
		if err != nil {
			b.Fatal(err)
		}
		if err := producer.Atomic(ctx, func(ctx context.Context) error { return outbox.Add(ctx, producer, e) }); err != nil {
			b.Fatalf("committing event %d: %v", i, err)
		}
	}
	select {
	case <-all:
	case err := <-subDone:
		b.Fatalf("the subscription on %s ended after %d of %d events: %v", br.name, applied.Load(), b.N, err)
	case <-time.After(5*time.Minute + time.Duration(b.N)*time.Millisecond):
		b.Fatalf("only %d of %d events applied on %s", applied.Load(), b.N, br.name)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")

	cancel()
	if err := <-subDone; err != nil {
		b.Errorf("subscription: %v", err)
	}
	if err := <-relayDone; err != nil {
		b.Errorf("relay: %v", err)
	}
	var rows int
	if err := consumer.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM applied`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	if rows != b.N {
		b.Errorf("the consumer applied %d rows, want %d: an event was lost or applied twice", rows, b.N)
	}
}

// payload is about the size of a real OrderCreated.
func payload(i int) map[string]any {
	return map[string]any{
		"order_id": fmt.Sprintf("order-%d", i), "user_id": "user-bench", "saga": "choreography",
		"items":       []map[string]any{{"product_id": "0194a3f0-0000-7000-8000-000000000001", "quantity": 2, "price_cents": 1250}},
		"total_cents": 2500, "currency": "EUR", "card_token": "tok_0194a3f0000070008000000000000001",
		"shipping_address": map[string]string{"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
		"created_at":       time.Now().UTC(),
	}
}

func logger(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// namespace is a fresh broker namespace, so that runs sharing a server do
// not see each other's events.
func namespace() string {
	p := make([]byte, 4)
	_, _ = rand.Read(p)
	return "bench-" + hex.EncodeToString(p)
}

// connectEmbedded starts a JetStream server in this process, as `microshop
// up` does (file storage, SyncAlways), and connects to it.
func connectEmbedded(b *testing.B, ns string) bus.Broker {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := natsbus.Embedded(ctx, b.TempDir(), "127.0.0.1:0", logger(b))
	if err != nil {
		b.Fatalf("starting the embedded broker: %v", err)
	}
	b.Cleanup(srv.Shutdown) // its files go with the temporary folder
	conn, err := natsbus.Connect(ctx, srv.ClientURL(), natsbus.Options{Name: "bench", Log: logger(b), Namespace: ns})
	if err != nil {
		b.Fatalf("connecting to the embedded broker: %v", err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return conn
}

// connectMachineNATS connects to the machine's NATS server and deletes the
// namespace's stream afterwards.
func connectMachineNATS(b *testing.B, ns string) bus.Broker {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := natsbus.Connect(ctx, machineNATS, natsbus.Options{Name: "bench", Log: logger(b), Namespace: ns})
	if err != nil {
		b.Skipf("no NATS with JetStream at %s: %v", machineNATS, err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		nc, err := nats.Connect(machineNATS)
		if err != nil {
			b.Errorf("cleaning up namespace %s on NATS: %v", ns, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Errorf("cleaning up namespace %s on NATS: %v", ns, err)
			return
		}
		domain, _, _ := strings.Cut(topic, ".")
		stream := strings.ToUpper(strings.ReplaceAll(ns+"_"+domain, "-", "_")) // as natsbus names it
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			b.Errorf("deleting stream %s: %v", stream, err)
		}
	})
	return conn
}

// connectRabbit connects to the machine's RabbitMQ and deletes the
// namespace's exchange and queues afterwards.
func connectRabbit(b *testing.B, ns string) bus.Broker {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := rabbitbus.Connect(ctx, machineRabbit, rabbitbus.Options{Name: "bench", Log: logger(b), Namespace: ns})
	if err != nil {
		b.Skipf("no RabbitMQ at %s: %v", strings.Replace(machineRabbit, "guest:guest@", "", 1), err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		ac, err := amqp.Dial(machineRabbit)
		if err != nil {
			b.Errorf("cleaning up namespace %s on RabbitMQ: %v", ns, err)
			return
		}
		defer ac.Close()
		ch, err := ac.Channel()
		if err != nil {
			b.Errorf("cleaning up namespace %s on RabbitMQ: %v", ns, err)
			return
		}
		defer ch.Close()
		// As rabbitbus names them: "<ns>.<group>", its ".dead" queue, and
		// "<ns>.<domain>".
		for _, q := range []string{ns + "." + group, ns + "." + group + ".dead"} {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				b.Errorf("deleting queue %s: %v", q, err)
			}
		}
		domain, _, _ := strings.Cut(topic, ".")
		if err := ch.ExchangeDelete(ns+"."+domain, false, false); err != nil {
			b.Errorf("deleting exchange %s.%s: %v", ns, domain, err)
		}
	})
	return conn
}
