package rabbitbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/bustest"
	"github.com/microshop/microshop/internal/bus/internal/dispatch"
	"github.com/microshop/microshop/internal/bus/rabbitbus/rabbitbustest"
	"github.com/microshop/microshop/internal/event"
)

// machineRabbit is the RabbitMQ every development and CI machine runs.
const machineRabbit = "amqp://guest:guest@127.0.0.1:5672/"

// testBroker is a Bus that can also publish raw bytes, for the suite, and
// notes the exchanges and queues it touches, so that the test can delete
// them afterwards from the shared broker.
type testBroker struct {
	*Bus
	touched *names
}

// names is what a test's brokers declared.
type names struct {
	mu        sync.Mutex
	exchanges map[string]bool
	queues    map[string]bool
}

// add notes the queues of group and the exchanges of topics, as b names
// them.
func (n *names) add(b *Bus, group string, topics ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, t := range topics {
		d, _, _ := strings.Cut(t, ".")
		n.exchanges[b.exchange(d)] = true
	}
	if group != "" {
		n.queues[b.queue(group)] = true
		n.queues[b.queue(group)+".dead"] = true
	}
}

// remove deletes what the brokers declared.
func (n *names) remove(t testing.TB) {
	conn, err := amqp.Dial(machineRabbit)
	if err != nil {
		t.Errorf("cleaning up: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleaning up: %v", err)
		return
	}
	for q := range n.queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Errorf("deleting queue %s: %v", q, err)
			return
		}
	}
	for x := range n.exchanges {
		if err := ch.ExchangeDelete(x, false, false); err != nil {
			t.Errorf("deleting exchange %s: %v", x, err)
			return
		}
	}
}

func (b testBroker) PublishRaw(ctx context.Context, topic string, body []byte) error {
	b.touched.add(b.Bus, "", topic)
	domain, key, _ := strings.Cut(topic, ".")
	p := <-b.pubs
	defer func() { b.pubs <- p }()
	return b.publishOnce(ctx, p, b.exchange(domain), key, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body})
}

func (b testBroker) Publish(ctx context.Context, e event.Event) error {
	b.touched.add(b.Bus, "", e.Topic)
	return b.Bus.Publish(ctx, e)
}

func (b testBroker) Subscribe(ctx context.Context, s bus.Subscription, h bus.Handler) error {
	b.touched.add(b.Bus, s.Group, s.Topics...)
	return b.Bus.Subscribe(ctx, s, h)
}

var _ bustest.RawPublisher = testBroker{}

// machineBroker skips the test when the machine's RabbitMQ is not reachable,
// unless CI=true, and returns a function that connects to it; what the
// connections declared is deleted when the test ends.
func machineBroker(t *testing.T) func(t *testing.T) *Bus {
	connect := machineBrokerNS(t)
	return func(t *testing.T) *Bus { return connect(t, "") }
}

// machineBrokerNS is machineBroker with connections in a namespace.
func machineBrokerNS(t *testing.T) func(t *testing.T, ns string) *Bus {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	b, err := Connect(ctx, machineRabbit, Options{})
	cancel()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ at %s is required in CI: %v", machineRabbit, err)
		}
		t.Skipf("no RabbitMQ at %s: %v", machineRabbit, err)
	}
	_ = b.Close()
	return func(t *testing.T, ns string) *Bus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := Connect(ctx, machineRabbit, Options{Name: "rabbitbus-test", Log: testLog(t), Namespace: ns})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func TestSuite(t *testing.T) {
	connect := machineBroker(t)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) }) // after every subtest
	bustest.Run(t, func(t *testing.T) bus.Broker {
		return testBroker{Bus: connect(t), touched: touched}
	})
}

// TestSuiteNamespaced runs the suite in a namespace of its own.
func TestSuiteNamespaced(t *testing.T) {
	connect := machineBrokerNS(t)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) }) // after every subtest
	ns := bustest.NewNamespace()
	bustest.Run(t, func(t *testing.T) bus.Broker {
		return testBroker{Bus: connect(t, ns), touched: touched}
	})
}

func TestNamespaces(t *testing.T) {
	connect := machineBrokerNS(t)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) }) // after every subtest
	bustest.RunNamespaces(t, func(t *testing.T, ns string) bus.Broker {
		return testBroker{Bus: connect(t, ns), touched: touched}
	})
}

