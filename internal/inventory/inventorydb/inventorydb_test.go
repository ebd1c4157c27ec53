package inventorydb_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// openDB opens a fresh inventory database of dialect d, with the messaging
// tables.
func openDB(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessagingOn(t, d, "inventory", inventorydb.Migrations)
}

// fixture is a store with products p1 (10 available) and p2 (5 available).
type fixture struct {
	t     *testing.T
	store *inventorydb.Store
	ctx   context.Context
	at    time.Time
}

func newFixture(t *testing.T, d sqldb.Dialect) *fixture {
	t.Helper()
	f := &fixture{t: t, store: inventorydb.New(openDB(t, d)), ctx: context.Background(), at: time.Now().UTC()}
	f.set("p1", 10)
	f.set("p2", 5)
	return f
}

func (f *fixture) set(id string, n int64) inventory.Stock {
	f.t.Helper()
	st, err := f.store.SetAvailable(f.ctx, id, n, f.at)
	if err != nil {
		f.t.Fatalf("SetAvailable(%s, %d): %v", id, n, err)
	}
	return st
}

func (f *fixture) reserve(orderID string, items ...inventory.Item) (inventory.Reservation, bool, error) {
	return f.store.Reserve(f.ctx, inventory.Reservation{
		OrderID: orderID, Status: inventory.Reserved, Items: items, CreatedAt: f.at, UpdatedAt: f.at,
	})
}

// wantStock fails unless product id's stock is exactly want (with
// supplied computed) and every stock in the store is balanced.
func (f *fixture) wantStock(id string, available, reserved, sold int64) {
	f.t.Helper()
	got, err := f.store.Stock(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Stock(%s): %v", id, err)
	}
	want := inventory.Stock{ProductID: id, Available: available, Reserved: reserved, Sold: sold, Supplied: got.Supplied}
	if got != want {
		f.t.Errorf("stock of %s: got %+v, want available %d reserved %d sold %d", id, got, available, reserved, sold)
	}
	f.wantBalanced()
}

func (f *fixture) wantBalanced() {
	f.t.Helper()
	all, err := f.store.ListStock(f.ctx, "", 1000)
	if err != nil {
		f.t.Fatalf("ListStock: %v", err)
	}
	for _, st := range all {
		if !st.Balanced() {
			f.t.Errorf("invariant broken: %+v", st)
		}
	}
}

func (f *fixture) wantStatus(orderID string, want inventory.Status) {
	f.t.Helper()
	r, err := f.store.Reservation(f.ctx, orderID)
	if err != nil {
		f.t.Fatalf("Reservation(%s): %v", orderID, err)
	}
	if r.Status != want {
		f.t.Errorf("status of %s: got %s, want %s", orderID, r.Status, want)
	}
}

func wantKind(t *testing.T, op string, err error, kind fail.Kind, message string) {
	t.Helper()
	if !fail.Is(err, kind) {
		t.Fatalf("%s: got %v, want kind %v", op, err, kind)
	}
	if message != "" && fail.MessageOf(err) != message {
		t.Errorf("%s: got message %q, want %q", op, fail.MessageOf(err), message)
	}
}

func TestMigrations(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		if err := db.MigrateDown(ctx, inventorydb.Migrations); err != nil {
			t.Fatalf("migrating down: %v", err)
		}
		for _, table := range []string{"stock", "reservations", "reservation_items", "order_intents"} {
			if _, err := db.ExecContext(ctx, `SELECT 1 FROM `+table); err == nil {
				t.Errorf("table %s still exists after migrating down", table)
			}
		}
		if err := db.Migrate(ctx, inventorydb.Migrations); err != nil {
			t.Fatalf("migrating up again: %v", err)
		}
		if _, err := inventorydb.New(db).SetAvailable(ctx, "p1", 1, time.Now()); err != nil {
			t.Fatalf("SetAvailable after migrating up again: %v", err)
		}
		if _, err := inventorydb.New(db).MergeIntent(ctx, inventory.Intent{OrderID: "o1", Saga: inventory.Choreography, Paid: true}, time.Now()); err != nil {
			t.Fatalf("MergeIntent after migrating up again: %v", err)
		}
	})
}

