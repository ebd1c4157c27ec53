// Package bustest is the one test suite that every bus implementation runs,
// so that JetStream and RabbitMQ keep the same promises to the services, and
// the kit the services' consumer tests share.
package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/internal/dispatch"
	"github.com/microshop/microshop/internal/event"
)

// RawPublisher sends bytes that need not be a valid envelope to a topic. The
// brokers given to Run must implement it (a test-only wrapper is enough), so
// that the suite can check what happens to a message nobody can decode.
type RawPublisher interface {
	PublishRaw(ctx context.Context, topic string, body []byte) error
}

// patience bounds every wait for something the broker should do. It is a
// deadline for a failure message, not a speed requirement.
const patience = 30 * time.Second

// Run runs the suite. newBroker returns a new connection to the broker under
// test each time it is called, and closes it when the test ends; several
// connections in one test must reach the same broker. Every test uses its own
// domains and groups, so tests run in parallel and runs do not collide.
func Run(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	tests := []struct {
		name string
		run  func(t *testing.T, newBroker func(t *testing.T) bus.Broker)
	}{
		{"RoundTrip", testRoundTrip},
		{"EveryGroupGetsEveryEvent", testEveryGroup},
		{"OneGroupSharesEvents", testSharedGroup},
		{"RetriesThenDeadLetters", testRetries},
		{"DeadLetterHandlerFailure", testDeadLetterFailure},
		{"DeadLetterHandlerKeepsFailing", testDeadLetterKeepsFailing},
		{"Undecodable", testUndecodable},
		{"RedeliveredAfterConsumerStops", testAbandoned},
		{"DuplicatePublish", testDuplicatePublish},
		{"SubscribeReturnsWhenContextEnds", testStop},
		{"RefusesInvalidInput", testInvalid},
		{"WaitingIsTheQueuesDepth", testWaiting},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newBroker)
		})
	}
}

// NewNamespace is a namespace of its own for one test run, for a suite run
// on a broker that others share.
func NewNamespace() string { return "bt-" + randomHex(4) }

// RunNamespaces checks that namespaces keep shops apart on one broker.
// newBroker returns a new connection to the broker under test in namespace
// ns ("" for none), and closes it when the test ends.
func RunNamespaces(t *testing.T, newBroker func(t *testing.T, ns string) bus.Broker) {
	t.Run("NamespacesDoNotSeeEachOther", func(t *testing.T) {
		t.Parallel()
		testNamespaces(t, newBroker)
	})
}

// testNamespaces: connections in two namespaces and in none, with the same
// group consuming the same topic, each get their own namespace's events and
// nothing of the others'. The namespaces publish different numbers of
// events, so that a queue or consumer shared by mistake cannot deal each
// its own by chance, and then one last event each; each group handles one
// event at a time, so that events leaking from another namespace arrive
// before the last one.
func testNamespaces(t *testing.T, newBroker func(t *testing.T, ns string) bus.Broker) {
	namespaces := []string{NewNamespace(), NewNamespace(), ""}
	topic := newDomain() + ".thing.happened"
	group := newGroup()
	brokers := make([]bus.Broker, len(namespaces))
	recorders := make([]*recorder, len(namespaces))
	for i, ns := range namespaces {
		brokers[i], recorders[i] = newBroker(t, ns), &recorder{}
		s := sub(group, topic)
		s.Concurrency = 1
		subscribe(t, brokers[i], s, recorders[i].record(nil))
	}
	sent := make([][]string, len(namespaces))
	for i, b := range brokers {
		sent[i] = publishMany(t, b, topic, len(namespaces)-i)
	}
	total := 0
	for i, b := range brokers {
		sent[i] = append(sent[i], publishMany(t, b, topic, 1)...)
		total += len(sent[i])
	}
	delivered := func() int {
		n := 0
		for _, r := range recorders {
			n += r.len()
		}
		return n
	}
	recorders[0].waitFor(t, fmt.Sprintf("%d deliveries over the namespaces", total), func() bool { return delivered() >= total })
	for i, r := range recorders {
		r.expectNoMore(t)
		for _, d := range r.all() {
			if !slices.Contains(sent[i], d.Event.ID) {
				t.Errorf("namespace %q received event %s, published in another namespace", namespaces[i], d.Event.ID)
			}
		}
		for _, id := range sent[i] {
			if n := r.count(id); n != 1 {
				t.Errorf("namespace %q received its event %s %d times, want 1", namespaces[i], id, n)
			}
		}
	}
}