// TestNamespacedNames: a namespace prefixes exchanges and queues as the
// package doc says, and leaves routing keys and the plain names alone.
func TestNamespacedNames(t *testing.T) {
	ns := bustest.NewNamespace()
	b := machineBrokerNS(t)(t, ns)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) })
	stamp := time.Now().UnixNano()
	group, topic := fmt.Sprintf("names%d", stamp), fmt.Sprintf("names%d.order.created", stamp)
	domain, key, _ := strings.Cut(topic, ".")
	touched.add(b, group, topic)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, bus.Subscription{
			Group: group, Topics: []string{topic},
			DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
			Ready:      func() { close(ready) },
		}, func(context.Context, bus.Delivery) error { return nil })
	}()
	<-ready
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	e, err := event.New("test", topic, "OrderCreated", 1, "o-1", map[string]int{"total_cents": 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}

	conn, err := amqp.Dial(machineRabbit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	msg, ok, err := ch.Get(ns+"."+group, true)
	if err != nil || !ok {
		t.Fatalf("getting the published message from queue %s.%s: %v (found %v)", ns, group, err, ok)
	}
	if msg.MessageId != e.ID || msg.Exchange != ns+"."+domain || msg.RoutingKey != key {
		t.Errorf("message id %q, exchange %q, key %q; want %q, %q, %q", msg.MessageId, msg.Exchange, msg.RoutingKey, e.ID, ns+"."+domain, key)
	}
	if _, err := ch.QueueDeclarePassive(ns+"."+group+".dead", true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		t.Errorf("dead queue %s.%s.dead: %v", ns, group, err)
	}
	// A passive declaration of a missing name closes the channel, so each
	// check gets its own.
	for _, check := range []struct {
		what    string
		declare func(ch *amqp.Channel) error
	}{
		{"queue " + group, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(group, true, false, false, false, nil)
			return err
		}},
		{"exchange " + domain, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive(domain, amqp.ExchangeTopic, true, false, false, false, nil)
		}},
	} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		var ae *amqp.Error
		if err := check.declare(ch); !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Errorf("%s without the namespace: %v, want it not to exist", check.what, err)
		}
		_ = ch.Close()
	}
}

// TestNamespaceRefused: Connect refuses a namespace that cannot prefix
// exchange and queue names, before connecting.
func TestNamespaceRefused(t *testing.T) {
	for _, ns := range []string{"Prod", "a.b", "a_b", "a#", strings.Repeat("x", 33)} {
		b, err := Connect(context.Background(), "amqp://guest:guest@127.0.0.1:1/", Options{Namespace: ns})
		if err == nil {
			_ = b.Close()
			t.Errorf("Connect with namespace %q: no error", ns)
		} else if !strings.Contains(err.Error(), "namespace") {
			t.Errorf("Connect with namespace %q = %v, want an error about the namespace", ns, err)
		}
	}
}

