package shipping_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

var home = shipping.Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"}

func newStore(t *testing.T) *shipmentdb.Store {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "shipping", shipmentdb.Migrations)
	return shipmentdb.New(db)
}

func TestScheduleOnceAndAnswerRepeats(t *testing.T) {
	ctx := context.Background()
	svc := shipping.NewService(newStore(t))

	first, created, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
	if err != nil || !created {
		t.Fatalf("Schedule = created %v, %v; want created, nil", created, err)
	}
	if first.Status != shipping.StatusScheduled || first.UserID != "user-1" || first.Address != home {
		t.Errorf("Schedule = %+v, want SCHEDULED for user-1 to %+v", first, home)
	}
	elsewhere := home
	elsewhere.City = "Paris"
	again, created, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", elsewhere)
	if err != nil || created {
		t.Fatalf("repeat Schedule = created %v, %v; want not created, nil", created, err)
	}
	if again.ID != first.ID || again.Address != home || !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("repeat Schedule = %+v, want the first shipment %+v unchanged", again, first)
	}
}

func TestScheduleInvalidChangesNothing(t *testing.T) {
	ctx := context.Background()
	svc := shipping.NewService(newStore(t))
	bad := home
	bad.Country = "gb"
	if _, _, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", bad); !fail.Is(err, fail.Invalid) {
		t.Fatalf("Schedule with a bad country = %v, want fail.Invalid", err)
	}
	if _, _, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "", home); !fail.Is(err, fail.Invalid) {
		t.Fatalf("Schedule without a user = %v, want fail.Invalid", err)
	}
	if _, err := svc.ByOrder(ctx, "order-1"); !fail.Is(err, fail.NotFound) {
		t.Errorf("ByOrder after refused schedules = %v, want fail.NotFound", err)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	svc := shipping.NewService(newStore(t))
	scheduled, _, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
	if err != nil {
		t.Fatal(err)
	}

	cancelled, err := svc.Cancel(ctx, shipping.Orchestration, "order-1")
	if err != nil || cancelled.Status != shipping.StatusCancelled || cancelled.ID != scheduled.ID || cancelled.Address != home {
		t.Fatalf("Cancel(scheduled) = %+v, %v; want the shipment CANCELLED", cancelled, err)
	}
	again, err := svc.Cancel(ctx, shipping.Orchestration, "order-1")
	if err != nil || again.Status != shipping.StatusCancelled || again.ID != scheduled.ID || !again.UpdatedAt.Equal(cancelled.UpdatedAt) {
		t.Errorf("Cancel again = %+v, %v; want the same CANCELLED answer", again, err)
	}
	_, _, err = svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
	if !fail.Is(err, fail.Conflict) || fail.MessageOf(err) != "shipment was cancelled" {
		t.Errorf("Schedule after cancel = %v, want fail.Conflict %q", err, "shipment was cancelled")
	}
	if got, _ := svc.ByOrder(ctx, "order-1"); got.Status != shipping.StatusCancelled {
		t.Errorf("after the refused schedule the shipment is %s, want CANCELLED", got.Status)
	}
	if _, err := svc.Cancel(ctx, shipping.Orchestration, ""); !fail.Is(err, fail.Invalid) {
		t.Errorf("Cancel(\"\") = %v, want fail.Invalid", err)
	}
}

func TestCancelBeforeScheduleLeavesATombstone(t *testing.T) {
	ctx := context.Background()
	svc := shipping.NewService(newStore(t))

	tomb, err := svc.Cancel(ctx, shipping.Orchestration, "order-1")
	if err != nil || tomb.Status != shipping.StatusCancelled || tomb.UserID != "" || tomb.Address != (shipping.Address{}) {
		t.Fatalf("Cancel(unknown) = %+v, %v; want a CANCELLED tombstone with no user or address", tomb, err)
	}
	again, err := svc.Cancel(ctx, shipping.Orchestration, "order-1")
	if err != nil || again.ID != tomb.ID {
		t.Errorf("Cancel again = %+v, %v; want the tombstone %s", again, err, tomb.ID)
	}
	if _, _, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home); !fail.Is(err, fail.Conflict) {
		t.Errorf("late Schedule = %v, want fail.Conflict", err)
	}
}

