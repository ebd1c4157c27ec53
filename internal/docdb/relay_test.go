package docdb_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/docdb"
	"github.com/microshop/microshop/internal/docdb/docdbtest"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
)

const orders = "orders"

// openDB opens a fresh database on a fresh embedded server.
func openDB(t *testing.T) *docdb.DB {
	t.Helper()
	db := docdbtest.Open(t, docdbtest.Server(t))
	if err := db.EnsureIndexes(context.Background(), orders, docdb.OutboxIndex); err != nil {
		t.Fatal(err)
	}
	return db
}

// recorder is an in-memory bus.Publisher that keeps what it was sent, in
// order, and can refuse the next few publishes as a broker outage would.
type recorder struct {
	mu     sync.Mutex
	events []event.Event
	refuse int
}

func (r *recorder) Publish(ctx context.Context, e event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse > 0 {
		r.refuse--
		return errors.New("broker unavailable")
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *recorder) ids() []string {
	var out []string
	for _, e := range r.all() {
		out = append(out, e.ID)
	}
	return out
}

func newEvent(t *testing.T, key string) event.Event {
	t.Helper()
	e, err := event.New("orders", "orders.order.created", "OrderCreated", 1, key, map[string]string{"id": key})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// insert stores a new order document and its event in one write, as a
// store does, and returns the event's id.
func insert(t *testing.T, db *docdb.DB, n int) string {
	t.Helper()
	id := fmt.Sprintf("order-%04d", n)
	e := newEvent(t, id)
	change, err := docdb.Events(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(orders).InsertOne(context.Background(), change.Insert(bson.D{{Key: "_id", Value: id}})); err != nil {
		t.Fatal(err)
	}
	db.Committed()
	return e.ID
}

func insertMany(t *testing.T, db *docdb.DB, from, to int) []string {
	var ids []string
	for n := from; n < to; n++ {
		ids = append(ids, insert(t, db, n))
	}
	return ids
}

// update changes an existing order and adds an event to it in one write.
func update(t *testing.T, db *docdb.DB, id string) string {
	t.Helper()
	e := newEvent(t, id)
	change, err := docdb.Events(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Exclusive(func() error {
		res, err := db.Collection(orders).UpdateOne(context.Background(), bson.D{{Key: "_id", Value: id}},
			change.Update(bson.D{{Key: "$inc", Value: bson.D{{Key: "changes", Value: 1}}}}))
		if err == nil && res.MatchedCount != 1 {
			err = fmt.Errorf("no order %s", id)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Committed()
	return e.ID
}

// run starts r and returns a stop that cancels it and returns what Run
// returned; stop may be called more than once.
func run(t *testing.T, r *docdb.Relay) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor waits until cond holds. The bound only keeps a broken relay from
// hanging the suite; nothing here depends on how fast it is.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func drained(t *testing.T, db *docdb.DB) func() bool {
	return func() bool {
		b, err := docdb.Pending(context.Background(), db, orders)
		if err != nil {
			t.Fatal(err)
		}
		return b.Count == 0
	}
}

func fast(o outbox.Options) outbox.Options {
	o.Poll = 2 * time.Millisecond
	o.MinBackoff, o.MaxBackoff = time.Millisecond, 4*time.Millisecond
	return o
}

// leftovers counts the documents that still hold an event or the marker
// of one.
func leftovers(t *testing.T, db *docdb.DB) int64 {
	t.Helper()
	n, err := db.Collection(orders).CountDocuments(context.Background(), bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: docdb.SinceField, Value: bson.D{{Key: "$exists", Value: true}}}},
		bson.D{{Key: docdb.OutboxField, Value: bson.D{{Key: "$size", Value: 1}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRelayPublishesEachEventOnceInOrderAndRemovesIt(t *testing.T) {
	db := openDB(t)
	want := insertMany(t, db, 0, 60)
	// Events added to one document by later writes follow its first.
	for range 3 {
		want = append(want, update(t, db, "order-0059"))
	}
	pub := &recorder{}
	stop := run(t, docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{Batch: 25})))
	waitFor(t, "the outbox to drain", drained(t, db))
	if got := pub.ids(); !reflect.DeepEqual(got, want) {
		t.Fatalf("published %d events, want the %d stored, once each, in the order they were added", len(got), len(want))
	}
	_ = stop() // the relay finishes the removal it is in
	if n := leftovers(t, db); n != 0 {
		t.Errorf("%d documents still hold an event or its marker after the relay published everything", n)
	}
}

func TestRelayPublishesTheSameEnvelope(t *testing.T) {
	db := openDB(t)
	traced := newEvent(t, "a")
	traced.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	untraced := newEvent(t, "a")
	// Events carry the trace of the work that stored them, as outbox.Add's do.
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	change, err := docdb.Events(ctx, traced, untraced)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(orders).InsertOne(ctx, change.Insert(bson.D{{Key: "_id", Value: "a"}})); err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	run(t, docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{})))
	waitFor(t, "the outbox to drain", drained(t, db))
	untraced.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	got := pub.all()
	for i, want := range []event.Event{traced, untraced} {
		if !got[i].Time.Equal(want.Time) {
			t.Errorf("event %d: time = %v, want %v", i, got[i].Time, want.Time)
		}
		got[i].Time = want.Time
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("event %d: published %+v, want %+v", i, got[i], want)
		}
	}
}

func TestWakeStartsAPassAtOnce(t *testing.T) {
	db := openDB(t)
	pub := &recorder{}
	relay := docdb.NewRelay(db, orders, pub, nil, outbox.Options{Holder: "r1", Poll: time.Hour})
	db.OnCommit(relay.Wake)
	run(t, relay)
	// Once the relay holds the lease its first pass is over, and without a
	// wake-up the next is an hour away.
	waitFor(t, "the relay's first pass", func() bool {
		var lease struct{ Holder string }
		_ = db.Collection(docdb.LeaseCollection).FindOne(context.Background(), bson.D{{Key: "_id", Value: orders}}).Decode(&lease)
		return lease.Holder == "r1"
	})
	id := insert(t, db, 1) // its Committed wakes the relay
	waitFor(t, "the woken relay to publish", drained(t, db))
	if got := pub.ids(); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("published %q, want [%s]", got, id)
	}
}

func TestRelayRetriesAFailedPublishWithoutSkipping(t *testing.T) {
	db := openDB(t)
	want := insertMany(t, db, 0, 5)
	pub := &recorder{refuse: 3}
	relay := docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{}))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(relay.Collectors()...)
	run(t, relay)
	waitFor(t, "the outbox to drain", drained(t, db))
	if got := pub.ids(); !reflect.DeepEqual(got, want) {
		t.Errorf("published %q, want %q", got, want)
	}
	if got := gauge(t, reg, "outbox_publish_errors_total"); got != 3 {
		t.Errorf("outbox_publish_errors_total = %v, want 3", got)
	}
}

var errCrash = errors.New("killed")

// crashAt returns a failpoint that crashes the relay at the n-th event it sees.
func crashAt(n int) func(event.Event) error {
	var seen int
	return func(event.Event) error {
		if seen++; seen == n {
			return errCrash
		}
		return nil
	}
}

func TestCrashBetweenWriteAndPublishLosesNothing(t *testing.T) {
	db := openDB(t)
	want := insertMany(t, db, 0, 10)
	pub := &recorder{}
	first := docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{Lease: 50 * time.Millisecond, BeforePublish: crashAt(3)}))
	if err := first.Run(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("first relay returned %v, want the failpoint's crash", err)
	}
	if got := len(pub.ids()); got != 2 {
		t.Fatalf("before the crash %d events were published, want 2", got)
	}
	// A new relay, as after a restart, takes over once the dead one's lease
	// expires, and publishes what the old one left in the documents.
	run(t, docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{})))
	waitFor(t, "the outbox to drain", drained(t, db))
	if got := pub.ids(); !reflect.DeepEqual(got, want) {
		t.Errorf("published %q, want every stored event once, in order: %q", got, want)
	}
}

