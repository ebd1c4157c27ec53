package orders_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// legacyOrder is an order as the facade sends it from the monolith: ended,
// with untrimmed address fields and a time not in UTC.
func legacyOrder(user string, status orders.Status) orders.Order {
	return orders.Order{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: user, Status: status,
		Items:      []orders.Item{{ProductID: "p1", Quantity: 2, PriceCents: 1250}, {ProductID: "p2", Quantity: 1, PriceCents: 499}},
		TotalCents: 2999, Currency: "USD",
		Address:   orders.Address{Name: " Ada Lovelace ", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"},
		CreatedAt: time.Date(2019, 5, 4, 12, 30, 0, 0, time.FixedZone("CEST", 2*3600)),
	}
}

// countingMeter counts the orders the service tells it were placed or ended.
type countingMeter struct{ placed, ended atomic.Int32 }

func (m *countingMeter) Placed(context.Context, string) { m.placed.Add(1) }
func (m *countingMeter) Ended(context.Context, string, orders.Status, time.Duration) {
	m.ended.Add(1)
}

// outboxTopics lists the topics of everything orders has to publish.
func (s shop) outboxTopics(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range sqldbtest.Outbox(t, s.db) {
		out = append(out, e.Topic)
	}
	return out
}

func TestImportStoresHistoryThatNoSagaActsOn(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	var meter countingMeter
	s.svc.Measure(&meter)
	done, cancelled, kept := legacyOrder("u1", orders.Completed), legacyOrder("u1", orders.Cancelled), legacyOrder("u3", orders.Completed)

	res, err := s.svc.Import(ctx, []orders.Order{done, cancelled, kept})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if res.Imported != 3 || res.Skipped != 0 || len(res.Conflicts) != 0 {
		t.Errorf("import = %+v, want 3 imported", res)
	}
	got, err := s.svc.Get(ctx, "u1", false, done.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := done.CreatedAt.UTC()
	if got.Origin != orders.OriginLegacy || got.Saga != orders.SagaNone || got.Status != orders.Completed ||
		got.Address.Name != "Ada Lovelace" || !got.CreatedAt.Equal(want) || !got.UpdatedAt.Equal(want) || got.CancelReason != "" {
		t.Errorf("stored %+v, want it ended, of origin legacy, saga none, trimmed, last updated when placed", got)
	}

	// Only OrderImported, for orders' own read model: nothing that would
	// make payments, inventory or shipping act.
	if got, want := s.outboxTopics(t), []string{orders.TopicOrderImported, orders.TopicOrderImported, orders.TopicOrderImported}; !slices.Equal(got, want) {
		t.Fatalf("outbox topics = %v, want %v", got, want)
	}
	var payload orders.OrderImported
	if err := sqldbtest.Outbox(t, s.db)[0].Decode(&payload); err != nil {
		t.Fatal(err)
	}
	if payload.OrderID != done.ID || payload.Status != orders.Completed || payload.Origin != orders.OriginLegacy ||
		payload.Saga != orders.SagaNone || payload.TotalCents != 2999 || len(payload.Items) != 2 || !payload.CreatedAt.Equal(want) {
		t.Errorf("OrderImported payload = %+v, want the whole order", payload)
	}
	if _, err := s.store.Saga(ctx, done.ID); !fail.Is(err, fail.NotFound) {
		t.Errorf("Saga = %v, want none for an imported order", err)
	}
	// A participant's event about it, by mistake, changes nothing.
	s.observe(t, cancelled.ID, orders.PaymentProcessed, "")
	if st, _ := s.ended(t, cancelled.ID); st != orders.Cancelled {
		t.Errorf("status after a stray PaymentProcessed = %s, want CANCELLED", st)
	}
	if meter.placed.Load() != 0 || meter.ended.Load() != 0 {
		t.Errorf("metered %d placed and %d ended, want none: an import is no checkout", meter.placed.Load(), meter.ended.Load())
	}
	if mine, err := s.svc.Get(ctx, "u2", false, done.ID); !fail.Is(err, fail.NotFound) {
		t.Errorf("another customer's Get = %+v, %v; want not found", mine, err)
	}

	// The same import again: skipped, the same orders, nothing new.
	again, err := s.svc.Import(ctx, []orders.Order{done, cancelled, kept})
	if err != nil || again.Imported != 0 || again.Skipped != 3 || len(again.Conflicts) != 0 {
		t.Errorf("repeated import = %+v, %v; want 3 skipped", again, err)
	}

	// Other content under a stored id is a conflict, and is not applied.
	changed := done
	changed.Status = orders.Cancelled
	moved := cancelled
	moved.Address.City = "Paris"
	placedHere := s.order(t, orders.ModeParallel) // an order of this shop's checkout
	placedHere.Status, placedHere.Address.Name = orders.Completed, "A"
	fresh := legacyOrder("u2", orders.Completed)
	mixed, err := s.svc.Import(ctx, []orders.Order{changed, moved, placedHere, fresh, kept})
	if err != nil {
		t.Fatal(err)
	}
	if mixed.Imported != 1 || mixed.Skipped != 1 || !slices.Equal(mixed.Conflicts, []string{changed.ID, moved.ID, placedHere.ID}) {
		t.Errorf("mixed import = %+v, want 1 imported, 1 skipped, conflicts %v", mixed, []string{changed.ID, moved.ID, placedHere.ID})
	}
	if st, _ := s.ended(t, done.ID); st != orders.Completed {
		t.Errorf("a conflicting import changed the stored order to %s", st)
	}
	if n := len(s.outboxTopics(t)); n != 4 {
		t.Errorf("outbox holds %d events, want 4: one per order imported", n)
	}
}

// TestImportRefusesABadOrderAndStoresNothing: one bad order refuses the
// whole import, the good orders before it included.
func TestImportRefusesABadOrderAndStoresNothing(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	good := legacyOrder("u1", orders.Completed)
	tests := []struct {
		name   string
		change func(o *orders.Order)
		want   string
	}{
		{"pending", func(o *orders.Order) { o.Status = orders.Pending }, "orders[1].status must be COMPLETED or CANCELLED"},
		{"the monolith's own status", func(o *orders.Order) { o.Status = "CONFIRMED" }, "orders[1].status"},
		{"no id", func(o *orders.Order) { o.ID = "" }, "orders[1].id must be 1 to 64 characters"},
		{"an id too long", func(o *orders.Order) { o.ID = strings.Repeat("x", 65) }, "orders[1].id"},
		{"no user", func(o *orders.Order) { o.UserID = "" }, "orders[1].user_id"},
		{"no items", func(o *orders.Order) { o.Items, o.TotalCents = nil, 0 }, "orders[1].items must be 1 to 50 lines"},
		{"51 items", func(o *orders.Order) {
			o.Items, o.TotalCents = nil, 51
			for i := range 51 {
				o.Items = append(o.Items, orders.Item{ProductID: fmt.Sprint("p", i), Quantity: 1, PriceCents: 1})
			}
		}, "orders[1].items must be 1 to 50 lines"},
		{"zero quantity", func(o *orders.Order) { o.Items[0].Quantity, o.TotalCents = 0, 499 }, "orders[1].items[0].quantity must be 1 to 1000"},
		{"a negative price", func(o *orders.Order) { o.Items[1].PriceCents, o.TotalCents = -1, 2499 }, "orders[1].items[1].price_cents"},
		{"a total that overflows", func(o *orders.Order) {
			o.Items = []orders.Item{{ProductID: "p1", Quantity: 1000, PriceCents: 1 << 60}}
		}, "orders[1].items[0].price_cents"},
		{"an empty product", func(o *orders.Order) { o.Items[0].ProductID = "" }, "orders[1].items[0].product_id"},
		{"a total that is not the sum", func(o *orders.Order) { o.TotalCents = 3000 }, "orders[1].total_cents is 3000, but the items add up to 2999"},
		{"a lower-case currency", func(o *orders.Order) { o.Currency = "usd" }, "orders[1].currency"},
		{"no currency", func(o *orders.Order) { o.Currency = "" }, "orders[1].currency"},
		{"no time", func(o *orders.Order) { o.CreatedAt = time.Time{} }, "orders[1].created_at is required"},
		{"placed tomorrow", func(o *orders.Order) { o.CreatedAt = time.Now().Add(24 * time.Hour) }, "orders[1].created_at must not be in the future"},
		{"no city", func(o *orders.Order) { o.Address.City = " " }, "orders[1].shipping_address.city must be 1 to 200 printable characters"},
		{"a control character", func(o *orders.Order) { o.Address.Name = "Ada\x00" }, "orders[1].shipping_address.name"},
		{"a three-letter country", func(o *orders.Order) { o.Address.Country = "GBR" }, "orders[1].shipping_address.country"},
		{"the good order twice", func(o *orders.Order) { *o = good }, `orders[1].id "` + good.ID + `" appears more than once`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := legacyOrder("u1", orders.Completed)
			tc.change(&bad)
			_, err := s.svc.Import(ctx, []orders.Order{good, bad})
			if !fail.Is(err, fail.Invalid) || !strings.Contains(fail.MessageOf(err), tc.want) {
				t.Fatalf("Import = %v, want fail.Invalid saying %q", err, tc.want)
			}
		})
	}
	tooMany := make([]orders.Order, orders.MaxImport+1)
	for i := range tooMany {
		tooMany[i] = legacyOrder("u1", orders.Completed)
	}
	if _, err := s.svc.Import(ctx, tooMany); !fail.Is(err, fail.Invalid) || !strings.Contains(err.Error(), "at most 1000 orders") {
		t.Errorf("Import of %d orders = %v, want fail.Invalid", len(tooMany), err)
	}
	if _, err := s.store.Order(ctx, good.ID); !fail.Is(err, fail.NotFound) {
		t.Errorf("the good order was stored by a refused import: %v", err)
	}
	if got := s.outboxTopics(t); len(got) != 0 {
		t.Errorf("refused imports left events %v", got)
	}
	// Exactly the maximum goes through, in one transaction.
	res, err := s.svc.Import(ctx, tooMany[:orders.MaxImport])
	if err != nil || res.Imported != orders.MaxImport {
		t.Errorf("Import of %d orders = %+v, %v; want all imported", orders.MaxImport, res, err)
	}
	if empty, err := s.svc.Import(ctx, nil); err != nil || empty.Imported != 0 || empty.Conflicts == nil {
		t.Errorf("empty import = %+v, %v; want nothing, with an empty conflicts list", empty, err)
	}
}