// testRoundTrip: every envelope field arrives as sent, on the first attempt,
// from several topics over two domains, and nothing from a topic the
// subscription does not name.
func testRoundTrip(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	if err := b.Ping(ctxFor(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	d1, d2 := newDomain(), newDomain()
	topics := []string{d1 + ".order.created", d1 + ".order.paid", d2 + ".item.reserved"}
	other := d1 + ".order.ignored"

	got, elsewhere := &recorder{}, &recorder{}
	subscribe(t, b, sub(newGroup(), topics...), got.record(nil))
	subscribe(t, b, sub(newGroup(), other), elsewhere.record(nil))

	var sent []event.Event
	for i, topic := range topics {
		e := newEvent(t, topic)
		e.Version = 3
		e.Key = fmt.Sprintf("order-%d", i)
		e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		e.Time = time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC)
		sent = append(sent, e)
	}
	ignored := newEvent(t, other)
	publish(t, b, ignored)
	for _, e := range sent {
		publish(t, b, e)
	}

	elsewhere.waitFor(t, "the event of the other group", func() bool { return elsewhere.count(ignored.ID) == 1 })
	got.waitFor(t, "every event", func() bool { return got.len() == len(sent) })
	for _, want := range sent {
		d, ok := got.first(want.ID)
		if !ok {
			t.Fatalf("event %s on %s not delivered", want.ID, want.Topic)
		}
		if d.Attempt != 1 {
			t.Errorf("%s: Attempt = %d, want 1", want.Topic, d.Attempt)
		}
		e := d.Event
		if e.ID != want.ID || e.Type != want.Type || e.Version != want.Version || e.Source != want.Source ||
			!e.Time.Equal(want.Time) || e.Topic != want.Topic || e.Key != want.Key ||
			e.TraceParent != want.TraceParent || string(e.Payload) != string(want.Payload) {
			t.Errorf("delivered event differs:\n got %+v\nwant %+v", e, want)
		}
	}
	if n := got.count(ignored.ID); n != 0 {
		t.Errorf("event of a topic not subscribed to was delivered %d times", n)
	}
}

// testEveryGroup: two groups on one topic each get every event once.
func testEveryGroup(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	groups := []*recorder{{}, {}}
	for _, r := range groups {
		subscribe(t, b, sub(newGroup(), topic), r.record(nil))
	}
	ids := publishMany(t, b, topic, 20)
	for i, r := range groups {
		r.waitFor(t, fmt.Sprintf("group %d to get every event", i), func() bool { return r.distinct() == len(ids) })
	}
	for i, r := range groups {
		for _, id := range ids {
			if n := r.count(id); n != 1 {
				t.Errorf("group %d got event %s %d times, want 1", i, id, n)
			}
		}
	}
}

// testSharedGroup: two subscribers of one group, on two connections, share
// the events: each event reaches exactly one of them.
func testSharedGroup(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	topic := newDomain() + ".thing.happened"
	group := newGroup()
	members := []*recorder{{}, {}}
	for _, r := range members {
		s := sub(group, topic)
		s.Concurrency = 1 // so that neither subscriber can take everything at once
		subscribe(t, newBroker(t), s, r.record(func(bus.Delivery) error {
			time.Sleep(5 * time.Millisecond)
			return nil
		}))
	}
	b := newBroker(t)
	ids := publishMany(t, b, topic, 40)
	together := func() int { return members[0].distinct() + members[1].distinct() }
	members[0].waitFor(t, "every event to reach the group", func() bool { return together() >= len(ids) })
	for _, id := range ids {
		if n := members[0].count(id) + members[1].count(id); n != 1 {
			t.Errorf("event %s delivered %d times within the group, want 1", id, n)
		}
	}
	for i, r := range members {
		if r.len() == 0 {
			t.Errorf("subscriber %d got no event: the group did not share them", i)
		}
	}
}

var errPoison = errors.New("poison")

// testRetries: a failing handler is retried with Attempt counting up; after
// exactly MaxDeliver attempts the event goes to the dead-letter handler once,
// with the last error; a handler that succeeds on a later attempt is not
// dead-lettered, and good events flow past the poison ones.
func testRetries(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	const maxDeliver = 4
	poison := map[string]bool{}
	flaky := newEvent(t, topic)
	r := &recorder{}
	s := sub(newGroup(), topic)
	s.MaxDeliver = maxDeliver
	s.DeadLetter = r.deadLetter(nil)
	subscribe(t, b, s, r.record(func(d bus.Delivery) error {
		switch {
		case poison[d.Event.ID]:
			return fmt.Errorf("%w: event %s attempt %d", errPoison, d.Event.ID, d.Attempt)
		case d.Event.ID == flaky.ID && d.Attempt < 3:
			return fmt.Errorf("flaky: attempt %d", d.Attempt)
		}
		return nil
	}))

	var poisoned []event.Event
	for range 3 {
		e := newEvent(t, topic)
		poison[e.ID] = true
		poisoned = append(poisoned, e)
	}
	publish(t, b, poisoned[0])
	good := publishMany(t, b, topic, 10)
	publish(t, b, flaky)
	publish(t, b, poisoned[1])
	good = append(good, publishMany(t, b, topic, 10)...)
	publish(t, b, poisoned[2])

	r.waitFor(t, "every poison event to be dead-lettered, the flaky one and the good ones handled", func() bool {
		return r.deadCount() == len(poisoned) && r.count(flaky.ID) == 3 && r.distinct() == len(good)+len(poisoned)+1
	})
	r.expectNoMore(t)

	for _, e := range poisoned {
		if got, want := r.attempts(e.ID), []int{1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Errorf("poison event attempts = %v, want %v", got, want)
		}
		dead := r.deadFor(e.ID)
		if len(dead) != 1 {
			t.Errorf("poison event dead-lettered %d times, want 1", len(dead))
			continue
		}
		dl := dead[0]
		if dl.d.Attempt != maxDeliver {
			t.Errorf("dead letter Attempt = %d, want %d", dl.d.Attempt, maxDeliver)
		}
		if !errors.Is(dl.cause, errPoison) || dl.cause.Error() != fmt.Sprintf("poison: event %s attempt %d", e.ID, maxDeliver) {
			t.Errorf("dead letter cause = %v, want the last attempt's error", dl.cause)
		}
		var raw event.Event
		if err := json.Unmarshal(dl.raw, &raw); err != nil || raw.ID != e.ID {
			t.Errorf("dead letter raw = %q (%v), want the envelope of %s", dl.raw, err, e.ID)
		}
	}
	if got, want := r.attempts(flaky.ID), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("flaky event attempts = %v, want %v", got, want)
	}
	if n := len(r.deadFor(flaky.ID)); n != 0 {
		t.Errorf("flaky event that succeeded was dead-lettered %d times", n)
	}
	for _, id := range good {
		if got := r.attempts(id); !slices.Equal(got, []int{1}) {
			t.Errorf("good event %s attempts = %v, want [1]", id, got)
		}
	}
}