func TestCrashBetweenPublishAndRemoveRepublishesTheSameEvent(t *testing.T) {
	db := openDB(t)
	want := insertMany(t, db, 0, 5)
	pub := &recorder{}
	first := docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{Lease: 50 * time.Millisecond, AfterPublish: crashAt(2)}))
	if err := first.Run(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("first relay returned %v, want the failpoint's crash", err)
	}
	run(t, docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{})))
	waitFor(t, "the outbox to drain", drained(t, db))
	wantSent := append([]string{want[0], want[1]}, want[1:]...)
	if got := pub.ids(); !reflect.DeepEqual(got, wantSent) {
		t.Fatalf("published %q, want %q: the unremoved event again, with its id", got, wantSent)
	}
	if sent := pub.all(); !reflect.DeepEqual(sent[1].Payload, sent[2].Payload) || sent[1].Key != sent[2].Key || !sent[1].Time.Equal(sent[2].Time) {
		t.Errorf("the republished event differs: %+v, then %+v", sent[1], sent[2])
	}
}

// relayPublisher publishes for one relay into a shared log, and counts how
// many relays are publishing at the same moment.
type relayPublisher struct {
	name string
	log  *sharedLog
}

type sharedLog struct {
	mu       sync.Mutex
	inFlight int
	overlaps int
	by       []string // the relay that published each event
	ids      []string
}