// TestUnroutable: a message no queue is bound to receive is an error, not a
// silent loss.
func TestUnroutable(t *testing.T) {
	b := machineBroker(t)(t)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) })
	topic := fmt.Sprintf("unroutable%d.nobody.listens", time.Now().UnixNano())
	touched.add(b, "", topic)
	e, err := event.New("test", topic, "NobodyListens", 1, "k", map[string]int{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Publish(context.Background(), e)
	if !errors.Is(err, ErrUnroutable) {
		t.Errorf("Publish with no queue bound: %v, want ErrUnroutable", err)
	}
}

// TestQueueSettings checks what the README promises of a group's queue:
// durable quorum queue, bounded deliveries, a dead queue, and durable
// persistent messages.
func TestQueueSettings(t *testing.T) {
	connect := machineBroker(t)
	b := connect(t)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) })
	group := fmt.Sprintf("settings%d", time.Now().UnixNano())
	topic := fmt.Sprintf("settings%d.order.created", time.Now().UnixNano())
	touched.add(b, group, topic)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, bus.Subscription{
			Group: group, Topics: []string{topic},
			DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
			Ready:      func() { close(ready) },
		}, func(context.Context, bus.Delivery) error { return nil })
	}()
	<-ready
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	// Declaring passively with other arguments fails if they differ, so a
	// declaration with exactly the promised ones proves them.
	conn, err := amqp.Dial(machineRabbit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(group, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-delivery-limit":          int64(DeliveryLimit),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": group + ".dead",
		"x-dead-letter-strategy":    "at-least-once",
		amqp.QueueOverflowArg:       amqp.QueueOverflowRejectPublish,
	}); err != nil {
		t.Errorf("queue %s is not a durable quorum queue with the promised arguments: %v", group, err)
	}

	e, err := event.New("test", topic, "OrderCreated", 1, "o-1", map[string]int{"total_cents": 100})
	if err != nil {
		t.Fatal(err)
	}
	e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if err := b.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	msg, ok, err := ch.Get(group, true)
	if err != nil || !ok {
		t.Fatalf("getting the published message: %v (found %v)", err, ok)
	}
	if msg.MessageId != e.ID || msg.DeliveryMode != amqp.Persistent || msg.Exchange != e.Domain() ||
		msg.RoutingKey != e.RoutingKey() || msg.Headers["traceparent"] != e.TraceParent {
		t.Errorf("message id %q, delivery mode %d, exchange %q, key %q, traceparent %v; want %q, %d, %q, %q, %q",
			msg.MessageId, msg.DeliveryMode, msg.Exchange, msg.RoutingKey, msg.Headers["traceparent"],
			e.ID, amqp.Persistent, e.Domain(), e.RoutingKey(), e.TraceParent)
	}
}

// TestParkedInDeadQueue: when the dead-letter handler still fails on the
// last delivery the broker allows, the message is moved to "<group>.dead"
// rather than lost or redelivered forever.
func TestParkedInDeadQueue(t *testing.T) {
	b := machineBroker(t)(t)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	t.Cleanup(func() { touched.remove(t) })
	stamp := time.Now().UnixNano()
	group, topic := fmt.Sprintf("parking%d", stamp), fmt.Sprintf("parking%d.order.created", stamp)
	touched.add(b, group, topic)
	var mu sync.Mutex
	deadCalls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, bus.Subscription{
			Group: group, Topics: []string{topic}, MaxDeliver: 1,
			Backoff: func(int) time.Duration { return 10 * time.Millisecond },
			DeadLetter: func(context.Context, bus.Delivery, []byte, error) error {
				mu.Lock()
				defer mu.Unlock()
				deadCalls++
				return errors.New("dead-letter store down")
			},
			Ready: func() { close(ready) },
		}, func(context.Context, bus.Delivery) error { return errors.New("poison") })
	}()
	<-ready
	e, err := event.New("test", topic, "OrderCreated", 1, "o-1", map[string]int{"total_cents": 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}

	conn, err := amqp.Dial(machineRabbit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(group+".dead", true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum})
		if err != nil {
			t.Fatalf("inspecting %s.dead: %v", group, err)
		}
		if q.Messages == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s.dead holds %d messages, want 1", group, q.Messages)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Subscribe: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := 1 + dispatch.DeadLetterRetries; deadCalls != want {
		t.Errorf("dead-letter handler called %d times, want %d", deadCalls, want)
	}
	msg, ok, err := ch.Get(group+".dead", true)
	if err != nil || !ok || msg.MessageId != e.ID {
		t.Errorf("parked message: id %q, found %v, err %v; want %s", msg.MessageId, ok, err, e.ID)
	}
}