// TestSchemaRefusesUnbalancedStock shows the database itself holds the
// invariant, whatever a future bug in the store writes.
func TestSchemaRefusesUnbalancedStock(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		if _, err := inventorydb.New(db).SetAvailable(ctx, "p1", 10, time.Now()); err != nil {
			t.Fatalf("SetAvailable: %v", err)
		}
		for _, update := range []string{
			`UPDATE stock SET available = available - 1`,
			`UPDATE stock SET available = available - 11, reserved = reserved + 11`,
			`UPDATE stock SET supplied = supplied + 1`,
		} {
			if _, err := db.ExecContext(ctx, update); err == nil {
				t.Errorf("%s: got no error, want a check violation", update)
			}
		}
	})
}

func TestSetAvailable(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		if _, err := f.store.Stock(f.ctx, "p9"); !fail.Is(err, fail.NotFound) {
			t.Errorf("Stock(p9) before any restock: got %v, want not found", err)
		}
		steps := []struct {
			name                  string
			available             int64
			wantReserved, wantSum int64 // wantSum is supplied
		}{
			{"created", 7, 0, 7},
			{"raised", 12, 0, 12},
			{"lowered", 4, 0, 4},
			{"emptied", 0, 0, 0},
		}
		for _, s := range steps {
			st := f.set("p9", s.available)
			want := inventory.Stock{ProductID: "p9", Available: s.available, Supplied: s.wantSum}
			if st != want {
				t.Errorf("%s: SetAvailable answered %+v, want %+v", s.name, st, want)
			}
			f.wantStock("p9", s.available, 0, 0)
		}

		// With units reserved and sold, setting available moves supplied by the
		// difference and leaves the others alone.
		if _, _, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 3}); err != nil {
			t.Fatalf("reserve: %v", err)
		}
		if _, _, err := f.reserve("o2", inventory.Item{ProductID: "p1", Quantity: 2}); err != nil {
			t.Fatalf("reserve: %v", err)
		}
		if _, err := f.store.Commit(f.ctx, "o2", f.at); err != nil {
			t.Fatalf("commit: %v", err)
		}
		st := f.set("p1", 20) // from 5 available: +15 supplied
		if want := (inventory.Stock{ProductID: "p1", Available: 20, Reserved: 3, Sold: 2, Supplied: 25}); st != want {
			t.Errorf("restock with reserved and sold: got %+v, want %+v", st, want)
		}
		f.wantStock("p1", 20, 3, 2)
	})
}

func TestReserve(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		r, created, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 4}, inventory.Item{ProductID: "p2", Quantity: 5})
		if err != nil || !created {
			t.Fatalf("Reserve: got %v, created %v; want success, created", err, created)
		}
		wantItems := []inventory.Item{{ProductID: "p1", Quantity: 4}, {ProductID: "p2", Quantity: 5}}
		if r.Status != inventory.Reserved || !reflect.DeepEqual(r.Items, wantItems) {
			t.Errorf("Reserve: got %+v, want RESERVED with %v", r, wantItems)
		}
		f.wantStock("p1", 6, 4, 0)
		f.wantStock("p2", 0, 5, 0)

		// A repeat, even with other items, answers the recorded reservation and moves nothing.
		again, created, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 1})
		if err != nil || created {
			t.Fatalf("repeated Reserve: got %v, created %v; want success, not created", err, created)
		}
		if again.Status != inventory.Reserved || !reflect.DeepEqual(again.Items, wantItems) || !again.CreatedAt.Equal(f.at) {
			t.Errorf("repeated Reserve: got %+v, want the first reservation", again)
		}
		f.wantStock("p1", 6, 4, 0)
		f.wantStock("p2", 0, 5, 0)
	})
}

