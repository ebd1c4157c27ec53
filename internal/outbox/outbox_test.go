package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// shop is a service's own schema, applied next to the messaging set.
var shop = fstest.MapFS{
	"migrations/sqlite/00001_orders.sql":   {Data: []byte(ordersSQL)},
	"migrations/postgres/00001_orders.sql": {Data: []byte(ordersSQL)},
	"migrations/mysql/00001_orders.sql":    {Data: []byte(strings.ReplaceAll(ordersSQL, "TEXT", "VARCHAR(64)"))},
}

const ordersSQL = `-- +goose Up
CREATE TABLE orders (id TEXT PRIMARY KEY);
-- +goose Down
DROP TABLE orders;
`

// openDB opens a service's database on dialect d, with the messaging tables.
func openDB(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessagingOn(t, d, "svc", shop)
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
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.events))
	for i, e := range r.events {
		out[i] = e.ID
	}
	return out
}

func newEvent(t *testing.T, n int) event.Event {
	t.Helper()
	e, err := event.New("orders", "orders.order.created", "OrderCreated", 1, fmt.Sprint("order-", n), map[string]int{"n": n})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// commit places an order and its event in one transaction, as a service
// does, and returns the event's id.
func commit(t *testing.T, db *sqldb.DB, n int) string {
	t.Helper()
	e := newEvent(t, n)
	err := db.Atomic(context.Background(), func(ctx context.Context) error {
		if _, err := db.ExecContext(ctx, `INSERT INTO orders (id) VALUES (?)`, e.Key); err != nil {
			return err
		}
		return outbox.Add(ctx, db, e)
	})
	if err != nil {
		t.Fatal(err)
	}
	return e.ID
}

func commitMany(t *testing.T, db *sqldb.DB, from, to int) []string {
	var ids []string
	for n := from; n < to; n++ {
		ids = append(ids, commit(t, db, n))
	}
	return ids
}

// run starts r and returns a stop that cancels it and returns what Run
// returned; stop may be called more than once.
func run(t *testing.T, r *outbox.Relay) (stop func() error) {
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

func drained(t *testing.T, db *sqldb.DB) func() bool {
	return func() bool {
		b, err := outbox.Pending(context.Background(), db)
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

func TestMigrateDownAndUpAgain(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		ctx := context.Background()
		if err := outbox.MigrateDown(ctx, db); err != nil {
			t.Fatal(err)
		}
		var n int
		for _, table := range []string{"outbox", "outbox_relay", "inbox", "dead_letters"} {
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err == nil {
				t.Errorf("after MigrateDown, table %s is still there", table)
			}
		}
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM orders`).Scan(&n); err != nil {
			t.Fatalf("MigrateDown touched the service's own tables: %v", err)
		}
		if err := outbox.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := outbox.Migrate(ctx, db); err != nil {
			t.Fatalf("migrating twice: %v", err)
		}
		commit(t, db, 1)
	})
}

func TestAddRefusesToRunOutsideATransaction(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		ctx := context.Background()
		if err := outbox.Add(ctx, db, newEvent(t, 1)); !errors.Is(err, outbox.ErrNoTransaction) {
			t.Fatalf("Add without a transaction = %v, want ErrNoTransaction", err)
		}
		// A transaction of another database is no transaction of this one.
		other := openDB(t, d)
		err := other.Atomic(ctx, func(ctx context.Context) error { return outbox.Add(ctx, db, newEvent(t, 2)) })
		if !errors.Is(err, outbox.ErrNoTransaction) {
			t.Fatalf("Add in another database's transaction = %v, want ErrNoTransaction", err)
		}
		if b, _ := outbox.Pending(ctx, db); b.Count != 0 {
			t.Errorf("backlog = %d, want 0", b.Count)
		}
	})
}

func TestAddCommitsWithTheStateChangeOrNotAtAll(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		tests := []struct {
			name      string
			fail      error
			event     func(event.Event) event.Event
			wantState int
		}{
			{"commits", nil, func(e event.Event) event.Event { return e }, 1},
			{"state change fails after Add", errors.New("boom"), func(e event.Event) event.Event { return e }, 0},
			{"invalid event", nil, func(e event.Event) event.Event { e.Topic = "notopic"; return e }, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				db := openDB(t, d)
				ctx := context.Background()
				e := tt.event(newEvent(t, 1))
				err := db.Atomic(ctx, func(ctx context.Context) error {
					if _, err := db.ExecContext(ctx, `INSERT INTO orders (id) VALUES ('o1')`); err != nil {
						return err
					}
					if err := outbox.Add(ctx, db, e); err != nil {
						return err
					}
					return tt.fail
				})
				if (err == nil) != (tt.wantState == 1) {
					t.Fatalf("Atomic = %v", err)
				}
				var orders, events int
				if err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM outbox)`).Scan(&orders, &events); err != nil {
					t.Fatal(err)
				}
				if orders != tt.wantState || events != tt.wantState {
					t.Errorf("orders = %d, outbox rows = %d, want %d of each", orders, events, tt.wantState)
				}
			})
		}
	})
}