// testDeadLetterFailure: when the dead-letter handler fails, the event comes
// back to it, not to the handler, and is gone once it succeeds.
func testDeadLetterFailure(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	r := &recorder{}
	s := sub(newGroup(), topic)
	s.MaxDeliver = 2
	failed := false
	s.DeadLetter = r.deadLetter(func() error {
		if !failed {
			failed = true
			return errors.New("dead-letter store down")
		}
		return nil
	})
	subscribe(t, b, s, r.record(func(bus.Delivery) error { return errPoison }))
	e := newEvent(t, topic)
	publish(t, b, e)
	r.waitFor(t, "the second dead-letter call", func() bool { return r.deadCount() == 2 })
	marker := newEvent(t, topic) // shows the subscription still consumes after the dead letter
	publish(t, b, marker)
	r.waitFor(t, "an event published afterwards", func() bool { return r.count(marker.ID) >= 1 })
	r.expectNoMore(t)
	if got := r.attempts(e.ID); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("handler attempts = %v, want [1 2]: a failed dead letter must not return to the handler", got)
	}
	if n := len(r.deadFor(e.ID)); n != 2 {
		t.Errorf("dead-letter handler called %d times for the event, want 2", n)
	}
}

// testDeadLetterKeepsFailing: a dead-letter handler that never succeeds gets
// the event on the last attempt and dispatch.DeadLetterRetries more times,
// and then the broker keeps
// it aside (JetStream in the stream, RabbitMQ in "<group>.dead") instead of
// redelivering it forever.
func testDeadLetterKeepsFailing(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	r := &recorder{}
	s := sub(newGroup(), topic)
	s.MaxDeliver = 2
	s.DeadLetter = r.deadLetter(func() error { return errors.New("dead-letter store down") })
	subscribe(t, b, s, r.record(func(bus.Delivery) error { return errPoison }))
	e := newEvent(t, topic)
	publish(t, b, e)
	want := 1 + dispatch.DeadLetterRetries // on the last attempt, then on each extra delivery
	r.waitFor(t, "every dead-letter attempt", func() bool { return r.deadCount() == want })
	marker := newEvent(t, topic) // shows the subscription still consumes afterwards
	publish(t, b, marker)
	r.waitFor(t, "an event published afterwards", func() bool { return r.count(marker.ID) >= 1 })
	r.expectNoMore(t)
	if got := r.attempts(e.ID); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("handler attempts = %v, want [1 2]", got)
	}
}