// TestScheduleRacingCancel runs a schedule and its compensating cancel at
// once, many times: whichever wins, the order must end with one CANCELLED
// shipment, and a schedule that succeeded must have come first.
func TestScheduleRacingCancel(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	svc := shipping.NewService(store)
	const orders = 30
	for i := range orders {
		order := fmt.Sprintf("order-%d", i)
		var (
			wg          sync.WaitGroup
			start       = make(chan struct{})
			scheduleErr error
			cancelled   shipping.Shipment
			cancelErr   error
		)
		wg.Go(func() {
			<-start
			_, _, scheduleErr = svc.Schedule(ctx, shipping.Orchestration, order, "user-1", home)
		})
		wg.Go(func() {
			<-start
			cancelled, cancelErr = svc.Cancel(ctx, shipping.Orchestration, order)
		})
		close(start)
		wg.Wait()

		if cancelErr != nil || cancelled.Status != shipping.StatusCancelled {
			t.Fatalf("%s: Cancel = %+v, %v; want CANCELLED", order, cancelled, cancelErr)
		}
		if scheduleErr != nil && !fail.Is(scheduleErr, fail.Conflict) {
			t.Fatalf("%s: Schedule = %v, want success or fail.Conflict", order, scheduleErr)
		}
		final, err := svc.ByOrder(ctx, order)
		if err != nil || final.Status != shipping.StatusCancelled || final.ID != cancelled.ID {
			t.Fatalf("%s: final shipment = %+v, %v; want the cancelled one %s", order, final, err, cancelled.ID)
		}
	}
	rows, err := store.List(ctx, shipping.ListQuery{Limit: 1000})
	if err != nil || len(rows) != orders {
		t.Fatalf("shipment rows = %d, %v; want %d, one per order", len(rows), err, orders)
	}
}

// staleStore answers its next ByOrder calls with fail.NotFound, as a read
// that ran just before another call recorded the order's shipment would.
type staleStore struct {
	*shipmentdb.Store
	stale int
}

func (s *staleStore) ByOrder(ctx context.Context, orderID string) (shipping.Shipment, error) {
	if s.stale > 0 {
		s.stale--
		return shipping.Shipment{}, fail.New(fail.NotFound, "shipment not found")
	}
	return s.Store.ByOrder(ctx, orderID)
}

// TestLosersOfTheInsertRaceAnswerTheWinner forces both interleavings of a
// schedule and a cancel that each saw no shipment.
func TestLosersOfTheInsertRaceAnswerTheWinner(t *testing.T) {
	ctx := context.Background()

	t.Run("schedule loses to a tombstone", func(t *testing.T) {
		store := &staleStore{Store: newStore(t)}
		svc := shipping.NewService(store)
		tomb, err := svc.Cancel(ctx, shipping.Orchestration, "order-1")
		if err != nil {
			t.Fatal(err)
		}
		store.stale = 1
		_, _, err = svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
		if !fail.Is(err, fail.Conflict) || fail.MessageOf(err) != "shipment was cancelled" {
			t.Fatalf("Schedule = %v, want fail.Conflict %q", err, "shipment was cancelled")
		}
		if got, _ := store.ByOrder(ctx, "order-1"); got.ID != tomb.ID || got.Status != shipping.StatusCancelled {
			t.Errorf("shipment = %+v, want the tombstone %s", got, tomb.ID)
		}
	})

	t.Run("schedule loses to a schedule", func(t *testing.T) {
		store := &staleStore{Store: newStore(t)}
		svc := shipping.NewService(store)
		first, _, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
		if err != nil {
			t.Fatal(err)
		}
		store.stale = 1
		got, created, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
		if err != nil || created || got.ID != first.ID {
			t.Errorf("Schedule = %s created %v, %v; want %s, not created", got.ID, created, err, first.ID)
		}
	})

	t.Run("tombstone loses to a schedule", func(t *testing.T) {
		store := &staleStore{Store: newStore(t)}
		svc := shipping.NewService(store)
		scheduled, _, err := svc.Schedule(ctx, shipping.Orchestration, "order-1", "user-1", home)
		if err != nil {
			t.Fatal(err)
		}
		store.stale = 1
		got, err := svc.Cancel(ctx, shipping.Orchestration, "order-1")
		if err != nil || got.ID != scheduled.ID || got.Status != shipping.StatusCancelled {
			t.Errorf("Cancel = %+v, %v; want the scheduled shipment %s, CANCELLED", got, err, scheduled.ID)
		}
	})
}

func TestListPages(t *testing.T) {
	ctx := context.Background()
	svc := shipping.NewService(newStore(t))
	var mine []string
	for i := range 5 {
		user := "user-1"
		if i%2 == 1 {
			user = "user-2"
		}
		sh, _, err := svc.Schedule(ctx, shipping.Orchestration, fmt.Sprintf("order-%d", i), user, home)
		if err != nil {
			t.Fatal(err)
		}
		if user == "user-1" {
			mine = append(mine, sh.ID)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("listing does not end")
		}
		page, err := svc.List(ctx, shipping.ListQuery{UserID: "user-1", After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range page.Items {
			got = append(got, sh.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(mine) {
		t.Errorf("user-1's pages = %v, want %v", got, mine)
	}
	for _, limit := range []int{0, -1, 1001} {
		if _, err := svc.List(ctx, shipping.ListQuery{Limit: limit}); !fail.Is(err, fail.Invalid) {
			t.Errorf("List(limit %d) = %v, want fail.Invalid", limit, err)
		}
	}
}