func TestRelayPublishesInOrderAndMarks(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		want := commitMany(t, db, 0, 250)
		pub := &recorder{}
		relay := outbox.NewRelay(db, pub, nil, fast(outbox.Options{Batch: 100}))
		run(t, relay)
		waitFor(t, "the outbox to drain", drained(t, db))
		if got := pub.ids(); !reflect.DeepEqual(got, want) {
			t.Fatalf("published %d events, want the %d committed, once each, in commit order", len(got), len(want))
		}
		var unmarked, attempts int
		if err := db.QueryRowContext(context.Background(),
			`SELECT COALESCE(SUM(CASE WHEN published_at IS NULL THEN 1 ELSE 0 END), 0), COALESCE(SUM(attempts), 0) FROM outbox`).Scan(&unmarked, &attempts); err != nil {
			t.Fatal(err)
		}
		if unmarked != 0 || attempts != len(want) {
			t.Errorf("unmarked = %d, attempts = %d, want 0 and %d", unmarked, attempts, len(want))
		}
	})
}

func TestRelayPublishesTheSameEnvelope(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		e := newEvent(t, 7)
		e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		if err := db.Atomic(context.Background(), func(ctx context.Context) error { return outbox.Add(ctx, db, e) }); err != nil {
			t.Fatal(err)
		}
		pub := &recorder{}
		run(t, outbox.NewRelay(db, pub, nil, fast(outbox.Options{})))
		waitFor(t, "the outbox to drain", drained(t, db))
		got := pub.all()[0]
		if !got.Time.Equal(e.Time) {
			t.Errorf("time = %v, want %v", got.Time, e.Time)
		}
		got.Time = e.Time
		if !reflect.DeepEqual(got, e) {
			t.Errorf("published %+v, want %+v", got, e)
		}
	})
}

func TestWakeStartsAPassAtOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		pub := &recorder{}
		relay := outbox.NewRelay(db, pub, nil, outbox.Options{Holder: "r1", Poll: time.Hour})
		run(t, relay)
		// Once the relay holds the lease its first pass is over, and without
		// a wake-up the next is an hour away.
		waitFor(t, "the relay's first pass", func() bool {
			var holder string
			_ = db.QueryRowContext(context.Background(), `SELECT holder FROM outbox_relay`).Scan(&holder)
			return holder == "r1"
		})
		id := commit(t, db, 1)
		relay.Wake()
		waitFor(t, "the woken relay to publish", drained(t, db))
		if got := pub.ids(); !reflect.DeepEqual(got, []string{id}) {
			t.Errorf("published %q, want [%s]", got, id)
		}
	})
}

func TestRelayRetriesAFailedPublishWithoutSkipping(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		want := commitMany(t, db, 0, 5)
		pub := &recorder{refuse: 3}
		relay := outbox.NewRelay(db, pub, nil, fast(outbox.Options{}))
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(relay.Collectors()...)
		run(t, relay)
		waitFor(t, "the outbox to drain", drained(t, db))
		if got := pub.ids(); !reflect.DeepEqual(got, want) {
			t.Errorf("published %q, want %q", got, want)
		}
		var attempts int
		var lastErr string
		if err := db.QueryRowContext(context.Background(), `SELECT attempts, last_error FROM outbox WHERE event_id = ?`, want[0]).Scan(&attempts, &lastErr); err != nil {
			t.Fatal(err)
		}
		if attempts != 4 || lastErr != "" {
			t.Errorf("first event: attempts = %d, last_error = %q, want 4 and none", attempts, lastErr)
		}
		if got := gauge(t, reg, "outbox_publish_errors_total"); got != 3 {
			t.Errorf("outbox_publish_errors_total = %v, want 3", got)
		}
	})
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

func TestCrashBetweenCommitAndPublishLosesNothing(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		want := commitMany(t, db, 0, 10)
		pub := &recorder{}
		first := outbox.NewRelay(db, pub, nil, fast(outbox.Options{Lease: 50 * time.Millisecond, BeforePublish: crashAt(3)}))
		if err := first.Run(context.Background()); !errors.Is(err, errCrash) {
			t.Fatalf("first relay returned %v, want the failpoint's crash", err)
		}
		if got := len(pub.ids()); got != 2 {
			t.Fatalf("before the crash %d events were published, want 2", got)
		}
		// A new relay, as after a restart, takes over once the dead one's
		// lease expires, and publishes what the old one left.
		run(t, outbox.NewRelay(db, pub, nil, fast(outbox.Options{})))
		waitFor(t, "the outbox to drain", drained(t, db))
		if got := pub.ids(); !reflect.DeepEqual(got, want) {
			t.Errorf("published %q, want every committed event once, in order: %q", got, want)
		}
	})
}