// testUndecodable: a message that is not a valid envelope goes straight to
// the dead-letter handler with Attempt 0 and its bytes, never to the handler.
func testUndecodable(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	raw, ok := b.(RawPublisher)
	if !ok {
		t.Fatalf("%T does not implement bustest.RawPublisher", b)
	}
	topic := newDomain() + ".thing.happened"
	r := &recorder{}
	s := sub(newGroup(), topic)
	s.DeadLetter = r.deadLetter(nil)
	subscribe(t, b, s, r.record(nil))

	bad := [][]byte{
		[]byte("not json {"),
		[]byte(`{"id":"incomplete","topic":"` + topic + `","payload":{}}`), // no type or version
	}
	for _, body := range bad {
		if err := raw.PublishRaw(ctxFor(t), topic, body); err != nil {
			t.Fatalf("PublishRaw: %v", err)
		}
	}
	good := newEvent(t, topic)
	publish(t, b, good)
	r.waitFor(t, "both bad messages dead-lettered and the good one handled", func() bool {
		return r.deadCount() == len(bad) && r.count(good.ID) == 1
	})
	r.expectNoMore(t)
	if n := r.len(); n != 1 {
		t.Errorf("handler called %d times, want 1 (the good event only)", n)
	}
	for _, body := range bad {
		var found bool
		for _, dl := range r.deadLetters() {
			if string(dl.raw) == string(body) {
				found = true
				if dl.d.Attempt != 0 || dl.d.Event.ID != "" || dl.cause == nil {
					t.Errorf("dead letter of %q: Attempt %d, Event.ID %q, cause %v; want 0, empty, an error",
						body, dl.d.Attempt, dl.d.Event.ID, dl.cause)
				}
			}
		}
		if !found {
			t.Errorf("message %q did not reach the dead-letter handler", body)
		}
	}
}