func TestReserveRejects(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		tests := []struct {
			name   string
			items  []inventory.Item
			reason string
		}{
			{"short", []inventory.Item{{ProductID: "p2", Quantity: 6}}, "insufficient stock for product p2"},
			{"unknown product", []inventory.Item{{ProductID: "p0", Quantity: 1}}, "insufficient stock for product p0"},
			{"one of two short, all or nothing", []inventory.Item{{ProductID: "p1", Quantity: 10}, {ProductID: "p2", Quantity: 6}}, "insufficient stock for product p2"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := newFixture(t, d)
				_, _, err := f.reserve("o1", tt.items...)
				wantKind(t, "Reserve", err, fail.Conflict, tt.reason)
				f.wantStock("p1", 10, 0, 0)
				f.wantStock("p2", 5, 0, 0)
				f.wantStatus("o1", inventory.Rejected)
				r, _ := f.store.Reservation(f.ctx, "o1")
				if !reflect.DeepEqual(r.Items, tt.items) || r.Reason != tt.reason {
					t.Errorf("recorded rejection: got %+v, want items %v and reason %q", r, tt.items, tt.reason)
				}

				// Stock arriving later does not turn a rejection into a reservation:
				// the repeat answers the recorded refusal.
				f.set("p0", 100)
				f.set("p2", 100)
				_, _, err = f.reserve("o1", tt.items...)
				wantKind(t, "repeated Reserve", err, fail.Conflict, tt.reason)
				f.wantStock("p1", 10, 0, 0)
				f.wantStock("p2", 100, 0, 0)
				f.wantStatus("o1", inventory.Rejected)
			})
		}
	})
}

func TestCommit(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		if _, _, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 4}); err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		later := f.at.Add(time.Second)
		r, err := f.store.Commit(f.ctx, "o1", later)
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if r.Status != inventory.Committed || !r.UpdatedAt.Equal(later) || len(r.Items) != 1 {
			t.Errorf("Commit: got %+v, want COMMITTED at %v with its item", r, later)
		}
		f.wantStock("p1", 6, 0, 4)

		again, err := f.store.Commit(f.ctx, "o1", later.Add(time.Second))
		if err != nil || again.Status != inventory.Committed || !again.UpdatedAt.Equal(later) {
			t.Errorf("repeated Commit: got %+v, %v; want the recorded COMMITTED", again, err)
		}
		f.wantStock("p1", 6, 0, 4)

		// A committed reservation is also answered again by a repeated reserve.
		if _, created, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 4}); err != nil || created {
			t.Errorf("Reserve after Commit: got %v, created %v; want the recorded reservation", err, created)
		}
		_, err = f.store.Release(f.ctx, "o1", later)
		wantKind(t, "Release after Commit", err, fail.Conflict, "reservation was committed")
		f.wantStock("p1", 6, 0, 4)
		f.wantStatus("o1", inventory.Committed)
	})
}

func TestCommitRefusals(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		_, err := f.store.Commit(f.ctx, "nobody", f.at)
		wantKind(t, "Commit of an unknown order", err, fail.NotFound, "")
		if _, err := f.store.Reservation(f.ctx, "nobody"); !fail.Is(err, fail.NotFound) {
			t.Errorf("Commit of an unknown order recorded something: %v", err)
		}

		if _, _, err := f.reserve("rejected", inventory.Item{ProductID: "p2", Quantity: 99}); !fail.Is(err, fail.Conflict) {
			t.Fatalf("Reserve: got %v, want conflict", err)
		}
		_, err = f.store.Commit(f.ctx, "rejected", f.at)
		wantKind(t, "Commit of a rejected reservation", err, fail.Conflict, "")
		f.wantStatus("rejected", inventory.Rejected)

		if _, _, err := f.reserve("released", inventory.Item{ProductID: "p1", Quantity: 2}); err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		if _, err := f.store.Release(f.ctx, "released", f.at); err != nil {
			t.Fatalf("Release: %v", err)
		}
		_, err = f.store.Commit(f.ctx, "released", f.at)
		wantKind(t, "Commit of a released reservation", err, fail.Conflict, "reservation was released")
		f.wantStatus("released", inventory.Released)
		f.wantStock("p1", 10, 0, 0)
		f.wantStock("p2", 5, 0, 0)
	})
}

