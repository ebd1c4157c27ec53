package orderdb

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// historical is an order as the monolith's import stores it: ended, of
// origin legacy, with no saga.
func historical(user string, status orders.Status) orders.Order {
	placed := time.Date(2019, 5, 4, 10, 30, 0, 123456789, time.UTC)
	return orders.Order{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: user, Status: status,
		Items:      []orders.Item{{ProductID: "p1", Quantity: 2, PriceCents: 500}, {ProductID: "p2", Quantity: 1, PriceCents: 250}},
		TotalCents: 1250, Currency: "USD", Saga: orders.SagaNone, Origin: orders.OriginLegacy,
		Address:   orders.Address{Name: "Ada", Line1: "1 Main", City: "X", PostalCode: "1", Country: "GB"},
		CreatedAt: placed, UpdatedAt: placed,
	}
}

// importedView is the OrderImported payload of a historical order.
func importedView(o orders.Order) orders.OrderImported {
	return orders.OrderImported{
		OrderID: o.ID, UserID: o.UserID, Status: o.Status, Saga: o.Saga, Origin: o.Origin, Items: o.Items,
		TotalCents: o.TotalCents, Currency: o.Currency, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

func batchOf(t *testing.T, list ...orders.Order) []orders.ImportedOrder {
	t.Helper()
	var out []orders.ImportedOrder
	for _, o := range list {
		e, err := event.New("orders", orders.TopicOrderImported, "OrderImported", 1, o.ID, importedView(o))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, orders.ImportedOrder{Order: o, Event: e, View: importedView(o)})
	}
	return out
}

// listedIDs is the ids of every view of user's orders of origins, newest
// first, read a page of limit at a time; it fails the test if a page is
// not full before the last.
func listedIDs(t *testing.T, s *Store, user string, origins orders.Origins, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for range 100 {
		p, err := s.ViewsByUser(context.Background(), user, origins, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Orders {
			ids = append(ids, o.ID)
		}
		if p.Next == "" {
			return ids
		}
		if len(p.Orders) != limit {
			t.Fatalf("a page of %d views before the last, want %d", len(p.Orders), limit)
		}
		after = p.Next
	}
	t.Fatal("the listing never ended")
	return nil
}

// topics lists the topics of the events in the outbox, oldest first.
func topics(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	var out []string
	for _, e := range logged(t, db) {
		out = append(out, e.Topic)
	}
	return out
}

// TestImportStoresOrdersAndEventsOnceAndReportsTakenIDs: imported orders
// are stored with their events, no saga; a repeat stores nothing and names
// what was there; a failed unit leaves nothing.
func TestImportStoresOrdersAndEventsOnceAndReportsTakenIDs(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, db := open(t, d)
		ctx := context.Background()
		a, b := historical("u1", orders.Completed), historical("u1", orders.Cancelled)
		taken, err := s.Import(ctx, batchOf(t, a, b))
		if err != nil || len(taken) != 0 {
			t.Fatalf("Import = %v, %v; want both stored", taken, err)
		}
		got, err := s.Order(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Origin != orders.OriginLegacy || got.Saga != orders.SagaNone || got.Status != orders.Completed ||
			!slices.Equal(got.Items, a.Items) || got.Address != a.Address || !got.CreatedAt.Equal(a.CreatedAt) || !got.UpdatedAt.Equal(a.UpdatedAt) {
			t.Errorf("read back %+v, want %+v", got, a)
		}
		if _, err := s.Saga(ctx, a.ID); !fail.Is(err, fail.NotFound) {
			t.Errorf("Saga(imported) = %v, want not found: an imported order runs no saga", err)
		}
		if left, _ := s.ClaimSagas(ctx, "runner", time.Now().Add(time.Hour), time.Minute, 10); len(left) != 0 {
			t.Errorf("the runner claimed %+v after an import", left)
		}
		if got, want := topics(t, db), []string{orders.TopicOrderImported, orders.TopicOrderImported}; !slices.Equal(got, want) {
			t.Fatalf("outbox topics = %v, want %v", got, want)
		}
		// In the read model at once, no delivery needed.
		if got, want := listedIDs(t, s, "u1", orders.AnyOrigin, 10), []string{b.ID, a.ID}; !slices.Equal(got, want) {
			t.Fatalf("views of u1 right after the import = %v, want %v", got, want)
		}

		// Again, with one changed and one new: the taken ones come back as stored.
		changed := b
		changed.TotalCents, changed.Items = 500, []orders.Item{{ProductID: "p1", Quantity: 1, PriceCents: 500}}
		c := historical("u2", orders.Completed)
		taken, err = s.Import(ctx, batchOf(t, a, changed, c))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range taken {
			ids = append(ids, o.ID)
		}
		if !slices.Equal(ids, []string{a.ID, b.ID}) || taken[1].TotalCents != b.TotalCents {
			t.Errorf("taken = %+v, want a and b as first stored", taken)
		}
		if n := len(topics(t, db)); n != 3 {
			t.Errorf("outbox holds %d events, want 3: one per order stored", n)
		}

		// A unit that fails after the import leaves neither orders nor events.
		e := historical("u3", orders.Completed)
		boom := errors.New("failed after the store's work")
		err = db.Atomic(ctx, func(ctx context.Context) error {
			if _, err := s.Import(ctx, batchOf(t, e)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Atomic = %v, want %v", err, boom)
		}
		if _, err := s.Order(ctx, e.ID); !fail.Is(err, fail.NotFound) {
			t.Errorf("Order after the rollback = %v, want not found", err)
		}
		if n := len(topics(t, db)); n != 3 {
			t.Errorf("outbox holds %d events after the rollback, want still 3", n)
		}
		if got := listedIDs(t, s, "u3", orders.AnyOrigin, 10); len(got) != 0 {
			t.Errorf("views of u3 after the rollback = %v, want none", got)
		}
		// The changed b was not stored, nor projected: its view is as first imported.
		if p, _ := s.ViewsByUser(ctx, "u1", orders.AnyOrigin, "", 10); len(p.Orders) != 2 || p.Orders[0].TotalCents != b.TotalCents {
			t.Errorf("views of u1 after a conflicting import = %+v, want b as first imported", p.Orders)
		}
	})
}

// TestConcurrentImportsOfOneOrderStoreItOnce races imports of one order:
// one stores it and its event, the others find it taken.
func TestConcurrentImportsOfOneOrderStoreItOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, db := open(t, d)
		o := historical("u1", orders.Completed)
		const racers = 8
		var (
			wg             sync.WaitGroup
			mu             sync.Mutex
			stored, refuse int
		)
		for range racers {
			wg.Go(func() {
				taken, err := s.Import(context.Background(), batchOf(t, o))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("Import: %v", err)
				case len(taken) == 0:
					stored++
				default:
					refuse++
				}
			})
		}
		wg.Wait()
		if stored != 1 || refuse != racers-1 {
			t.Errorf("stored %d times, found taken %d times; want 1 and %d", stored, refuse, racers-1)
		}
		if n := len(topics(t, db)); n != 1 {
			t.Errorf("outbox holds %d events, want 1", n)
		}
	})
}