// testAbandoned: a consumer that stops in the middle of a handler, without
// acknowledging, does not lose the event: another consumer of the group gets
// it again, as its second attempt (after AckWait on JetStream, when the
// channel closes on RabbitMQ).
func testAbandoned(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	topic := newDomain() + ".thing.happened"
	group := newGroup()
	first := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	crashed := subscribeCtx(t, ctx, newBroker(t), sub(group, topic), first.record(func(d bus.Delivery) error {
		cancel()
		return errors.New("stopped before finishing")
	}))
	e := newEvent(t, topic)
	publish(t, newBroker(t), e)
	crashed.wait(t)
	if got := first.attempts(e.ID); !slices.Equal(got, []int{1}) {
		t.Fatalf("first consumer attempts = %v, want [1]", got)
	}

	second := &recorder{}
	subscribe(t, newBroker(t), sub(group, topic), second.record(nil))
	second.waitFor(t, "the event again, on another consumer", func() bool { return second.count(e.ID) >= 1 })
	if d, _ := second.first(e.ID); d.Attempt != 2 {
		t.Errorf("redelivery Attempt = %d, want 2", d.Attempt)
	}
}

// testDuplicatePublish: publishing one event twice (an outbox relay that
// crashed before marking it sent) delivers it at least once. JetStream
// stores it once (duplicate window); RabbitMQ stores it twice, and the
// consumers' inbox, keyed by event id, drops the second copy. So the suite
// asks only for at least once, and at most twice.
func testDuplicatePublish(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	r := &recorder{}
	subscribe(t, b, sub(newGroup(), topic), r.record(nil))
	e := newEvent(t, topic)
	publish(t, b, e)
	publish(t, b, e)
	marker := newEvent(t, topic)
	publish(t, b, marker)
	r.waitFor(t, "the event and a later one", func() bool { return r.count(e.ID) >= 1 && r.count(marker.ID) == 1 })
	r.expectNoMore(t)
	if n := r.count(e.ID); n < 1 || n > 2 {
		t.Errorf("event published twice delivered %d times, want 1 or 2", n)
	}
	for _, d := range r.all() {
		if d.Event.ID == e.ID && (d.Event.Type != e.Type || string(d.Event.Payload) != string(e.Payload)) {
			t.Errorf("duplicate delivered as %+v, want %+v", d.Event, e)
		}
	}
}

// testStop: Subscribe returns nil when its context ends, idle or with a
// handler running, and only after that handler has returned.
func testStop(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"

	ctx, cancel := context.WithCancel(context.Background())
	idle := subscribeCtx(t, ctx, b, sub(newGroup(), topic), (&recorder{}).record(nil))
	cancel()
	idle.wait(t)

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var done bool
	var once sync.Once
	busy := subscribeCtx(t, ctx, b, sub(newGroup(), topic), func(hctx context.Context, d bus.Delivery) error {
		once.Do(func() { close(started) })
		<-hctx.Done()
		time.Sleep(50 * time.Millisecond) // a handler that takes a moment to wind down
		done = true
		return hctx.Err()
	})
	publish(t, b, newEvent(t, topic))
	select {
	case <-started:
	case <-time.After(patience):
		t.Fatal("handler not started")
	}
	cancel()
	busy.wait(t)
	if !done {
		t.Error("Subscribe returned before its handler had finished")
	}
}

