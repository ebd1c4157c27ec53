package catalogdb_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdb"
	"github.com/microshop/microshop/internal/catalog/catalogtest"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// outboxIDs returns the ids of the events in db's outbox, oldest first.
func outboxIDs(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	ids := []string{}
	for _, e := range sqldbtest.Outbox(t, db) {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestEventsAreStoredIfAndOnlyIfTheChangeIs(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	store := catalogdb.New(db)
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
	if got, want := outboxIDs(t, db), []string{created.ID, repriced.ID}; !slices.Equal(got, want) {
		t.Errorf("outbox = %v, want the committed changes' events %v", got, want)
	}

	// Inside a transaction that fails afterwards, nothing stays.
	boom := errors.New("failed after the store's work")
	err := db.Atomic(ctx, func(ctx context.Context) error {
		if err := store.Create(ctx, product("MUG-2"), catalogtest.Event(t, "x")); err != nil {
			return err
		}
		if _, err := store.UpdatePrice(ctx, p.ID, 999, 100, time.Now(), catalogtest.Event(t, p.ID)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Atomic = %v, want %v", err, boom)
	}
	if got, want := outboxIDs(t, db), []string{created.ID, repriced.ID}; !slices.Equal(got, want) {
		t.Errorf("outbox after a rollback = %v, want %v", got, want)
	}
	if _, err := store.BySKU(ctx, "MUG-2"); !fail.Is(err, fail.NotFound) {
		t.Errorf("BySKU after the rollback = %v, want fail.NotFound", err)
	}
	if got, _ := store.ByID(ctx, p.ID); got.PriceCents != 999 {
		t.Errorf("price after the rollback = %d, want 999", got.PriceCents)
	}
}

func TestTheServicePublishesThroughTheOutbox(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := catalog.NewService(catalogdb.New(db))
	p, err := svc.Create(ctx, catalog.NewProduct{SKU: "MUG-1", Name: "Mug", Category: "Kitchen", PriceCents: 1299})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChangePrice(ctx, p.ID, 999); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT type, topic FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var typ, topic string
		if err := rows.Scan(&typ, &topic); err != nil {
			t.Fatal(err)
		}
		got = append(got, typ+" "+topic)
	}
	want := []string{"ProductCreated catalog.product.created", "ProductPriceChanged catalog.product.price_changed"}
	if !slices.Equal(got, want) {
		t.Errorf("outbox = %v, want %v", got, want)
	}
}
