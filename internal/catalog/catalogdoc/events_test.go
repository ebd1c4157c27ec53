package catalogdoc_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdoc"
	"github.com/microshop/microshop/internal/catalog/catalogtest"
	"github.com/microshop/microshop/internal/docdb"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/outbox"
)

func TestEventsAreStoredIfAndOnlyIfTheChangeIs(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	store := catalogdoc.New(db)
	p := product("MUG-1")
	created := catalogtest.Event(t, p.ID)
	if err := store.Create(ctx, p, created); err != nil {
		t.Fatalf("Create: %v", err)
	}
	taken := product("MUG-1")
	if err := store.Create(ctx, taken, catalogtest.Event(t, taken.ID)); !fail.Is(err, fail.Conflict) {
		t.Fatalf("Create of a taken SKU = %v, want fail.Conflict", err)
	}
	repriced := catalogtest.Event(t, p.ID)
	if _, err := store.UpdatePrice(ctx, p.ID, 1299, 999, time.Now(), repriced); err != nil {
		t.Fatalf("UpdatePrice: %v", err)
	}
	if _, err := store.UpdatePrice(ctx, p.ID, 1299, 500, time.Now(), catalogtest.Event(t, p.ID)); !fail.Is(err, fail.Conflict) {
		t.Fatalf("UpdatePrice from a stale price = %v, want fail.Conflict", err)
	}
	if _, err := store.UpdatePrice(ctx, "missing", 1299, 500, time.Now(), catalogtest.Event(t, "missing")); !fail.Is(err, fail.NotFound) {
		t.Fatalf("UpdatePrice of a missing product = %v, want fail.NotFound", err)
	}
	if got, want := outboxIDs(t, db, p.ID), []string{created.ID, repriced.ID}; !slices.Equal(got, want) {
		t.Errorf("events in the product = %v, want the committed changes' events %v", got, want)
	}
	b, err := docdb.Pending(ctx, db, catalogdoc.Collection)
	if err != nil {
		t.Fatal(err)
	}
	if b.Count != 2 {
		t.Errorf("events pending in the whole catalog = %d, want 2: none of the refused changes'", b.Count)
	}
	if got, _ := store.ByID(ctx, p.ID); got.PriceCents != 999 {
		t.Errorf("price = %d, want 999", got.PriceCents)
	}
}

// recorder is an in-memory bus.Publisher that keeps what it was sent.
type recorder struct {
	mu     sync.Mutex
	events []event.Event
}

func (r *recorder) Publish(ctx context.Context, e event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) all() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// runRelay runs r until the test ends, or until the returned stop.
func runRelay(t *testing.T, r *docdb.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitDrained(t *testing.T, db *docdb.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // only so a broken relay cannot hang the suite
	for {
		b, err := docdb.Pending(context.Background(), db, catalogdoc.Collection)
		if err != nil {
			t.Fatal(err)
		}
		if b.Count == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for the catalog's outbox to drain: %+v", b)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func fast(o outbox.Options) outbox.Options {
	o.Service = catalog.Source
	o.Poll = 2 * time.Millisecond
	o.MinBackoff, o.MaxBackoff = time.Millisecond, 4*time.Millisecond
	return o
}

func TestTheServicePublishesThroughTheOutbox(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := catalog.NewService(catalogdoc.New(db))
	p, err := svc.Create(ctx, catalog.NewProduct{SKU: "MUG-1", Name: "Mug", Category: "Kitchen", PriceCents: 1299})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChangePrice(ctx, p.ID, 999); err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	relay := docdb.NewRelay(db, catalogdoc.Collection, pub, nil, fast(outbox.Options{}))
	db.OnCommit(relay.Wake)
	runRelay(t, relay)
	waitDrained(t, db)
	var got []string
	for _, e := range pub.all() {
		got = append(got, e.Type+" "+e.Topic+" "+e.Key)
	}
	want := []string{"ProductCreated catalog.product.created " + p.ID, "ProductPriceChanged catalog.product.price_changed " + p.ID}
	if !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	var changed catalog.ProductPriceChanged
	if err := pub.all()[1].Decode(&changed); err != nil || changed.OldPriceCents != 1299 || changed.PriceCents != 999 {
		t.Errorf("ProductPriceChanged = %+v (%v), want 1299 to 999", changed, err)
	}
	// A later change wakes the running relay.
	if _, err := svc.ChangePrice(ctx, p.ID, 1099); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, db)
	if n := len(pub.all()); n != 3 {
		t.Errorf("published %d events after a third change, want 3", n)
	}
	if ids := outboxIDs(t, db, p.ID); len(ids) != 0 {
		t.Errorf("the product still holds events %v after they were published", ids)
	}
}

var errCrash = errors.New("killed")

// TestAChangeIsPublishedAfterARelayRestart stops the relay as a crash
// would, at each failpoint, and restarts it: every committed change's
// events go out (at least once, with their ids) and leave the document.
func TestAChangeIsPublishedAfterARelayRestart(t *testing.T) {
	for _, point := range []string{"before-publish", "after-publish"} {
		t.Run(point, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t)
			svc := catalog.NewService(catalogdoc.New(db))
			p, err := svc.Create(ctx, catalog.NewProduct{SKU: "MUG-1", Name: "Mug", Category: "Kitchen", PriceCents: 1299})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.ChangePrice(ctx, p.ID, 999); err != nil {
				t.Fatal(err)
			}
			want := outboxIDs(t, db, p.ID)
			pub := &recorder{}
			crash := func(event.Event) error { return errCrash }
			opts := fast(outbox.Options{Lease: 50 * time.Millisecond})
			if point == "before-publish" {
				opts.BeforePublish = crash
			} else {
				opts.AfterPublish = crash
			}
			if err := docdb.NewRelay(db, catalogdoc.Collection, pub, nil, opts).Run(ctx); !errors.Is(err, errCrash) {
				t.Fatalf("the first relay returned %v, want the failpoint's crash", err)
			}
			if got := outboxIDs(t, db, p.ID); !slices.Equal(got, want) {
				t.Fatalf("after the crash the product holds %v, want every event still %v", got, want)
			}
			// The restarted relay waits out the dead one's lease, then publishes.
			runRelay(t, docdb.NewRelay(db, catalogdoc.Collection, pub, nil, fast(outbox.Options{})))
			waitDrained(t, db)
			var got []string
			for _, e := range pub.all() {
				got = append(got, e.ID)
			}
			wantSent := want
			if point == "after-publish" {
				wantSent = append([]string{want[0]}, want...) // the first again, with its id: consumers drop the copy
			}
			if !slices.Equal(got, wantSent) {
				t.Errorf("published %v, want %v", got, wantSent)
			}
			if ids := outboxIDs(t, db, p.ID); len(ids) != 0 {
				t.Errorf("the product still holds events %v", ids)
			}
		})
	}
}
