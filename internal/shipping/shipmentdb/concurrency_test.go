package shipmentdb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// The tests below race many units of work on one order's shipment. SQLite
// runs one writer at a time; PostgreSQL and MariaDB run them at once, at
// READ COMMITTED, and are where a check-then-write shows up as a second
// shipment or a lost cancellation.

// race runs fn(i) for i in [0, n) at once and waits for every call.
func race(n int, fn func(i int)) {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// TestConcurrentSchedulesOfOneOrder races sixteen schedules of one order
// through the service: one records the shipment, every other is answered
// with it.
func TestConcurrentSchedulesOfOneOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := shipmentdb.New(openDB(t, d))
		svc := shipping.NewService(store)
		const callers = 16
		var (
			mu         sync.Mutex
			created    int
			ids        = map[string]int{}
			unexpected []error
		)
		race(callers, func(int) {
			sh, c, err := svc.Schedule(ctx, shipping.Parallel, "o1", "u1", home)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unexpected = append(unexpected, err)
				return
			}
			ids[sh.ID]++
			if c {
				created++
			}
		})
		t.Logf("%s: callers=%d created=%d distinct_shipments_answered=%d unexpected=%d", d, callers, created, len(ids), len(unexpected))
		if len(unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", unexpected)
		}
		if created != 1 || len(ids) != 1 {
			t.Errorf("got %d created and answers naming %d shipments, want 1 and 1: %v", created, len(ids), ids)
		}
		all, err := store.List(ctx, shipping.ListQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].Status != shipping.StatusScheduled || ids[all[0].ID] != callers {
			t.Errorf("shipments stored: got %+v, want the one every caller was answered with", all)
		}
	})
}

// TestScheduleRacingCancel races, for each of twenty orders, a schedule with
// two cancels (a compensation overtaking the schedule): every order ends
// with one CANCELLED shipment, whichever came first.
func TestScheduleRacingCancel(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := shipmentdb.New(openDB(t, d))
		svc := shipping.NewService(store)
		const orders = 20
		var (
			mu                 sync.Mutex
			scheduled, refused int
			cancels            int
			unexpected         []error
		)
		race(orders*3, func(i int) {
			orderID := fmt.Sprintf("o%02d", i%orders)
			var err error
			if i < orders {
				_, _, err = svc.Schedule(ctx, shipping.Parallel, orderID, "u1", home)
			} else {
				_, err = svc.Cancel(ctx, shipping.Parallel, orderID)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && i < orders:
				scheduled++
			case err == nil:
				cancels++
			case i < orders && fail.Is(err, fail.Conflict):
				refused++
			default:
				unexpected = append(unexpected, err)
			}
		})
		if len(unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", unexpected)
		}
		all, err := store.List(ctx, shipping.ListQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		ended := map[shipping.Status]int{}
		perOrder := map[string]int{}
		for _, sh := range all {
			ended[sh.Status]++
			perOrder[sh.OrderID]++
		}
		t.Logf("%s: orders=%d scheduled_first=%d cancelled_first=%d cancels_ok=%d shipments=%d ended=%v unexpected=0",
			d, orders, scheduled, refused, cancels, len(all), ended)
		if scheduled+refused != orders || cancels != 2*orders {
			t.Errorf("got %d scheduled, %d refused and %d cancels answered; want %d schedules and %d cancels in all",
				scheduled, refused, cancels, orders, 2*orders)
		}
		if len(all) != orders || len(perOrder) != orders || ended[shipping.StatusCancelled] != orders {
			t.Errorf("shipments: got %d over %d orders, ended %v; want one CANCELLED per order, %d", len(all), len(perOrder), ended, orders)
		}
	})
}

// TestConcurrentMergeIntent applies the three events of each of twenty
// orders (created with the address, reserved, paid) at once, each twice:
// every intent ends with all three, and the address of the order.
func TestConcurrentMergeIntent(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := shipmentdb.New(openDB(t, d))
		const orders = 20
		var (
			mu         sync.Mutex
			unexpected []error
		)
		race(orders*6, func(i int) {
			in := shipping.Intent{OrderID: fmt.Sprintf("o%02d", i%orders), Saga: shipping.Parallel}
			switch i / orders % 3 {
			case 0:
				in.UserID, in.Address, in.Created = "u1", home, true
			case 1:
				in.Reserved = true
			default:
				in.Paid = true
			}
			if _, err := store.MergeIntent(ctx, in, time.Now()); err != nil {
				mu.Lock()
				unexpected = append(unexpected, err)
				mu.Unlock()
			}
		})
		if len(unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", unexpected)
		}
		whole := 0
		for i := range orders {
			orderID := fmt.Sprintf("o%02d", i)
			// A merge that brings nothing new answers the intent as it stands.
			got, err := store.MergeIntent(ctx, shipping.Intent{OrderID: orderID, Saga: shipping.Parallel}, time.Now())
			if err != nil {
				t.Fatalf("MergeIntent: %v", err)
			}
			want := shipping.Intent{OrderID: orderID, Saga: shipping.Parallel, UserID: "u1", Address: home, Created: true, Reserved: true, Paid: true}
			if got == want {
				whole++
			} else {
				t.Errorf("intent of %s: got %+v, want %+v", orderID, got, want)
			}
		}
		t.Logf("%s: merges=%d whole_intents=%d/%d unexpected=0", d, orders*6, whole, orders)
	})
}

// TestMigrationsRoundTrip applies the migrations, rolls them all back and
// applies them again, on every dialect.
func TestMigrationsRoundTrip(t *testing.T) {
	sqldbtest.MigrationsRoundTrip(t, shipmentdb.Migrations)
}