func TestCrashBetweenPublishAndMarkRepublishesTheSameEvent(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		want := commitMany(t, db, 0, 5)
		pub := &recorder{}
		first := outbox.NewRelay(db, pub, nil, fast(outbox.Options{Lease: 50 * time.Millisecond, AfterPublish: crashAt(2)}))
		if err := first.Run(context.Background()); !errors.Is(err, errCrash) {
			t.Fatalf("first relay returned %v, want the failpoint's crash", err)
		}
		run(t, outbox.NewRelay(db, pub, nil, fast(outbox.Options{})))
		waitFor(t, "the outbox to drain", drained(t, db))
		wantSent := append([]string{want[0], want[1]}, want[1:]...)
		if got := pub.ids(); !reflect.DeepEqual(got, wantSent) {
			t.Fatalf("published %q, want %q: the unmarked event again, with its id", got, wantSent)
		}
		if sent := pub.all(); !reflect.DeepEqual(sent[1].Payload, sent[2].Payload) || sent[1].Key != sent[2].Key || !sent[1].Time.Equal(sent[2].Time) {
			t.Errorf("the republished event differs: %+v, then %+v", sent[1], sent[2])
		}
	})
}

func TestTwoRelaysPublishEachEventOnceInOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		pub := &recorder{}
		a := outbox.NewRelay(db, pub, nil, fast(outbox.Options{}))
		b := outbox.NewRelay(db, pub, nil, fast(outbox.Options{}))
		stopA := run(t, a)
		run(t, b)
		var want []string
		for n := range 100 {
			want = append(want, commit(t, db, n))
			a.Wake()
			b.Wake()
		}
		waitFor(t, "the outbox to drain", drained(t, db))
		if got := pub.ids(); !reflect.DeepEqual(got, want) {
			t.Fatalf("with two relays running, published %d events, want %d once each in order", len(got), len(want))
		}
		// One stops, gracefully, in the middle of the traffic; the other
		// takes over. An event the stopping relay published but could not
		// mark goes out again; nothing else does, and nothing is lost.
		for n := 100; n < 200; n++ {
			want = append(want, commit(t, db, n))
			if n == 150 {
				if err := stopA(); err != nil {
					t.Fatalf("stopping a relay: %v", err)
				}
			}
			b.Wake()
		}
		waitFor(t, "the outbox to drain", drained(t, db))
		got := pub.ids()
		deduped := make([]string, 0, len(got))
		for i, id := range got {
			if i > 0 && got[i-1] == id {
				continue
			}
			deduped = append(deduped, id)
		}
		if !reflect.DeepEqual(deduped, want) {
			t.Errorf("published events, once repeats are dropped, differ from the %d committed in order", len(want))
		}
		if extra := len(got) - len(want); extra > 1 {
			t.Errorf("%d events published twice, want at most the 1 in flight when the relay stopped", extra)
		}
	})
}

func TestPurgeDeletesOnlyOldPublishedEvents(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		ctx := context.Background()
		ids := commitMany(t, db, 0, 4)
		old := sqldb.Stamp(time.Now().Add(-48 * time.Hour))
		recent := sqldb.Stamp(time.Now())
		for id, published := range map[string]any{ids[0]: old, ids[1]: old, ids[2]: recent, ids[3]: nil} {
			if _, err := db.ExecContext(ctx, `UPDATE outbox SET published_at = ?, created_at = ? WHERE event_id = ?`, published, old, id); err != nil {
				t.Fatal(err)
			}
		}
		n, err := outbox.Purge(ctx, db, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		rows, err := db.QueryContext(ctx, `SELECT event_id FROM outbox ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			left = append(left, id)
		}
		if n != 2 || !reflect.DeepEqual(left, ids[2:]) {
			t.Errorf("Purge deleted %d, left %q; want 2 deleted, left %q", n, left, ids[2:])
		}
	})
}

func TestCollectorsMeasureTheBacklog(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		commitMany(t, db, 0, 3)
		if _, err := db.ExecContext(context.Background(), `UPDATE outbox SET created_at = ?`, sqldb.Stamp(time.Now().Add(-time.Minute))); err != nil {
			t.Fatal(err)
		}
		pub := &recorder{}
		relay := outbox.NewRelay(db, pub, nil, fast(outbox.Options{Service: "orders"}))
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
	})
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
