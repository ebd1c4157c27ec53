package inventorydb_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func newEvent(t *testing.T, orderID string) event.Event {
	t.Helper()
	e, err := event.New(inventory.Source, inventory.TopicItemsReleased, inventory.TypeItemsReleased, 1, orderID,
		inventory.OrderPayload{OrderID: orderID, Saga: inventory.Parallel})
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
		store := inventorydb.New(db)
		if _, err := store.SetAvailable(ctx, "p1", 10, time.Now()); err != nil {
			t.Fatal(err)
		}
		inOutbox := func(id string) bool {
			t.Helper()
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE event_id = ?`, id).Scan(&n); err != nil {
				t.Fatalf("reading the outbox: %v", err)
			}
			return n == 1
		}
		reserve := func(ctx context.Context, orderID string) error {
			now := time.Now()
			_, _, err := store.Reserve(ctx, inventory.Reservation{OrderID: orderID, Status: inventory.Reserved,
				Items: []inventory.Item{{ProductID: "p1", Quantity: 2}}, CreatedAt: now, UpdatedAt: now})
			return err
		}
		boom := errors.New("boom")
		tests := []struct {
			name      string
			fail      bool // the unit fails after the change and the event
			wantSaved bool
		}{
			{"committed", false, true},
			{"rolled back", true, false},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				orderID := fmt.Sprintf("o%d", i)
				e := newEvent(t, orderID)
				err := store.Atomic(ctx, func(ctx context.Context) error {
					if err := reserve(ctx, orderID); err != nil {
						return err
					}
					if err := store.Publish(ctx, e); err != nil {
						return err
					}
					if tt.fail {
						return boom
					}
					return nil
				})
				if tt.fail != errors.Is(err, boom) || (!tt.fail && err != nil) {
					t.Fatalf("Atomic: got %v, want failed %v", err, tt.fail)
				}
				_, rerr := store.Reservation(ctx, orderID)
				if saved := rerr == nil; saved != tt.wantSaved {
					t.Errorf("reservation saved: got %v (%v), want %v", saved, rerr, tt.wantSaved)
				}
				if got := inOutbox(e.ID); got != tt.wantSaved {
					t.Errorf("event in the outbox: got %v, want %v", got, tt.wantSaved)
				}
			})
		}
		st, err := store.Stock(ctx, "p1")
		if err != nil || st.Reserved != 2 || st.Available != 8 {
			t.Errorf("stock of p1: got %+v, %v; want 2 reserved by the committed unit only", st, err)
		}
	})
}

func TestPublishNeedsAUnitOfWork(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		store := inventorydb.New(openDB(t, d))
		if err := store.Publish(context.Background(), newEvent(t, "o1")); !errors.Is(err, outbox.ErrNoTransaction) {
			t.Errorf("Publish outside a unit: got %v, want outbox.ErrNoTransaction", err)
		}
	})
}

func TestMergeIntent(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		items := []inventory.Item{{ProductID: "p1", Quantity: 2}, {ProductID: "p2", Quantity: 1}}
		other := []inventory.Item{{ProductID: "p1", Quantity: 9}}
		tests := []struct {
			name    string
			patches []inventory.Intent
			want    inventory.Intent
		}{
			{"items alone", []inventory.Intent{{Saga: inventory.Choreography, Items: items}},
				inventory.Intent{Saga: inventory.Choreography, Items: items}},
			{"payment alone", []inventory.Intent{{Saga: inventory.Choreography, Paid: true}},
				inventory.Intent{Saga: inventory.Choreography, Paid: true}},
			{"items then payment", []inventory.Intent{{Saga: inventory.Choreography, Items: items}, {Saga: inventory.Choreography, Paid: true}},
				inventory.Intent{Saga: inventory.Choreography, Items: items, Paid: true}},
			{"payment then items", []inventory.Intent{{Saga: inventory.Choreography, Paid: true}, {Saga: inventory.Choreography, Items: items}},
				inventory.Intent{Saga: inventory.Choreography, Items: items, Paid: true}},
			{"the first items stay", []inventory.Intent{{Saga: inventory.Choreography, Items: items}, {Saga: inventory.Choreography, Items: other}},
				inventory.Intent{Saga: inventory.Choreography, Items: items}},
			{"the first saga stays", []inventory.Intent{{Saga: inventory.Choreography, Paid: true}, {Saga: inventory.Parallel, Items: items}},
				inventory.Intent{Saga: inventory.Choreography, Items: items, Paid: true}},
			{"paid stays paid", []inventory.Intent{{Saga: inventory.Choreography, Paid: true}, {Saga: inventory.Choreography}},
				inventory.Intent{Saga: inventory.Choreography, Paid: true}},
		}
		// One database for every case, each case on an order of its own.
		store := inventorydb.New(openDB(t, d))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				var got inventory.Intent
				for _, p := range tt.patches {
					p.OrderID = tt.name
					var err error
					if got, err = store.MergeIntent(ctx, p, time.Now()); err != nil {
						t.Fatalf("MergeIntent(%+v): %v", p, err)
					}
				}
				tt.want.OrderID = tt.name
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			})
		}
	})
}

// TestRefusalIsAnnounced shows the service's unit of work commits a
// refusal with the event that announces it.
func TestRefusalIsAnnounced(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		svc := inventory.NewService(inventorydb.New(db))
		if _, err := svc.Commit(ctx, inventory.Orchestration, "o1"); !fail.Is(err, fail.NotFound) {
			t.Fatalf("Commit without a reservation: got %v, want fail.NotFound", err)
		}
		var typ string
		if err := db.QueryRowContext(ctx, `SELECT type FROM outbox`).Scan(&typ); err != nil || typ != inventory.TypeCommitFailed {
			t.Errorf("outbox: got %q, %v; want one CommitFailed", typ, err)
		}
	})
}
