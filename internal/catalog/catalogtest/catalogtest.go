// Package catalogtest holds the tests every store of the catalog must pass,
// whatever keeps its products: SQL (catalogdb) or documents (catalogdoc).
// Each store runs RunStore against its real database.
package catalogtest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// RunStore runs the store contract against stores newStore opens, each on
// a database of its own.
func RunStore(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	for name, test := range map[string]func(*testing.T, func(*testing.T) catalog.Store){
		"CreateAndFind":         testCreateAndFind,
		"CreateRefusesTakenSKU": testCreateRefusesTakenSKU,
		"List":                  testList,
		"UpdatePrice":           testUpdatePrice,
	} {
		t.Run(name, func(t *testing.T) { test(t, newStore) })
	}
}

// Product is a new product with sku. Its times are whole milliseconds,
// which every store keeps exactly (documents keep no finer).
func Product(sku string) catalog.Product {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return catalog.Product{
		ID: uuid.Must(uuid.NewV7()).String(), SKU: sku, Name: "Mug " + sku, Description: "A mug.\nWith a handle.",
		Category: "Kitchen", PriceCents: 1299, Currency: "USD", CreatedAt: now, UpdatedAt: now,
	}
}

// Event is an event about productID, to store with a change.
func Event(t *testing.T, productID string) event.Event {
	t.Helper()
	e, err := event.New(catalog.Source, catalog.TopicProductCreated, catalog.TypeProductCreated, 1, productID,
		catalog.ProductCreated{ProductID: productID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Same compares products, times by instant, since a round trip through
// a database drops the monotonic clock reading.
func Same(a, b catalog.Product) bool {
	ta, tb := a.CreatedAt, b.CreatedAt
	ua, ub := a.UpdatedAt, b.UpdatedAt
	a.CreatedAt, b.CreatedAt, a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b && ta.Equal(tb) && ua.Equal(ub)
}

func testCreateAndFind(t *testing.T, newStore func(*testing.T) catalog.Store) {
	ctx := context.Background()
	store := newStore(t)
	p := Product("MUG-1")
	if err := store.Create(ctx, p); err != nil {
		t.Fatalf("Create: %v", err)
	}
	byID, err := store.ByID(ctx, p.ID)
	if err != nil {
		t.Fatalf("ByID: %v", err)
	}
	if !Same(byID, p) {
		t.Errorf("ByID: got %+v, want %+v", byID, p)
	}
	bySKU, err := store.BySKU(ctx, p.SKU)
	if err != nil {
		t.Fatalf("BySKU: %v", err)
	}
	if !Same(bySKU, p) {
		t.Errorf("BySKU: got %+v, want %+v", bySKU, p)
	}
	if _, err := store.ByID(ctx, "missing"); !fail.Is(err, fail.NotFound) {
		t.Errorf("ByID(missing): got %v, want kind not found", err)
	}
	if _, err := store.BySKU(ctx, "MISSING"); !fail.Is(err, fail.NotFound) {
		t.Errorf("BySKU(missing): got %v, want kind not found", err)
	}
}

func testCreateRefusesTakenSKU(t *testing.T, newStore func(*testing.T) catalog.Store) {
	ctx := context.Background()
	store := newStore(t)
	first := Product("MUG-1")
	if err := store.Create(ctx, first); err != nil {
		t.Fatalf("Create: %v", err)
	}
	second := Product("MUG-1")
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

func testList(t *testing.T, newStore func(*testing.T) catalog.Store) {
	ctx := context.Background()
	store := newStore(t)
	empty, err := store.List(ctx, "", 10)
	if err != nil {
		t.Fatalf("List on empty store: %v", err)
	}
	if empty == nil || len(empty) != 0 {
		t.Errorf("List on empty store: got %#v, want an empty, non-nil slice", empty)
	}
	var ids []string
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		p := Product(sku)
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

func testUpdatePrice(t *testing.T, newStore func(*testing.T) catalog.Store) {
	ctx := context.Background()
	store := newStore(t)
	p := Product("MUG-1")
	other := Product("MUG-2")
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
