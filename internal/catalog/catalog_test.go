package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// memStore is a catalog.Store in memory, enough to test the service's rules.
// It keeps the events stored with each change, in order.
type memStore struct {
	products []catalog.Product
	events   []event.Event
	// beforeUpdate, if set, runs at the start of UpdatePrice, so that a
	// test can change the price under the service's feet.
	beforeUpdate func(m *memStore)
}

func (m *memStore) Create(_ context.Context, p catalog.Product, events ...event.Event) error {
	for _, q := range m.products {
		if q.SKU == p.SKU {
			return fail.New(fail.Conflict, "sku taken")
		}
	}
	m.products = append(m.products, p)
	m.events = append(m.events, events...)
	return nil
}

func (m *memStore) ByID(_ context.Context, id string) (catalog.Product, error) {
	for _, p := range m.products {
		if p.ID == id {
			return p, nil
		}
	}
	return catalog.Product{}, fail.New(fail.NotFound, "product not found")
}

func (m *memStore) BySKU(_ context.Context, sku string) (catalog.Product, error) {
	for _, p := range m.products {
		if p.SKU == sku {
			return p, nil
		}
	}
	return catalog.Product{}, fail.New(fail.NotFound, "product not found")
}

func (m *memStore) List(_ context.Context, after string, limit int) ([]catalog.Product, error) {
	sorted := slices.Clone(m.products)
	slices.SortFunc(sorted, func(a, b catalog.Product) int { return strings.Compare(a.ID, b.ID) })
	var out []catalog.Product
	for _, p := range sorted {
		if p.ID > after && len(out) < limit {
			out = append(out, p)
		}
	}
	return out, nil
}

func (m *memStore) UpdatePrice(_ context.Context, id string, from, to int64, at time.Time, events ...event.Event) (catalog.Product, error) {
	if m.beforeUpdate != nil {
		m.beforeUpdate(m)
	}
	for i, p := range m.products {
		if p.ID != id {
			continue
		}
		if p.PriceCents != from {
			return catalog.Product{}, fail.New(fail.Conflict, "price moved")
		}
		m.products[i].PriceCents, m.products[i].UpdatedAt = to, at
		m.events = append(m.events, events...)
		return m.products[i], nil
	}
	return catalog.Product{}, fail.New(fail.NotFound, "product not found")
}

func valid() catalog.NewProduct {
	return catalog.NewProduct{SKU: "MUG-01", Name: "Mug", Description: "A mug.", Category: "Kitchen", PriceCents: 1299}
}

func TestCreateValidation(t *testing.T) {
	tests := []struct {
		name   string
		change func(*catalog.NewProduct)
		ok     bool
	}{
		{"valid", func(*catalog.NewProduct) {}, true},
		{"explicit USD", func(p *catalog.NewProduct) { p.Currency = "USD" }, true},
		{"sku of 64", func(p *catalog.NewProduct) { p.SKU = strings.Repeat("A", 64) }, true},
		{"sku of 65", func(p *catalog.NewProduct) { p.SKU = strings.Repeat("A", 65) }, false},
		{"empty sku", func(p *catalog.NewProduct) { p.SKU = "" }, false},
		{"lowercase sku", func(p *catalog.NewProduct) { p.SKU = "mug-01" }, false},
		{"sku with space", func(p *catalog.NewProduct) { p.SKU = "MUG 01" }, false},
		{"sku with underscore", func(p *catalog.NewProduct) { p.SKU = "MUG_01" }, false},
		{"empty name", func(p *catalog.NewProduct) { p.Name = "" }, false},
		{"blank name", func(p *catalog.NewProduct) { p.Name = "   " }, false},
		{"name of 200 runes", func(p *catalog.NewProduct) { p.Name = strings.Repeat("é", 200) }, true},
		{"name of 201", func(p *catalog.NewProduct) { p.Name = strings.Repeat("a", 201) }, false},
		{"name with control char", func(p *catalog.NewProduct) { p.Name = "Mu\x00g" }, false},
		{"name with newline", func(p *catalog.NewProduct) { p.Name = "Mu\ng" }, false},
		{"empty description", func(p *catalog.NewProduct) { p.Description = "" }, true},
		{"multiline description", func(p *catalog.NewProduct) { p.Description = "Line one.\nLine\ttwo." }, true},
		{"description of 2000", func(p *catalog.NewProduct) { p.Description = strings.Repeat("d", 2000) }, true},
		{"description of 2001", func(p *catalog.NewProduct) { p.Description = strings.Repeat("d", 2001) }, false},
		{"description with bell", func(p *catalog.NewProduct) { p.Description = "ding\a" }, false},
		{"empty category", func(p *catalog.NewProduct) { p.Category = "" }, false},
		{"category of 101", func(p *catalog.NewProduct) { p.Category = strings.Repeat("c", 101) }, false},
		{"price 0", func(p *catalog.NewProduct) { p.PriceCents = 0 }, false},
		{"price -1", func(p *catalog.NewProduct) { p.PriceCents = -1 }, false},
		{"price 1", func(p *catalog.NewProduct) { p.PriceCents = 1 }, true},
		{"price max", func(p *catalog.NewProduct) { p.PriceCents = 100_000_000 }, true},
		{"price over max", func(p *catalog.NewProduct) { p.PriceCents = 100_000_001 }, false},
		{"currency EUR", func(p *catalog.NewProduct) { p.Currency = "EUR" }, false},
		{"currency lowercase", func(p *catalog.NewProduct) { p.Currency = "usd" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{}
			in := valid()
			tt.change(&in)
			p, err := catalog.NewService(store).Create(context.Background(), in)
			if tt.ok {
				if err != nil {
					t.Fatalf("Create: got error %v, want none", err)
				}
				if len(store.products) != 1 {
					t.Fatalf("stored products: got %d, want 1", len(store.products))
				}
				if p.Currency != "USD" {
					t.Errorf("currency: got %q, want USD", p.Currency)
				}
				return
			}
			if !fail.Is(err, fail.Invalid) {
				t.Fatalf("Create: got error %v (kind %v), want kind invalid", err, fail.KindOf(err))
			}
			if len(store.products) != 0 {
				t.Errorf("stored products after invalid input: got %d, want 0", len(store.products))
			}
		})
	}
}

