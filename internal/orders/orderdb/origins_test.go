package orderdb

import (
	"context"
	"slices"
	"testing"

	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// TestListingsFilterTheOriginInTheQuery interleaves orders placed here with
// imported ones, and pages through both listings a few at a time on every
// dialect: PlacedHere leaves the imported ones out and AnyOrigin holds
// them, and every page before the last is full either way.
func TestListingsFilterTheOriginInTheQuery(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, _ := open(t, d)
		ctx := context.Background()
		var placed, all []string // oldest first; ids are time-ordered
		for i := range 7 {
			if i%3 == 1 { // every third order placed here, the rest imported
				o := newOrder("u1", orders.ModeParallel)
				if err := place(t, s, o, nil); err != nil {
					t.Fatal(err)
				}
				err := s.ApplyCreated(ctx, orders.OrderCreated{OrderID: o.ID, UserID: o.UserID, Saga: o.Saga, Items: o.Items,
					TotalCents: o.TotalCents, Currency: o.Currency, CreatedAt: o.CreatedAt})
				if err != nil {
					t.Fatal(err)
				}
				placed, all = append(placed, o.ID), append(all, o.ID)
				continue
			}
			o := historical("u1", orders.Completed)
			if _, err := s.Import(ctx, batchOf(t, o)); err != nil {
				t.Fatal(err)
			}
			all = append(all, o.ID)
		}
		other := historical("u2", orders.Cancelled) // another user's: in no listing of u1's
		if _, err := s.Import(ctx, batchOf(t, other)); err != nil {
			t.Fatal(err)
		}

		newestFirst := func(ids []string) []string { r := slices.Clone(ids); slices.Reverse(r); return r }
		for _, limit := range []int{1, 2, 3, 10} {
			if got, want := listedIDs(t, s, "u1", orders.PlacedHere, limit), newestFirst(placed); !slices.Equal(got, want) {
				t.Errorf("views placed here, %d a page = %v, want %v", limit, got, want)
			}
			if got, want := listedIDs(t, s, "u1", orders.AnyOrigin, limit), newestFirst(all); !slices.Equal(got, want) {
				t.Errorf("views of any origin, %d a page = %v, want %v", limit, got, want)
			}
			if got, want := listedAll(t, s, orders.PlacedHere, limit), placed; !slices.Equal(got, want) {
				t.Errorf("orders placed here, %d a page = %v, want %v", limit, got, want)
			}
			if got, want := listedAll(t, s, orders.AnyOrigin, limit), append(slices.Clone(all), other.ID); !slices.Equal(got, want) {
				t.Errorf("orders of any origin, %d a page = %v, want %v", limit, got, want)
			}
		}
		p, err := s.ViewsByUser(ctx, "u1", orders.AnyOrigin, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Orders {
			if imported := !slices.Contains(placed, o.ID); o.Imported() != imported {
				t.Errorf("view %s: Imported() = %v, want %v (origin %q)", o.ID, o.Imported(), imported, o.Origin)
			}
		}
	})
}

// listedAll is the ids of every order of origins, oldest first, read a page
// of limit at a time; it fails the test if a page is not full before the
// last.
func listedAll(t *testing.T, s *Store, origins orders.Origins, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for range 100 {
		p, err := s.ListAll(context.Background(), origins, after, limit)
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
			t.Fatalf("a page of %d orders before the last, want %d", len(p.Orders), limit)
		}
		after = p.Next
	}
	t.Fatal("the listing never ended")
	return nil
}