// TestReadModelKeepsImportedOrdersAndTheLatestNames projects an imported
// order and names given out of order, on every dialect.
func TestReadModelKeepsImportedOrdersAndTheLatestNames(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, _ := open(t, d)
		ctx := context.Background()
		o := historical("u1", orders.Cancelled)
		im := orders.OrderImported{OrderID: o.ID, UserID: o.UserID, Status: o.Status, Saga: o.Saga, Origin: o.Origin,
			Items: o.Items, TotalCents: o.TotalCents, Currency: o.Currency, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
		for range 2 { // a redelivery changes nothing
			if err := s.ApplyImported(ctx, im); err != nil {
				t.Fatal(err)
			}
		}
		created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		renamed, renamedAgain := created.Add(time.Hour), created.Add(2*time.Hour)
		for _, name := range []struct {
			name string
			at   time.Time
		}{
			{"Ada King", renamedAgain}, // the newest arrives first
			{"Ada", created},           // UserCreated, late
			{"Ada Byron", renamed},     // an older rename, late
		} {
			if err := s.ApplyCustomer(ctx, "u1", name.name, name.at); err != nil {
				t.Fatal(err)
			}
		}
		p, err := s.ViewsByUser(ctx, "u1", orders.AnyOrigin, "", 10)
		if err != nil || len(p.Orders) != 1 {
			t.Fatalf("views = %+v, %v; want the imported order", p.Orders, err)
		}
		v := p.Orders[0]
		if v.ID != o.ID || v.Status != orders.Cancelled || v.Origin != orders.OriginLegacy || v.Saga != orders.SagaNone ||
			v.TotalCents != 1250 || !slices.Equal(v.Items, o.Items) || !v.CreatedAt.Equal(o.CreatedAt) || v.CustomerName != "Ada King" {
			t.Errorf("view = %+v, want the imported order with the newest name Ada King", v)
		}
		if err := s.ApplyCustomer(ctx, "u1", "Ada Lovelace", renamedAgain.Add(time.Nanosecond)); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.ViewsByUser(ctx, "u1", orders.AnyOrigin, "", 10); len(p.Orders) != 1 || p.Orders[0].CustomerName != "Ada Lovelace" {
			t.Errorf("views after a newer rename = %+v, want customer Ada Lovelace", p.Orders)
		}
	})
}