// TestBrokerRestart restarts a RabbitMQ node of the test's own (never the
// machine's, which other packages' tests are using) while a subscription
// runs and publishes are under way. Every acknowledged publish is delivered
// afterwards, to the running subscription and to a group that only had its
// queue during the restart, and the running subscription resumes by itself.
func TestBrokerRestart(t *testing.T) {
	node := rabbitbustest.Start(t)
	connect := func(t *testing.T) *Bus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := Connect(ctx, node.URL, Options{Name: "rabbitbus-test", Log: testLog(t)})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	b := connect(t)
	const topic, live, parked = "restart.order.created", "live", "parked"

	running := &seen{ids: map[string]int{}}
	run(t, b, live, topic, running)
	stopParked := run(t, b, parked, topic, &seen{ids: map[string]int{}})
	stopParked() // the parked group's queue now collects events with no consumer

	acked := publishN(t, b, topic, 50, 10*time.Second)
	running.waitAll(t, acked)

	// Publish throughout the restart: each Publish waits for the connection
	// to come back, within its deadline.
	var during []string
	var longest time.Duration // the longest publish, which waited for the broker to come back
	restarted, published := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(published)
		for {
			select {
			case <-restarted:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			ids := publishN(t, b, topic, 1, 60*time.Second)
			longest = max(longest, time.Since(start))
			if len(ids) == 0 {
				return
			}
			during = append(during, ids...)
		}
	}()
	away := node.Restart(t)
	close(restarted)
	<-published
	acked = append(acked, during...)
	acked = append(acked, publishN(t, b, topic, 20, 10*time.Second)...)

	// The running subscription resumed by itself: it gets what was published
	// during and after the restart.
	running.waitAll(t, acked)
	afterwards := &seen{ids: map[string]int{}}
	run(t, connect(t), parked, topic, afterwards)
	afterwards.waitAll(t, acked)
	t.Logf("acknowledged publishes lost: 0 of %d (%d published while the broker restarted for %v, the longest waiting %v); the running subscription resumed",
		len(acked), len(during), away.Round(time.Millisecond), longest.Round(time.Millisecond))
}

// seen counts deliveries per event id.
type seen struct {
	mu  sync.Mutex
	ids map[string]int
}

func (s *seen) handle(_ context.Context, d bus.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[d.Event.ID]++
	return nil
}

func (s *seen) countOf(ids []string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if s.ids[id] > 0 {
			n++
		}
	}
	return n
}

func (s *seen) waitAll(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.countOf(ids) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of %d acknowledged events", s.countOf(ids), len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run subscribes group to topic until the returned stop is called or the
// test ends.
func run(t *testing.T, b *Bus, group, topic string, s *seen) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	sub := bus.Subscription{
		Group: group, Topics: []string{topic},
		DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
		Ready:      func() { close(ready) },
	}
	go func() { done <- b.Subscribe(ctx, sub, s.handle) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Subscribe: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Subscribe: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// publishN publishes n events, each within timeout, and returns their ids;
// each was acknowledged.
func publishN(t *testing.T, b *Bus, topic string, n int, timeout time.Duration) []string {
	ids := make([]string, 0, n)
	for i := range n {
		e, err := event.New("test", topic, "OrderCreated", 1, fmt.Sprint(i), map[string]int{"n": i})
		if err != nil {
			t.Error(err)
			return ids
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = b.Publish(ctx, e)
		cancel()
		if err != nil {
			t.Errorf("Publish %d: %v", i, err)
			return ids
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// BenchmarkPublish measures confirmed, persistent publishes to the
// machine's RabbitMQ, into one quorum queue, one at a time and from 8
// goroutines per CPU:
//
//	go test -run '^$' -bench Publish ./internal/bus/rabbitbus/
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	rb, err := Connect(ctx, machineRabbit, Options{})
	if err != nil {
		b.Skipf("no RabbitMQ at %s: %v", machineRabbit, err)
	}
	defer rb.Close()
	stamp := time.Now().UnixNano()
	group, topic := fmt.Sprintf("bench%d", stamp), fmt.Sprintf("bench%d.order.created", stamp)
	touched := &names{exchanges: map[string]bool{}, queues: map[string]bool{}}
	touched.add(rb, group, topic)
	defer touched.remove(b)
	sctx, stop := context.WithCancel(ctx)
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- rb.Subscribe(sctx, bus.Subscription{
			Group: group, Topics: []string{topic},
			DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
			Ready:      func() { close(ready) },
		}, func(context.Context, bus.Delivery) error { return nil })
	}()
	<-ready
	stop() // the queue stays and collects what the benchmark publishes
	<-done
	e, err := event.New("bench", topic, "OrderCreated", 1, "o", map[string]int{"total_cents": 1299})
	if err != nil {
		b.Fatal(err)
	}
	publish := func() {
		if err := rb.Publish(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Sequential", func(b *testing.B) {
		for b.Loop() {
			publish()
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				publish()
			}
		})
	})
}