// testInvalid: an invalid subscription or event is refused at once.
func testInvalid(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	ok := sub(newGroup(), topic)
	subs := map[string]func(s *bus.Subscription){
		"no group":          func(s *bus.Subscription) { s.Group = "" },
		"dotted group":      func(s *bus.Subscription) { s.Group = "a.b" },
		"no topics":         func(s *bus.Subscription) { s.Topics = nil },
		"wildcard topic":    func(s *bus.Subscription) { s.Topics = []string{topic[:len(topic)-len("happened")] + "*"} },
		"topic of one part": func(s *bus.Subscription) { s.Topics = []string{"orders"} },
		"no dead letter":    func(s *bus.Subscription) { s.DeadLetter = nil },
		"negative attempts": func(s *bus.Subscription) { s.MaxDeliver = -1 },
	}
	for name, spoil := range subs {
		s := ok
		spoil(&s)
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := b.Subscribe(ctx, s, func(context.Context, bus.Delivery) error { return nil })
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Errorf("Subscribe with %s: error %v, want an immediate error", name, err)
		}
	}
	events := map[string]func(e *event.Event){
		"no type":         func(e *event.Event) { e.Type = "" },
		"no payload":      func(e *event.Event) { e.Payload = nil },
		"uppercase topic": func(e *event.Event) { e.Topic = "Orders.order.created" },
		"wildcard topic":  func(e *event.Event) { e.Topic = "orders.>" },
	}
	for name, spoil := range events {
		e := newEvent(t, topic)
		spoil(&e)
		if err := b.Publish(ctxFor(t), e); err == nil {
			t.Errorf("Publish with %s: no error", name)
		}
	}
}

// testWaiting: events published while a group's consumers are away wait
// for it, and Waiting counts them; once it consumes them, none wait.
func testWaiting(t *testing.T, newBroker func(t *testing.T) bus.Broker) {
	b := newBroker(t)
	topic := newDomain() + ".thing.happened"
	s := sub(newGroup(), topic)
	if n, err := b.Waiting(ctxFor(t), s); err != nil || n != 0 {
		t.Fatalf("Waiting for a group that never subscribed = %d, %v; want 0", n, err)
	}
	// Subscribed through Queues, the depth is on the service's metrics too.
	queues := bus.NewQueues(b, "bustest")
	reg := prometheus.NewRegistry()
	reg.MustRegister(queues)
	away := subscribe(t, queues, s, func(context.Context, bus.Delivery) error { return nil })
	away.cancel()
	away.wait(t)
	if n, err := b.Waiting(ctxFor(t), s); err != nil || n != 0 {
		t.Fatalf("Waiting before any event = %d, %v; want 0", n, err)
	}
	ids := publishMany(t, b, topic, 3)
	waited := 0
	deadline := time.Now().Add(patience)
	for waited != len(ids) && time.Now().Before(deadline) {
		n, err := b.Waiting(ctxFor(t), s)
		if err != nil {
			t.Fatalf("Waiting: %v", err)
		}
		waited = n
		time.Sleep(20 * time.Millisecond)
	}
	if waited != len(ids) {
		t.Fatalf("Waiting with the group away = %d, want %d", waited, len(ids))
	}
	if got := gauge(t, reg, "bus_waiting_messages", s.Group); got != float64(len(ids)) {
		t.Errorf("bus_waiting_messages{group=%q} = %v, want %d", s.Group, got, len(ids))
	}
	got := &recorder{}
	subscribe(t, b, s, got.record(nil))
	got.waitFor(t, "the events that waited", func() bool { return got.len() == len(ids) })
	got.waitFor(t, "the queue to empty", func() bool {
		n, err := b.Waiting(ctxFor(t), s)
		return err == nil && n == 0
	})
}

// gauge reads the sample of the gauge name labelled group=group.
func gauge(t *testing.T, reg *prometheus.Registry, name, group string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{group=%q}", name, group)
	return 0
}

// sub is a subscription with short delays, so that the tests do not wait
// long for redeliveries.
func sub(group string, topics ...string) bus.Subscription {
	return bus.Subscription{
		Group:      group,
		Topics:     topics,
		AckWait:    2 * time.Second,
		Backoff:    func(int) time.Duration { return 20 * time.Millisecond },
		DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
	}
}

