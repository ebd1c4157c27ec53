package catalog_test

import (
	"context"
	"testing"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

func decode[T any](t *testing.T, e event.Event) T {
	t.Helper()
	var v T
	if err := e.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreatePublishesProductCreated(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	p, err := catalog.NewService(store).Create(ctx, valid())
	if err != nil {
		t.Fatal(err)
	}
	if len(store.events) != 1 {
		t.Fatalf("events stored with the product = %d, want 1", len(store.events))
	}
	e := store.events[0]
	if e.Type != catalog.TypeProductCreated || e.Topic != catalog.TopicProductCreated || e.Source != catalog.Source || e.Key != p.ID || e.Version != 1 {
		t.Errorf("event = %s on %s from %s about %s v%d; want ProductCreated on %s from catalog about %s v1",
			e.Type, e.Topic, e.Source, e.Key, e.Version, catalog.TopicProductCreated, p.ID)
	}
	want := catalog.ProductCreated{ProductID: p.ID, SKU: "MUG-01", Name: "Mug", PriceCents: 1299, Currency: "USD"}
	if got := decode[catalog.ProductCreated](t, e); got != want {
		t.Errorf("payload = %+v, want %+v", got, want)
	}

	// A refused product announces nothing.
	if _, err := catalog.NewService(store).Create(ctx, valid()); !fail.Is(err, fail.Conflict) {
		t.Fatalf("Create of a taken SKU = %v, want fail.Conflict", err)
	}
	bad := valid()
	bad.SKU, bad.PriceCents = "MUG-02", 0
	if _, err := catalog.NewService(store).Create(ctx, bad); !fail.Is(err, fail.Invalid) {
		t.Fatalf("Create of a free product = %v, want fail.Invalid", err)
	}
	if len(store.events) != 1 {
		t.Errorf("events after two refused products = %d, want still 1", len(store.events))
	}
}

func TestChangePricePublishesTheOldAndNewPrice(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		prices []int64 // set one after the other, from 1299
		want   []catalog.ProductPriceChanged
	}{
		{"one change", []int64{999}, []catalog.ProductPriceChanged{{OldPriceCents: 1299, PriceCents: 999}}},
		{"two changes", []int64{999, 1500}, []catalog.ProductPriceChanged{{OldPriceCents: 1299, PriceCents: 999}, {OldPriceCents: 999, PriceCents: 1500}}},
		{"the same price changes nothing", []int64{1299}, nil},
		{"back and forth", []int64{999, 999, 1299}, []catalog.ProductPriceChanged{{OldPriceCents: 1299, PriceCents: 999}, {OldPriceCents: 999, PriceCents: 1299}}},
		{"an invalid price changes nothing", []int64{0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{}
			svc := catalog.NewService(store)
			p, err := svc.Create(ctx, valid())
			if err != nil {
				t.Fatal(err)
			}
			for _, price := range tt.prices {
				_, _ = svc.ChangePrice(ctx, p.ID, price)
			}
			got := store.events[1:] // after ProductCreated
			if len(got) != len(tt.want) {
				t.Fatalf("price events = %d, want %d", len(got), len(tt.want))
			}
			for i, e := range got {
				want := tt.want[i]
				want.ProductID, want.Currency = p.ID, "USD"
				if e.Type != catalog.TypeProductPriceChanged || e.Topic != catalog.TopicProductPriceChanged || e.Key != p.ID {
					t.Errorf("event %d = %s on %s about %s, want ProductPriceChanged on %s about %s", i, e.Type, e.Topic, e.Key, catalog.TopicProductPriceChanged, p.ID)
				}
				if payload := decode[catalog.ProductPriceChanged](t, e); payload != want {
					t.Errorf("event %d payload = %+v, want %+v", i, payload, want)
				}
			}
		})
	}
}

func TestChangePriceAnnouncesThePriceItReplaced(t *testing.T) {
	// Another change lands between the service's read and its write: the
	// write is refused, the service reads again, and the event names the
	// price that was really replaced.
	ctx := context.Background()
	store := &memStore{}
	svc := catalog.NewService(store)
	p, err := svc.Create(ctx, valid())
	if err != nil {
		t.Fatal(err)
	}
	raced := false
	store.beforeUpdate = func(m *memStore) {
		if !raced {
			raced = true
			m.products[0].PriceCents = 1111
		}
	}
	got, err := svc.ChangePrice(ctx, p.ID, 999)
	if err != nil || got.PriceCents != 999 {
		t.Fatalf("ChangePrice = %d, %v; want 999", got.PriceCents, err)
	}
	if len(store.events) != 2 {
		t.Fatalf("events = %d, want ProductCreated and one ProductPriceChanged", len(store.events))
	}
	if payload := decode[catalog.ProductPriceChanged](t, store.events[1]); payload.OldPriceCents != 1111 {
		t.Errorf("old_price_cents = %d, want 1111, the price the change replaced", payload.OldPriceCents)
	}

	// A price that never holds still gives up, with a conflict.
	store.beforeUpdate = func(m *memStore) { m.products[0].PriceCents++ }
	if _, err := svc.ChangePrice(ctx, p.ID, 500); !fail.Is(err, fail.Conflict) {
		t.Errorf("ChangePrice against a price that keeps moving = %v, want fail.Conflict", err)
	}
	if len(store.events) != 2 {
		t.Errorf("events after the conflict = %d, want still 2", len(store.events))
	}
}
