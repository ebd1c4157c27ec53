package shipmentdb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func newEvent(t *testing.T, orderID string) event.Event {
	t.Helper()
	e, err := event.New(shipping.Source, shipping.TopicShipmentCancelled, shipping.TypeShipmentCancelled, 1, orderID,
		shipping.ShipmentCancelledPayload{OrderID: orderID, Saga: shipping.Parallel})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEventsCommitWithTheChange shows that an event is in the outbox if and
// only if the change it announces committed.
func TestEventsCommitWithTheChange(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		store := shipmentdb.New(db)
		boom := errors.New("boom")
		for i, failing := range []bool{false, true} {
			orderID := fmt.Sprintf("o%d", i)
			e := newEvent(t, orderID)
			err := store.Atomic(ctx, func(ctx context.Context) error {
				if err := store.Create(ctx, shipment(orderID, "u1")); err != nil {
					return err
				}
				if err := store.Publish(ctx, e); err != nil {
					return err
				}
				if failing {
					return boom
				}
				return nil
			})
			if failing != errors.Is(err, boom) || (!failing && err != nil) {
				t.Fatalf("%s: Atomic got %v, want failed %v", orderID, err, failing)
			}
			_, berr := store.ByOrder(ctx, orderID)
			if saved := berr == nil; saved == failing {
				t.Errorf("%s: shipment saved %v (%v), want %v", orderID, saved, berr, !failing)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE event_id = ?`, e.ID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if inOutbox := n == 1; inOutbox == failing {
				t.Errorf("%s: event in the outbox %v, want %v", orderID, inOutbox, !failing)
			}
		}
	})
}

func TestPublishNeedsAUnitOfWork(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		store := shipmentdb.New(openDB(t, d))
		if err := store.Publish(context.Background(), newEvent(t, "o1")); !errors.Is(err, outbox.ErrNoTransaction) {
			t.Errorf("Publish outside a unit: got %v, want outbox.ErrNoTransaction", err)
		}
	})
}

// TestCreateConflictInsideAUnit shows that a refused insert leaves the
// caller's unit usable: the service goes on to read the winner.
func TestCreateConflictInsideAUnit(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := shipmentdb.New(openDB(t, d))
		err := store.Atomic(ctx, func(ctx context.Context) error {
			if err := store.Create(ctx, shipment("o1", "u1")); err != nil {
				return err
			}
			if err := store.Create(ctx, shipment("o1", "u2")); !fail.Is(err, fail.Conflict) {
				return fmt.Errorf("second Create = %v, want fail.Conflict", err)
			}
			return store.Publish(ctx, newEvent(t, "o1"))
		})
		if err != nil {
			t.Fatal(err)
		}
		if sh, err := store.ByOrder(ctx, "o1"); err != nil || sh.UserID != "u1" {
			t.Errorf("ByOrder = %+v, %v; want the first shipment", sh, err)
		}
	})
}

func TestMergeIntent(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		const (
			c = shipping.Choreography
			p = shipping.Parallel
		)
		elsewhere := home
		elsewhere.City = "Paris"
		tests := []struct {
			name    string
			patches []shipping.Intent
			want    shipping.Intent
		}{
			{"created alone", []shipping.Intent{{Saga: c, UserID: "u1", Address: home, Created: true}},
				shipping.Intent{Saga: c, UserID: "u1", Address: home, Created: true}},
			{"reserved then created", []shipping.Intent{{Saga: c, Reserved: true}, {Saga: c, UserID: "u1", Address: home, Created: true}},
				shipping.Intent{Saga: c, UserID: "u1", Address: home, Created: true, Reserved: true}},
			{"all three, any order", []shipping.Intent{{Saga: p, Paid: true}, {Saga: p, UserID: "u1", Address: home, Created: true}, {Saga: p, Reserved: true}},
				shipping.Intent{Saga: p, UserID: "u1", Address: home, Created: true, Reserved: true, Paid: true}},
			{"the first address stays", []shipping.Intent{{Saga: c, UserID: "u1", Address: home, Created: true}, {Saga: c, UserID: "u2", Address: elsewhere, Created: true}},
				shipping.Intent{Saga: c, UserID: "u1", Address: home, Created: true}},
			{"the first saga stays", []shipping.Intent{{Saga: c, Reserved: true}, {Saga: p, Paid: true}},
				shipping.Intent{Saga: c, Reserved: true, Paid: true}},
			{"what is set stays set", []shipping.Intent{{Saga: p, Reserved: true, Paid: true}, {Saga: p}},
				shipping.Intent{Saga: p, Reserved: true, Paid: true}},
		}
		// One database for every case, each case on an order of its own.
		store := shipmentdb.New(openDB(t, d))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				var got shipping.Intent
				for _, in := range tt.patches {
					in.OrderID = tt.name
					var err error
					if got, err = store.MergeIntent(ctx, in, time.Now()); err != nil {
						t.Fatalf("MergeIntent(%+v): %v", in, err)
					}
				}
				tt.want.OrderID = tt.name
				if got != tt.want {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			})
		}
	})
}

// TestSchemaRefusesACreatedIntentWithoutAnAddress shows the database itself
// keeps an order that was seen from shipping nowhere.
func TestSchemaRefusesACreatedIntentWithoutAnAddress(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		_, err := shipmentdb.New(openDB(t, d)).MergeIntent(context.Background(),
			shipping.Intent{OrderID: "o1", Saga: shipping.Parallel, UserID: "u1", Created: true}, time.Now())
		if err == nil {
			t.Errorf("MergeIntent of a created order with no address: got nil, want the schema to refuse it")
		}
	})
}