func newDomain() string { return "bt" + randomHex(5) }
func newGroup() string  { return "g" + randomHex(5) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newEvent is an event on topic with a small payload.
func newEvent(t *testing.T, topic string) event.Event {
	t.Helper()
	e, err := event.New("bustest", topic, "ThingHappened", 1, "key-1", map[string]any{"amount_cents": 1299, "note": "ü"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ctxFor is a context for one call to the broker.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, b bus.Publisher, e event.Event) {
	t.Helper()
	if err := b.Publish(ctxFor(t), e); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// publishMany publishes n events on topic and returns their ids.
func publishMany(t *testing.T, b bus.Publisher, topic string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for range n {
		e := newEvent(t, topic)
		publish(t, b, e)
		ids = append(ids, e.ID)
	}
	return ids
}

// running is a Subscribe call in progress.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// subscribe runs Subscribe until the test ends and returns once the
// subscription is ready.
func subscribe(t *testing.T, b bus.Subscriber, s bus.Subscription, h bus.Handler) *running {
	t.Helper()
	return subscribeCtx(t, context.Background(), b, s, h)
}

// subscribeCtx runs Subscribe until ctx or the test ends, and returns once
// the subscription is ready. When the test ends, it checks that Subscribe
// returned nil.
func subscribeCtx(t *testing.T, ctx context.Context, b bus.Subscriber, s bus.Subscription, h bus.Handler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	s.Ready = func() { close(ready) }
	go func() { r.done <- b.Subscribe(ctx, s, h) }()
	select {
	case <-ready:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Subscribe %s returned before it was ready: %v", s.Group, err)
	case <-time.After(patience):
		t.Fatalf("Subscribe %s not ready", s.Group)
	}
	t.Cleanup(func() {
		r.cancel()
		r.wait(t)
	})
	return r
}

// wait waits for Subscribe to return, and checks it returned nil.
func (r *running) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for a later wait
		if err != nil {
			t.Errorf("Subscribe returned %v, want nil when its context ends", err)
		}
	case <-time.After(patience):
		t.Fatal("Subscribe did not return after its context ended")
	}
}

// deadLetter is one call to a dead-letter handler.
type deadLetter struct {
	d     bus.Delivery
	raw   []byte
	cause error
}

// recorder records deliveries and dead letters.
type recorder struct {
	mu         sync.Mutex
	deliveries []bus.Delivery
	dead       []deadLetter
}

// record is a handler that records each delivery and then answers with
// answer (nil: succeed).
func (r *recorder) record(answer func(bus.Delivery) error) bus.Handler {
	return func(ctx context.Context, d bus.Delivery) error {
		r.mu.Lock()
		r.deliveries = append(r.deliveries, d)
		r.mu.Unlock()
		if answer == nil {
			return nil
		}
		return answer(d)
	}
}

// deadLetter is a dead-letter handler that records each call and answers
// with answer (nil: accept).
func (r *recorder) deadLetter(answer func() error) bus.DeadLetterHandler {
	return func(ctx context.Context, d bus.Delivery, raw []byte, cause error) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.dead = append(r.dead, deadLetter{d: d, raw: slices.Clone(raw), cause: cause})
		if answer == nil {
			return nil
		}
		return answer()
	}
}

// expectNoMore is called once everything the test waited for has happened:
// anything recorded after it, until the test ends, is reported as an extra
// delivery (a retry past MaxDeliver, a second dead letter).
func (r *recorder) expectNoMore(t *testing.T) {
	r.mu.Lock()
	n, dead := len(r.deliveries), len(r.dead)
	r.mu.Unlock()
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.deliveries) != n || len(r.dead) != dead {
			t.Errorf("%d more deliveries and %d more dead letters after the expected ones: %+v",
				len(r.deliveries)-n, len(r.dead)-dead, r.deliveries[n:])
		}
	})
}

// waitFor waits until cond holds, or fails the test saying what it waited for.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("waited %v for %s; got %d deliveries and %d dead letters", patience, what, len(r.deliveries), len(r.dead))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *recorder) all() []bus.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

func (r *recorder) len() int { return len(r.all()) }

// count is how many times event id was delivered.
func (r *recorder) count(id string) int { return len(r.attempts(id)) }