func TestRelease(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		if _, _, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 4}, inventory.Item{ProductID: "p2", Quantity: 1}); err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		f.wantStock("p1", 6, 4, 0)
		r, err := f.store.Release(f.ctx, "o1", f.at)
		if err != nil {
			t.Fatalf("Release: %v", err)
		}
		if r.Status != inventory.Released || len(r.Items) != 2 {
			t.Errorf("Release: got %+v, want RELEASED with its two items", r)
		}
		f.wantStock("p1", 10, 0, 0)
		f.wantStock("p2", 5, 0, 0)

		again, err := f.store.Release(f.ctx, "o1", f.at)
		if err != nil || again.Status != inventory.Released {
			t.Errorf("repeated Release: got %+v, %v; want the recorded RELEASED", again, err)
		}
		f.wantStock("p1", 10, 0, 0)

		_, _, err = f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 4})
		wantKind(t, "Reserve after Release", err, fail.Conflict, "reservation was released")
		f.wantStock("p1", 10, 0, 0)
	})
}

func TestReleaseOfRejectedChangesNothing(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		if _, _, err := f.reserve("o1", inventory.Item{ProductID: "p2", Quantity: 6}); !fail.Is(err, fail.Conflict) {
			t.Fatalf("Reserve: got %v, want conflict", err)
		}
		for i := range 2 {
			r, err := f.store.Release(f.ctx, "o1", f.at)
			if err != nil || r.Status != inventory.Rejected {
				t.Errorf("Release %d of a rejected reservation: got %+v, %v; want it answered as REJECTED", i+1, r, err)
			}
		}
		f.wantStock("p2", 5, 0, 0)
	})
}

// TestReleaseBeforeReserve is the saga's crash case: the compensation
// arrives before the reserve it compensates. The tombstone makes the late
// reserve fail instead of holding stock for a cancelled order.
func TestReleaseBeforeReserve(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		r, err := f.store.Release(f.ctx, "o1", f.at)
		if err != nil {
			t.Fatalf("Release of an unknown order: %v", err)
		}
		if r.Status != inventory.Released || r.OrderID != "o1" || len(r.Items) != 0 {
			t.Errorf("tombstone: got %+v, want RELEASED for o1 with no items", r)
		}
		f.wantStatus("o1", inventory.Released)
		if again, err := f.store.Release(f.ctx, "o1", f.at); err != nil || again.Status != inventory.Released {
			t.Errorf("repeated Release: got %+v, %v; want RELEASED", again, err)
		}
		_, _, err = f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 1})
		wantKind(t, "late Reserve", err, fail.Conflict, "reservation was released")
		f.wantStock("p1", 10, 0, 0)
		_, err = f.store.Commit(f.ctx, "o1", f.at)
		wantKind(t, "Commit after the tombstone", err, fail.Conflict, "")
	})
}