func TestCreateSetsIDTimesAndTrims(t *testing.T) {
	store := &memStore{}
	in := valid()
	in.Name, in.Category, in.Description = "  Mug  ", " Kitchen ", " A mug. \n"
	p, err := catalog.NewService(store).Create(context.Background(), in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if len(p.ID) != 36 {
		t.Errorf("id: got %q, want a UUID", p.ID)
	}
	if p.CreatedAt.IsZero() || !p.CreatedAt.Equal(p.UpdatedAt) || p.CreatedAt.Location() != time.UTC {
		t.Errorf("times: got created %v updated %v, want equal, set and UTC", p.CreatedAt, p.UpdatedAt)
	}
	if p.Name != "Mug" || p.Category != "Kitchen" || p.Description != "A mug." {
		t.Errorf("text: got name %q category %q description %q, want them trimmed", p.Name, p.Category, p.Description)
	}
	if got, _ := store.ByID(context.Background(), p.ID); got != p {
		t.Errorf("stored: got %+v, want %+v", got, p)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	svc := catalog.NewService(store)
	var ids []string
	for _, sku := range []string{"A", "B", "C", "D", "E"} {
		in := valid()
		in.SKU = sku
		p, err := svc.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create %s: %v", sku, err)
		}
		ids = append(ids, p.ID)
	}
	var got []string
	after, pages := "", 0
	for {
		page, err := svc.List(ctx, after, 2)
		if err != nil {
			t.Fatalf("List after %q: %v", after, err)
		}
		pages++
		for _, p := range page.Items {
			got = append(got, p.ID)
		}
		if page.Next == "" {
			break
		}
		if page.Next != page.Items[len(page.Items)-1].ID {
			t.Errorf("next: got %q, want the last id of the page %q", page.Next, page.Items[len(page.Items)-1].ID)
		}
		after = page.Next
	}
	if !slices.Equal(got, ids) {
		t.Errorf("ids over all pages: got %v, want %v (creation order)", got, ids)
	}
	if pages != 3 {
		t.Errorf("pages of 2 over 5 products: got %d, want 3", pages)
	}

	// A page that ends exactly at the last product says there is no next one.
	page, err := svc.List(ctx, "", 5)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Items) != 5 || page.Next != "" {
		t.Errorf("exact page: got %d items and next %q, want 5 and empty", len(page.Items), page.Next)
	}
}

func TestListRefusesBadPages(t *testing.T) {
	tests := []struct {
		name  string
		after string
		limit int
	}{
		{"limit 0", "", 0},
		{"limit -1", "", -1},
		{"limit over max", "", 1001},
		{"cursor too long", strings.Repeat("x", 129), 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalog.NewService(&memStore{}).List(context.Background(), tt.after, tt.limit)
			if !fail.Is(err, fail.Invalid) {
				t.Errorf("List(%q, %d): got %v, want kind invalid", tt.after, tt.limit, err)
			}
		})
	}
}

func TestChangePrice(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	svc := catalog.NewService(store)
	p, err := svc.Create(ctx, valid())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	tests := []struct {
		name  string
		id    string
		cents int64
		want  fail.Kind // Internal stands for success here
		price int64     // the stored price afterwards
	}{
		{"zero refused", p.ID, 0, fail.Invalid, 1299},
		{"too high refused", p.ID, 100_000_001, fail.Invalid, 1299},
		{"unknown product", "nope", 500, fail.NotFound, 1299},
		{"changed", p.ID, 999, fail.Internal, 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.ChangePrice(ctx, tt.id, tt.cents)
			switch {
			case tt.want == fail.Internal && err != nil:
				t.Fatalf("ChangePrice: got error %v, want none", err)
			case tt.want == fail.Internal && got.PriceCents != tt.cents:
				t.Errorf("returned price: got %d, want %d", got.PriceCents, tt.cents)
			case tt.want != fail.Internal && !fail.Is(err, tt.want):
				t.Errorf("ChangePrice: got %v, want kind %v", err, tt.want)
			}
			stored, _ := store.ByID(ctx, p.ID)
			if stored.PriceCents != tt.price {
				t.Errorf("stored price: got %d, want %d", stored.PriceCents, tt.price)
			}
		})
	}
}

func TestBySKUValidates(t *testing.T) {
	_, err := catalog.NewService(&memStore{}).BySKU(context.Background(), "bad sku")
	if !fail.Is(err, fail.Invalid) {
		t.Errorf("BySKU(bad sku): got %v, want kind invalid", err)
	}
}