// attempts are the Attempt numbers of event id's deliveries, in order.
func (r *recorder) attempts(id string) []int {
	var a []int
	for _, d := range r.all() {
		if d.Event.ID == id {
			a = append(a, d.Attempt)
		}
	}
	return a
}

func (r *recorder) first(id string) (bus.Delivery, bool) {
	for _, d := range r.all() {
		if d.Event.ID == id {
			return d, true
		}
	}
	return bus.Delivery{}, false
}

// distinct is how many different events were delivered.
func (r *recorder) distinct() int {
	seen := map[string]bool{}
	for _, d := range r.all() {
		seen[d.Event.ID] = true
	}
	return len(seen)
}

func (r *recorder) deadLetters() []deadLetter {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dead)
}

func (r *recorder) deadCount() int { return len(r.deadLetters()) }

func (r *recorder) deadFor(id string) []deadLetter {
	var out []deadLetter
	for _, dl := range r.deadLetters() {
		if dl.d.Event.ID == id {
			out = append(out, dl)
		}
	}
	return out
}

// Thrice is a bus.Subscriber for a service's consumer tests: it hands every
// delivery to the handler three times at once, as a broker redelivering and
// a relay republishing might, and counts, by event id, the handler calls
// that have returned.
type Thrice struct {
	bus.Subscriber
	ready     chan struct{}
	readyOnce sync.Once

	mu    sync.Mutex
	calls map[string]int
}

// NewThrice wraps the subscriber s.
func NewThrice(s bus.Subscriber) *Thrice {
	return &Thrice{Subscriber: s, ready: make(chan struct{}), calls: map[string]int{}}
}

// Subscribe subscribes to s's subscriber with a handler that calls h three
// times at once for each delivery, and fails the delivery if any call does.
func (s *Thrice) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	ready := sub.Ready
	sub.Ready = func() {
		if ready != nil {
			ready()
		}
		s.readyOnce.Do(func() { close(s.ready) })
	}
	return s.Subscriber.Subscribe(ctx, sub, func(ctx context.Context, d bus.Delivery) error {
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = h(ctx, d) })
		}
		wg.Wait()
		s.mu.Lock()
		s.calls[d.Event.ID] += len(errs)
		s.mu.Unlock()
		return errors.Join(errs...)
	})
}

// Handled is how many handler calls for the event with id have returned.
func (s *Thrice) Handled(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// Consume runs consume, a service's consumer, on s until the test ends, and
// returns once it has subscribed. It fails the test if consume ends before
// it subscribes, or returns anything but nil once its context ends.
func (s *Thrice) Consume(t testing.TB, consume func(ctx context.Context, sub bus.Subscriber) error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consume(ctx, s) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consuming: got %v, want nil once its context ends", err)
			}
		case <-time.After(patience):
			t.Error("the consumer did not return after its context ended")
		}
	})
	select {
	case <-s.ready:
	case err := <-done:
		done <- err // for the clean-up
		t.Fatalf("the consumer ended before subscribing: %v", err)
	case <-time.After(patience):
		t.Fatal("the consumer did not subscribe")
	}
}

// WaitHandled waits until every delivery of events has been handled three
// times.
func (s *Thrice) WaitHandled(t testing.TB, events ...event.Event) {
	t.Helper()
	for _, e := range events {
		WaitFor(t, e.Type+" handled three times", func() bool { return s.Handled(e.ID) >= 3 })
	}
}

// Publish publishes a new event, as the service source would, and returns
// it.
func Publish(t testing.TB, p bus.Publisher, source, topic, typ, key string, payload any) event.Event {
	t.Helper()
	e, err := event.New(source, topic, typ, 1, key, payload)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := p.Publish(ctx, e); err != nil {
		t.Fatalf("publishing %s: %v", typ, err)
	}
	return e
}

// WaitFor waits until ok holds, or fails the test saying what it waited for.
// The wait is bounded so that a broken consumer fails instead of hanging;
// it is not a speed requirement.
func WaitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting %v: %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
