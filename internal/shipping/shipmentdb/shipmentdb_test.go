package shipmentdb_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

var home = shipping.Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"}

// openDB opens a fresh shipping database of dialect d, with the messaging
// tables.
func openDB(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessagingOn(t, d, "shipping", shipmentdb.Migrations)
}

func shipment(order, user string) shipping.Shipment {
	now := time.Now().UTC()
	return shipping.Shipment{ID: uuid.Must(uuid.NewV7()).String(), OrderID: order, UserID: user,
		Status: shipping.StatusScheduled, Address: home, CreatedAt: now, UpdatedAt: now}
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		if err := db.MigrateDown(ctx, shipmentdb.Migrations); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
		if _, err := shipmentdb.New(db).ByOrder(ctx, "o"); err == nil || fail.Is(err, fail.NotFound) {
			t.Fatalf("ByOrder with no table = %v, want a storage error", err)
		}
		if _, err := db.ExecContext(ctx, `SELECT 1 FROM delivery_intents`); err == nil {
			t.Fatalf("table delivery_intents still exists after migrating down")
		}
		if err := db.Migrate(ctx, shipmentdb.Migrations); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		if _, err := shipmentdb.New(db).MergeIntent(ctx, shipping.Intent{OrderID: "o", Saga: shipping.Parallel, Paid: true}, time.Now()); err != nil {
			t.Fatalf("MergeIntent after migrating again: %v", err)
		}
		if err := db.Migrate(ctx, shipmentdb.Migrations); err != nil {
			t.Fatalf("Migrate when up to date: %v", err)
		}
		if err := shipmentdb.New(db).Create(ctx, shipment("o", "u")); err != nil {
			t.Fatalf("Create after migrating again: %v", err)
		}
	})
}

func TestCreateAndRead(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := shipmentdb.New(openDB(t, d))
		want := shipment("order-1", "user-1")
		if err := s.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.ByOrder(ctx, "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.UserID != want.UserID || got.Status != want.Status || got.Address != want.Address ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("ByOrder = %+v, want %+v", got, want)
		}
		if _, err := s.ByOrder(ctx, "order-2"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByOrder(unknown) = %v, want fail.NotFound", err)
		}
	})
}

func TestOneShipmentPerOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := shipmentdb.New(openDB(t, d))
		first := shipment("order-1", "user-1")
		if err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, shipment("order-1", "user-1")); !fail.Is(err, fail.Conflict) {
			t.Fatalf("second Create for the order = %v, want fail.Conflict", err)
		}
		if got, err := s.ByOrder(ctx, "order-1"); err != nil || got.ID != first.ID {
			t.Errorf("ByOrder = %s, %v; want the first shipment %s", got.ID, err, first.ID)
		}
	})
}

func TestSchemaKeepsTombstonesOnlyForCancelled(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := shipmentdb.New(openDB(t, d))
		tomb := shipment("order-1", "")
		tomb.Status, tomb.Address = shipping.StatusCancelled, shipping.Address{}
		if err := s.Create(ctx, tomb); err != nil {
			t.Fatalf("Create(tombstone) = %v, want nil", err)
		}
		got, err := s.ByOrder(ctx, "order-1")
		if err != nil || got.Status != shipping.StatusCancelled || got.Address != (shipping.Address{}) || got.UserID != "" {
			t.Errorf("tombstone read back as %+v, %v", got, err)
		}

		noAddress := shipment("order-2", "user-1")
		noAddress.Address = shipping.Address{}
		if err := s.Create(ctx, noAddress); err == nil {
			t.Error("Create(SCHEDULED without an address) = nil, want the schema to refuse it")
		}
		noUser := shipment("order-3", "")
		if err := s.Create(ctx, noUser); err == nil {
			t.Error("Create(SCHEDULED without a user) = nil, want the schema to refuse it")
		}
		unknown := shipment("order-4", "user-1")
		unknown.Status = "DELIVERED"
		if err := s.Create(ctx, unknown); err == nil {
			t.Error("Create(unknown status) = nil, want the schema to refuse it")
		}
	})
}

func TestSetStatusMovesOnlyFromTheExpectedStatus(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := shipmentdb.New(openDB(t, d))
		sh := shipment("order-1", "user-1")
		if err := s.Create(ctx, sh); err != nil {
			t.Fatal(err)
		}
		later := sh.UpdatedAt.Add(time.Minute)
		got, err := s.SetStatus(ctx, "order-1", shipping.StatusScheduled, shipping.StatusCancelled, later)
		if err != nil || got.Status != shipping.StatusCancelled || !got.UpdatedAt.Equal(later) {
			t.Fatalf("SetStatus(SCHEDULED->CANCELLED) = %s at %v, %v; want CANCELLED at %v", got.Status, got.UpdatedAt, err, later)
		}
		got, err = s.SetStatus(ctx, "order-1", shipping.StatusScheduled, shipping.StatusCancelled, later.Add(time.Hour))
		if err != nil || got.Status != shipping.StatusCancelled || !got.UpdatedAt.Equal(later) {
			t.Errorf("SetStatus from a stale status = %s at %v, %v; want it unchanged", got.Status, got.UpdatedAt, err)
		}
		if _, err := s.SetStatus(ctx, "nobody", shipping.StatusScheduled, shipping.StatusCancelled, later); !fail.Is(err, fail.NotFound) {
			t.Errorf("SetStatus(unknown) = %v, want fail.NotFound", err)
		}
	})
}

func TestList(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := shipmentdb.New(openDB(t, d))
		var all, mine []string
		for i, user := range []string{"a", "b", "a", "a", "b"} {
			sh := shipment("order-"+string(rune('0'+i)), user)
			if err := s.Create(ctx, sh); err != nil {
				t.Fatal(err)
			}
			all = append(all, sh.ID)
			if user == "a" {
				mine = append(mine, sh.ID)
			}
		}
		tests := []struct {
			name string
			q    shipping.ListQuery
			want []string
		}{
			{"everyone", shipping.ListQuery{Limit: 10}, all},
			{"limited", shipping.ListQuery{Limit: 2}, all[:2]},
			{"after", shipping.ListQuery{After: all[1], Limit: 10}, all[2:]},
			{"one user", shipping.ListQuery{UserID: "a", Limit: 10}, mine},
			{"one user after", shipping.ListQuery{UserID: "a", After: mine[0], Limit: 1}, mine[1:2]},
			{"nobody", shipping.ListQuery{UserID: "c", Limit: 10}, []string{}},
		}
		for _, tt := range tests {
			got, err := s.List(ctx, tt.q)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			ids := []string{}
			for _, sh := range got {
				ids = append(ids, sh.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("%s: List = %v, want %v", tt.name, ids, tt.want)
			}
		}
	})
}
