package paymentdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// The tests below race many units of work on one order's payment. SQLite
// runs one writer at a time; PostgreSQL and MariaDB run them at once, at
// READ COMMITTED, and are where a check-then-write shows up as a second
// capture or a second refund.

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

func chargeRequest(orderID string) payments.ChargeRequest {
	return payments.ChargeRequest{OrderID: orderID, UserID: "u1", AmountCents: 1234, Currency: payments.Currency,
		Card: "4242424242424242", Saga: payments.SagaParallel}
}

// TestConcurrentChargesOfOneOrder races sixteen charges of one order through
// the service: one records the capture, every other is answered with it.
func TestConcurrentChargesOfOneOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := paymentdb.New(openDB(t, d))
		svc := payments.NewService(store, simprovider.New())
		const callers = 16
		var (
			mu         sync.Mutex
			created    int
			ids        = map[string]int{}
			unexpected []error
		)
		race(callers, func(int) {
			p, c, err := svc.Charge(ctx, chargeRequest("o1"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unexpected = append(unexpected, err)
				return
			}
			ids[p.ID]++
			if c {
				created++
			}
		})
		t.Logf("%s: callers=%d created=%d distinct_payments_answered=%d unexpected=%d", d, callers, created, len(ids), len(unexpected))
		if len(unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", unexpected)
		}
		if created != 1 || len(ids) != 1 {
			t.Errorf("got %d created and answers naming %d payments, want 1 and 1: %v", created, len(ids), ids)
		}
		all, err := store.List(ctx, payments.ListQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].Status != payments.StatusCaptured || ids[all[0].ID] != callers {
			t.Errorf("payments stored: got %+v, want the one capture every caller was answered with", all)
		}
	})
}

// TestConcurrentRefundsOfOneCapture races sixteen CAPTURED to REFUNDED moves
// of one payment, each with its own event: exactly one moves it, and only
// its event is stored.
func TestConcurrentRefundsOfOneCapture(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		store := paymentdb.New(db)
		if err := store.Create(ctx, payment("o1", "u1", payments.StatusCaptured)); err != nil {
			t.Fatal(err)
		}
		const callers = 16
		var (
			mu         sync.Mutex
			moved      []string // ids of the events stored with a move
			statuses   = map[payments.Status]int{}
			unexpected []error
		)
		events := make([]event.Event, callers)
		for i := range events {
			var err error
			events[i], err = event.New(payments.Source, payments.TopicPaymentRefunded, payments.TypePaymentRefunded, 1, "o1",
				payments.PaymentRefunded{OrderID: "o1"})
			if err != nil {
				t.Fatal(err)
			}
		}
		race(callers, func(i int) {
			e := events[i]
			p, m, err := store.SetStatus(ctx, "o1", payments.StatusCaptured, payments.StatusRefunded, time.Now(), e)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unexpected = append(unexpected, err)
				return
			}
			statuses[p.Status]++
			if m {
				moved = append(moved, e.ID)
			}
		})
		t.Logf("%s: callers=%d moved=%d answered=%v unexpected=%d", d, callers, len(moved), statuses, len(unexpected))
		if len(unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", unexpected)
		}
		if len(moved) != 1 || statuses[payments.StatusRefunded] != callers {
			t.Errorf("got %d moves and answers %v, want 1 move and all %d answered REFUNDED", len(moved), statuses, callers)
		}
		if got := outboxIDs(t, db); !sameIDs(got, moved...) {
			t.Errorf("outbox = %v, want only the event of the one move, %v", got, moved)
		}
	})
}

// TestChargeRacingRefund races, for each of twenty orders, a charge with two
// refunds (a cancellation overtaking the charge), each refund in a
// transaction of its own as a consumer runs it: no order may end with money
// taken, whichever came first.
func TestChargeRacingRefund(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		store := paymentdb.New(db)
		svc := payments.NewService(store, simprovider.New())
		const orders = 20
		var (
			mu                  sync.Mutex
			captured, calledOff int
			unexpected          []error
		)
		race(orders*3, func(i int) {
			orderID := fmt.Sprintf("o%02d", i%orders)
			var err error
			if i < orders {
				var p payments.Payment
				p, _, err = svc.Charge(ctx, chargeRequest(orderID))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && p.Status == payments.StatusCaptured:
					captured++
					return
				case errors.Is(err, payments.ErrCalledOff) && fail.Is(err, fail.Conflict):
					calledOff++
					return
				case err == nil:
					err = fmt.Errorf("charge of %s answered %s", orderID, p.Status)
				}
			} else {
				err = db.Atomic(ctx, func(ctx context.Context) error {
					_, err := svc.Refund(ctx, orderID, payments.SagaParallel)
					return err
				})
				mu.Lock()
				defer mu.Unlock()
			}
			if err != nil {
				unexpected = append(unexpected, err)
			}
		})
		if len(unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", unexpected)
		}
		ended := map[payments.Status]int{}
		for i := range orders {
			p, err := store.ByOrder(ctx, fmt.Sprintf("o%02d", i))
			if err != nil {
				t.Fatalf("ByOrder: %v", err)
			}
			ended[p.Status]++
		}
		t.Logf("%s: orders=%d charged_first=%d refunded_first=%d ended=%v money_held=%d unexpected=0",
			d, orders, captured, calledOff, ended, ended[payments.StatusCaptured])
		if captured+calledOff != orders {
			t.Errorf("charges: got %d captured and %d called off, want %d in all", captured, calledOff, orders)
		}
		if ended[payments.StatusRefunded] != captured || ended[payments.StatusVoided] != calledOff {
			t.Errorf("payments ended %v, want %d REFUNDED (charged first) and %d VOIDED (refunded first)", ended, captured, calledOff)
		}
	})
}

// TestMigrationsRoundTrip applies the migrations, rolls them all back and
// applies them again, on every dialect.
func TestMigrationsRoundTrip(t *testing.T) {
	sqldbtest.MigrationsRoundTrip(t, paymentdb.Migrations)
}
