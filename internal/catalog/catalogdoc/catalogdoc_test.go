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
	"github.com/microshop/microshop/internal/catalog/catalogtest"
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

// TestStoreContract runs the catalog's store contract on the embedded FerretDB.
func TestStoreContract(t *testing.T) {
	catalogtest.RunStore(t, func(t *testing.T) catalog.Store { return catalogdoc.New(openDB(t)) })
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
			_, err := store.UpdatePrice(ctx, p.ID, 1299, int64(2000+i), time.Now(), catalogtest.Event(t, p.ID))
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
