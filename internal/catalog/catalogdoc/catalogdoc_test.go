package catalogdoc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdoc"
	"github.com/microshop/microshop/internal/docdb"
	"github.com/microshop/microshop/internal/docdb/docdbtest"
	"github.com/microshop/microshop/internal/fail"
)

// openDB opens a fresh catalog database, indexed, on an embedded server.
func openDB(t *testing.T) *docdb.DB {
	t.Helper()
	db := docdbtest.Open(t, docdbtest.Server(t))
	if err := catalogdoc.Migrate(context.Background(), db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func product(sku string) catalog.Product {
	// Documents keep times to the millisecond.
	now := time.Now().UTC().Truncate(time.Millisecond)
	return catalog.Product{
		ID: uuid.Must(uuid.NewV7()).String(), SKU: sku, Name: "Mug " + sku, Description: "A mug.\nWith a handle.",
		Category: "Kitchen", PriceCents: 1299, Currency: "USD", CreatedAt: now, UpdatedAt: now,
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	store := catalogdoc.New(db)
	if err := store.Create(ctx, product("BEFORE")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	// Every start-up migrates again, over the data the last one left.
	if err := catalogdoc.Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate a second time: %v", err)
	}
	cur, err := db.Collection(catalogdoc.Collection).Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var indexes []struct {
		Name   string `bson:"name"`
		Unique bool   `bson:"unique"`
	}
	if err := cur.All(ctx, &indexes); err != nil {
		t.Fatal(err)
	}
	unique := map[string]bool{}
	for _, ix := range indexes {
		unique[ix.Name] = ix.Unique
	}
	if len(indexes) != 3 || !unique["sku_unique"] {
		t.Errorf("indexes after two migrations = %+v, want _id, a unique sku_unique and outbox_pending, once each", indexes)
	}
	if _, ok := unique["outbox_pending"]; !ok {
		t.Errorf("indexes after two migrations = %+v, want outbox_pending among them", indexes)
	}
	if err := store.Create(ctx, product("BEFORE")); !fail.Is(err, fail.Conflict) {
		t.Errorf("Create with a taken sku after migrating again: got %v, want kind conflict", err)
	}
	if _, err := store.BySKU(ctx, "BEFORE"); err != nil {
		t.Errorf("BySKU of the product stored before migrating again: %v", err)
	}
}

func TestCreateAndFind(t *testing.T) {
	ctx := context.Background()
	store := catalogdoc.New(openDB(t))
	p := product("MUG-1")
	if err := store.Create(ctx, p); err != nil {
		t.Fatalf("Create: %v", err)
	}
	byID, err := store.ByID(ctx, p.ID)
	if err != nil {
		t.Fatalf("ByID: %v", err)
	}
	if !same(byID, p) {
		t.Errorf("ByID: got %+v, want %+v", byID, p)
	}
	bySKU, err := store.BySKU(ctx, p.SKU)
	if err != nil {
		t.Fatalf("BySKU: %v", err)
	}
	if !same(bySKU, p) {
		t.Errorf("BySKU: got %+v, want %+v", bySKU, p)
	}
	if _, err := store.ByID(ctx, "missing"); !fail.Is(err, fail.NotFound) {
		t.Errorf("ByID(missing): got %v, want kind not found", err)
	}
	if _, err := store.BySKU(ctx, "MISSING"); !fail.Is(err, fail.NotFound) {
		t.Errorf("BySKU(missing): got %v, want kind not found", err)
	}
}

func TestCreateRefusesTakenSKU(t *testing.T) {
	ctx := context.Background()
	store := catalogdoc.New(openDB(t))
	first := product("MUG-1")
	if err := store.Create(ctx, first); err != nil {
		t.Fatalf("Create: %v", err)
	}
	second := product("MUG-1")
	second.Name = "Another mug"
	if err := store.Create(ctx, second); !fail.Is(err, fail.Conflict) {
		t.Fatalf("Create with a taken sku: got %v, want kind conflict", err)
	}
	got, err := store.BySKU(ctx, "MUG-1")
	if err != nil {
		t.Fatalf("BySKU: %v", err)
	}
	if got.ID != first.ID || got.Name != first.Name {
		t.Errorf("after the refused create: got %+v, want the first product unchanged", got)
	}
	if _, err := store.ByID(ctx, second.ID); !fail.Is(err, fail.NotFound) {
		t.Errorf("ByID of the refused product: got %v, want not found", err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	store := catalogdoc.New(openDB(t))
	empty, err := store.List(ctx, "", 10)
	if err != nil {
		t.Fatalf("List on empty store: %v", err)
	}
	if empty == nil || len(empty) != 0 {
		t.Errorf("List on empty store: got %#v, want an empty, non-nil slice", empty)
	}
	var ids []string
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		p := product(sku)
		if err := store.Create(ctx, p); err != nil {
			t.Fatalf("Create %s: %v", sku, err)
		}
		ids = append(ids, p.ID)
	}
	tests := []struct {
		name  string
		after string
		limit int
		want  []string
	}{
		{"first two", "", 2, ids[:2]},
		{"after the second", ids[1], 2, ids[2:4]},
		{"last page", ids[3], 2, ids[4:]},
		{"after the last", ids[4], 2, nil},
		{"all", "", 10, ids},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := store.List(ctx, tt.after, tt.limit)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var gotIDs []string
			for _, p := range got {
				gotIDs = append(gotIDs, p.ID)
			}
			if len(gotIDs) != len(tt.want) {
				t.Fatalf("List(%q, %d): got %v, want %v", tt.after, tt.limit, gotIDs, tt.want)
			}
			for i := range gotIDs {
				if gotIDs[i] != tt.want[i] {
					t.Fatalf("List(%q, %d): got %v, want %v", tt.after, tt.limit, gotIDs, tt.want)
				}
			}
		})
	}
}

func TestUpdatePrice(t *testing.T) {
	ctx := context.Background()
	store := catalogdoc.New(openDB(t))
	p := product("MUG-1")
	other := product("MUG-2")
	for _, q := range []catalog.Product{p, other} {
		if err := store.Create(ctx, q); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	at := p.UpdatedAt.Add(time.Minute)
	got, err := store.UpdatePrice(ctx, p.ID, p.PriceCents, 2500, at)
	if err != nil {
		t.Fatalf("UpdatePrice: %v", err)
	}
	if got.PriceCents != 2500 || !got.UpdatedAt.Equal(at) || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("UpdatePrice: got price %d updated %v created %v, want 2500, %v, %v",
			got.PriceCents, got.UpdatedAt, got.CreatedAt, at, p.CreatedAt)
	}
	stored, _ := store.ByID(ctx, p.ID)
	if stored.PriceCents != 2500 {
		t.Errorf("stored price: got %d, want 2500", stored.PriceCents)
	}
	untouched, _ := store.ByID(ctx, other.ID)
	if untouched.PriceCents != other.PriceCents {
		t.Errorf("other product's price: got %d, want %d", untouched.PriceCents, other.PriceCents)
	}
	if _, err := store.UpdatePrice(ctx, "missing", 1299, 100, at); !fail.Is(err, fail.NotFound) {
		t.Errorf("UpdatePrice(missing): got %v, want kind not found", err)
	}
	// The price is no longer 1299: the update is refused and changes nothing.
	if _, err := store.UpdatePrice(ctx, p.ID, 1299, 100, at.Add(time.Minute)); !fail.Is(err, fail.Conflict) {
		t.Errorf("UpdatePrice from a stale price: got %v, want kind conflict", err)
	}
	if stored, _ := store.ByID(ctx, p.ID); stored.PriceCents != 2500 || !stored.UpdatedAt.Equal(at) {
		t.Errorf("after a stale update: price %d updated %v, want 2500, %v", stored.PriceCents, stored.UpdatedAt, at)
	}
}

func TestConcurrentPriceChangesFromOnePriceHaveOneWinner(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	store := catalogdoc.New(db)
	p := product("MUG-1")
	if err := store.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	// Every writer read 1299; only one may replace it, or two events
	// would each announce a change from 1299 and one price would be lost.
	const writers = 8
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		won, lost, failed int
	)
	for i := range writers {
		wg.Go(func() {
			_, err := store.UpdatePrice(ctx, p.ID, 1299, int64(2000+i), time.Now(), newEvent(t, p.ID))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case fail.Is(err, fail.Conflict):
				lost++
			default:
				failed++
				t.Errorf("UpdatePrice: %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || lost != writers-1 || failed != 0 {
		t.Errorf("won %d, lost %d, failed %d; want 1, %d, 0", won, lost, failed, writers-1)
	}
	if got := outboxIDs(t, db, p.ID); len(got) != 1 {
		t.Errorf("events in the document = %d, want the winner's 1", len(got))
	}
}

// same compares products, times by instant.
func same(a, b catalog.Product) bool {
	ta, tb := a.CreatedAt, b.CreatedAt
	ua, ub := a.UpdatedAt, b.UpdatedAt
	a.CreatedAt, b.CreatedAt, a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b && ta.Equal(tb) && ua.Equal(ub)
}

// outboxIDs returns the ids of the events product id's document holds.
func outboxIDs(t *testing.T, db *docdb.DB, id string) []string {
	t.Helper()
	var doc struct {
		Outbox []struct {
			ID string `bson:"id"`
		} `bson:"outbox"`
	}
	if err := db.Collection(catalogdoc.Collection).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatalf("reading product %s: %v", id, err)
	}
	ids := []string{}
	for _, e := range doc.Outbox {
		ids = append(ids, e.ID)
	}
	return ids
}