func TestListReservations(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		if _, _, err := f.reserve("o1", inventory.Item{ProductID: "p1", Quantity: 1}, inventory.Item{ProductID: "p2", Quantity: 2}); err != nil {
			t.Fatalf("Reserve o1: %v", err)
		}
		if _, err := f.store.Release(f.ctx, "o2", f.at); err != nil {
			t.Fatalf("Release o2: %v", err)
		}
		if _, _, err := f.reserve("o3", inventory.Item{ProductID: "p2", Quantity: 99}); !fail.Is(err, fail.Conflict) {
			t.Fatalf("Reserve o3: got %v, want conflict", err)
		}
		all, err := f.store.ListReservations(f.ctx, "", 10)
		if err != nil {
			t.Fatalf("ListReservations: %v", err)
		}
		want := []struct {
			id     string
			status inventory.Status
			items  int
		}{{"o1", inventory.Reserved, 2}, {"o2", inventory.Released, 0}, {"o3", inventory.Rejected, 1}}
		if len(all) != len(want) {
			t.Fatalf("ListReservations: got %d, want %d: %+v", len(all), len(want), all)
		}
		for i, w := range want {
			if all[i].OrderID != w.id || all[i].Status != w.status || len(all[i].Items) != w.items || all[i].Items == nil {
				t.Errorf("reservation %d: got %+v, want %s %s with %d items (never nil)", i, all[i], w.id, w.status, w.items)
			}
		}
		// A page is cut by reservations, never through one's items.
		page, err := f.store.ListReservations(f.ctx, "", 1)
		if err != nil {
			t.Fatalf("ListReservations: %v", err)
		}
		if len(page) != 1 || len(page[0].Items) != 2 {
			t.Errorf("page of one: got %+v, want o1 with both items", page)
		}
		rest, err := f.store.ListReservations(f.ctx, "o1", 10)
		if err != nil {
			t.Fatalf("ListReservations after o1: %v", err)
		}
		if len(rest) != 2 || rest[0].OrderID != "o2" || rest[1].OrderID != "o3" {
			t.Errorf("after o1: got %+v, want o2 and o3", rest)
		}
	})
}

func TestListStock(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		f.set("p3", 1)
		tests := []struct {
			after string
			limit int
			want  []string
		}{
			{"", 10, []string{"p1", "p2", "p3"}},
			{"", 2, []string{"p1", "p2"}},
			{"p2", 2, []string{"p3"}},
			{"p3", 2, nil},
		}
		for _, tt := range tests {
			got, err := f.store.ListStock(f.ctx, tt.after, tt.limit)
			if err != nil {
				t.Fatalf("ListStock: %v", err)
			}
			var ids []string
			for _, st := range got {
				ids = append(ids, st.ProductID)
			}
			if !reflect.DeepEqual(ids, tt.want) {
				t.Errorf("ListStock(%q, %d): got %v, want %v", tt.after, tt.limit, ids, tt.want)
			}
		}
	})
}

// TestConcurrentReservations races twenty orders for ten units: exactly ten
// must win, and no unit may be reserved twice or lost.
func TestConcurrentReservations(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d) // p1 has 10 available
		const orders = 20
		var (
			wg                 sync.WaitGroup
			mu                 sync.Mutex
			reserved, rejected int
			others             []error
		)
		for i := range orders {
			wg.Go(func() {
				_, _, err := f.reserve(fmt.Sprintf("o%02d", i), inventory.Item{ProductID: "p1", Quantity: 1})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					reserved++
				case fail.Is(err, fail.Conflict):
					rejected++
				default:
					others = append(others, err)
				}
			})
		}
		wg.Wait()
		if len(others) > 0 {
			t.Fatalf("unexpected errors: %v", others)
		}
		if reserved != 10 || rejected != 10 {
			t.Errorf("outcomes: got %d reserved and %d rejected, want 10 and 10", reserved, rejected)
		}
		f.wantStock("p1", 0, 10, 0)

		// The recorded statuses agree with what the callers were told.
		all, err := f.store.ListReservations(f.ctx, "", 100)
		if err != nil {
			t.Fatalf("ListReservations: %v", err)
		}
		count := map[inventory.Status]int{}
		for _, r := range all {
			count[r.Status]++
		}
		if count[inventory.Reserved] != 10 || count[inventory.Rejected] != 10 || len(all) != orders {
			t.Errorf("recorded: got %v over %d reservations, want 10 RESERVED and 10 REJECTED over %d", count, len(all), orders)
		}
	})
}