func (p relayPublisher) Publish(ctx context.Context, e event.Event) error {
	l := p.log
	l.mu.Lock()
	l.inFlight++
	if l.inFlight > 1 {
		l.overlaps++
	}
	l.mu.Unlock()
	time.Sleep(100 * time.Microsecond) // a broker's round trip, in which another publisher could slip in
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	l.by = append(l.by, p.name)
	l.ids = append(l.ids, e.ID)
	return nil
}

func TestTwoRelaysOnePublishesAtATime(t *testing.T) {
	srv := docdbtest.Server(t)
	db := docdbtest.Open(t, srv)
	// The second instance has its own connection to the same database.
	other, err := srv.Open(context.Background(), db.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if err := db.EnsureIndexes(context.Background(), orders, docdb.OutboxIndex); err != nil {
		t.Fatal(err)
	}
	log := &sharedLog{}
	a := docdb.NewRelay(db, orders, relayPublisher{"a", log}, nil, fast(outbox.Options{}))
	b := docdb.NewRelay(other, orders, relayPublisher{"b", log}, nil, fast(outbox.Options{}))
	stopA := run(t, a)
	var want []string
	for n := range 40 {
		want = append(want, insert(t, db, n))
		if n == 5 {
			run(t, b) // the standby starts while a holds the lease
		}
		a.Wake()
		b.Wake()
	}
	waitFor(t, "the outbox to drain", drained(t, db))
	log.mu.Lock()
	gotIDs, by, overlaps := append([]string(nil), log.ids...), append([]string(nil), log.by...), log.overlaps
	log.mu.Unlock()
	if !reflect.DeepEqual(gotIDs, want) {
		t.Fatalf("with two relays running, published %d events, want %d once each in order", len(gotIDs), len(want))
	}
	if overlaps != 0 {
		t.Errorf("two relays published at the same moment %d times, want 0", overlaps)
	}
	for i, name := range by {
		if name != "a" {
			t.Fatalf("event %d was published by relay %s while relay a held the lease", i, name)
		}
	}
	// a stops, gracefully, and gives up its lease: b takes over at once,
	// and nothing is lost.
	if err := stopA(); err != nil {
		t.Fatalf("stopping a relay: %v", err)
	}
	more := insertMany(t, db, 40, 50)
	b.Wake()
	waitFor(t, "the outbox to drain", drained(t, db))
	log.mu.Lock()
	defer log.mu.Unlock()
	if got := log.ids[len(want):]; !reflect.DeepEqual(got, more) {
		t.Errorf("after a stopped, published %q, want %q", got, more)
	}
	for _, name := range log.by[len(want):] {
		if name != "b" {
			t.Fatalf("after a stopped, an event was published by %s, want b", name)
		}
	}
}

func TestEventsAddedWhileTheRelayRemovesAreKept(t *testing.T) {
	db := openDB(t)
	pub := &recorder{}
	relay := docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{}))
	db.OnCommit(relay.Wake)
	stop := run(t, relay)
	// One document takes event after event while the relay removes the
	// ones it has published from that same document: an event added
	// between the relay's read and its write must not be lost.
	want := []string{insert(t, db, 0)}
	for range 60 {
		want = append(want, update(t, db, "order-0000"))
	}
	waitFor(t, "the outbox to drain", drained(t, db))
	if got := pub.ids(); !reflect.DeepEqual(got, want) {
		t.Errorf("published %d events, want the %d added, once each, in order", len(got), len(want))
	}
	_ = stop()
	if n := leftovers(t, db); n != 0 {
		t.Errorf("%d documents still hold an event or its marker", n)
	}
}

func TestCollectorsMeasureTheBacklog(t *testing.T) {
	db := openDB(t)
	insertMany(t, db, 0, 3)
	if _, err := db.Collection(orders).UpdateMany(context.Background(), bson.D{},
		bson.D{{Key: "$set", Value: bson.D{{Key: docdb.SinceField, Value: time.Now().Add(-time.Minute)}}}}); err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	relay := docdb.NewRelay(db, orders, pub, nil, fast(outbox.Options{Service: "catalog"}))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(relay.Collectors()...)
	if got := gauge(t, reg, "outbox_backlog"); got != 3 {
		t.Errorf("outbox_backlog = %v, want 3", got)
	}
	if got := gauge(t, reg, "outbox_relay_lag_seconds"); got < 60 {
		t.Errorf("outbox_relay_lag_seconds = %v, want at least the minute the oldest event has waited", got)
	}
	b, err := relay.Backlog(context.Background())
	if err != nil || b.Count != 3 {
		t.Errorf("Backlog = %+v, %v; want 3 events", b, err)
	}
	run(t, relay)
	waitFor(t, "the outbox to drain", drained(t, db))
	for name, want := range map[string]float64{"outbox_backlog": 0, "outbox_relay_lag_seconds": 0, "outbox_published_total": 3} {
		if got := gauge(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if l := f.GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetName() != "service" || l[0].GetValue() != "catalog" {
			t.Errorf("%s labels = %v, want service=\"catalog\"", f.GetName(), l)
		}
	}
}

// gauge returns the value of the one metric called name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRelayClearsAMarkerLeftOnAnEmptyOutbox: a document marked as holding
// events but holding none (a removal cut between its steps, by a crash)
// is unmarked by the next relay, so no event reads as waiting forever.
func TestRelayClearsAMarkerLeftOnAnEmptyOutbox(t *testing.T) {
	db := openDB(t)
	insertMany(t, db, 0, 2)
	stop := run(t, docdb.NewRelay(db, orders, &recorder{}, nil, fast(outbox.Options{})))
	waitFor(t, "the outbox to drain", drained(t, db))
	_ = stop()
	if _, err := db.Collection(orders).UpdateMany(context.Background(), bson.D{},
		bson.D{{Key: "$set", Value: bson.D{{Key: docdb.SinceField, Value: time.Now().Add(-time.Minute)}}}}); err != nil {
		t.Fatal(err)
	}
	if n := leftovers(t, db); n != 2 {
		t.Fatalf("%d marked documents, want the 2 marked by hand", n)
	}
	run(t, docdb.NewRelay(db, orders, &recorder{}, nil, fast(outbox.Options{})))
	waitFor(t, "the stale markers to be cleared", func() bool { return leftovers(t, db) == 0 })
}
