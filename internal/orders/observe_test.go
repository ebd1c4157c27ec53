package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

type shop struct {
	store *orderdb.Store
	db    *sqldb.DB
	svc   *orders.Service
}

func newShop(t *testing.T) shop {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "orders", orderdb.Migrations)
	store := orderdb.New(db)
	return shop{store: store, db: db, svc: orders.NewService(store, nil, nil, orders.ModeOrchestration, func() {})}
}

func (s shop) order(t *testing.T, mode string) orders.Order {
	t.Helper()
	now := time.Now().UTC()
	o := orders.Order{ID: uuid.Must(uuid.NewV7()).String(), UserID: "u1", Status: orders.Pending, Saga: mode,
		Items: []orders.Item{{ProductID: "p1", Quantity: 1, PriceCents: 100}}, TotalCents: 100, Currency: "USD",
		Address: orders.Address{Name: "A", Line1: "B", City: "C", PostalCode: "D", Country: "GB"}, CreatedAt: now, UpdatedAt: now}
	if err := s.store.Create(context.Background(), o, orders.NewSaga(o, "tok", now), nil, nil); err != nil {
		t.Fatal(err)
	}
	return o
}

// ended returns the order's status and the ending events in its outbox.
func (s shop) ended(t *testing.T, id string) (orders.Status, []string) {
	t.Helper()
	o, err := s.store.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	err = outbox.Log(context.Background(), s.db, "orders.order.", func(e event.Event) error {
		if e.Key == id {
			types = append(types, e.Type)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return o.Status, types
}

// observe applies an event as the consumer does: in one transaction.
func (s shop) observe(t *testing.T, id string, k orders.Kind, reason string) {
	t.Helper()
	err := s.db.Atomic(context.Background(), func(ctx context.Context) error {
		return s.svc.Observe(ctx, orders.Observation{OrderID: id, Kind: k, Reason: reason})
	})
	if err != nil {
		t.Fatalf("observing %s: %v", k, err)
	}
}

func permutations(ks []orders.Kind) [][]orders.Kind {
	if len(ks) <= 1 {
		return [][]orders.Kind{append([]orders.Kind(nil), ks...)}
	}
	var out [][]orders.Kind
	for i := range ks {
		rest := append(append([]orders.Kind(nil), ks[:i]...), ks[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]orders.Kind{ks[i]}, p...))
		}
	}
	return out
}

// TestEventDrivenSagasEndTheSameInAnyOrder feeds every permutation of each
// outcome's events, each delivered three times, and checks that the order
// ends as the in-order run does, once, and never on the way with another
// end (it may end before a late event that could no longer change it).
func TestEventDrivenSagasEndTheSameInAnyOrder(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		events []orders.Kind
		want   orders.Status
		reason string
	}{
		{"parallel completes", orders.ModeParallel,
			[]orders.Kind{orders.PaymentProcessed, orders.ItemsReserved, orders.DeliveryScheduled, orders.ItemsCommitted}, orders.Completed, ""},
		{"parallel: card declined, stock released", orders.ModeParallel,
			[]orders.Kind{orders.PaymentFailed, orders.ItemsReserved, orders.ItemsReleased}, orders.Cancelled, "card_declined"},
		{"parallel: stock short, payment refunded", orders.ModeParallel,
			[]orders.Kind{orders.PaymentProcessed, orders.ReservationFailed, orders.PaymentRefunded}, orders.Cancelled, "insufficient stock"},
		{"parallel: both sides fail", orders.ModeParallel,
			[]orders.Kind{orders.PaymentFailed, orders.ReservationFailed}, orders.Cancelled, ""},
		{"choreography completes", orders.ModeChoreography,
			[]orders.Kind{orders.PaymentProcessed, orders.ItemsReserved, orders.DeliveryScheduled, orders.ItemsCommitted}, orders.Completed, ""},
		{"choreography: card declined", orders.ModeChoreography,
			[]orders.Kind{orders.PaymentFailed, orders.ItemsReleased}, orders.Cancelled, "card_declined"},
		{"choreography: stock short", orders.ModeChoreography,
			[]orders.Kind{orders.PaymentProcessed, orders.ReservationFailed, orders.PaymentRefunded}, orders.Cancelled, "insufficient stock"},
	}
	reasons := map[orders.Kind]string{orders.PaymentFailed: "card_declined", orders.ReservationFailed: "insufficient stock"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShop(t)
			for _, perm := range permutations(tt.events) {
				o := s.order(t, tt.mode)
				for i, k := range perm {
					if st, _ := s.ended(t, o.ID); st != orders.Pending && st != tt.want {
						t.Fatalf("%v: ended %s before event %d, want %s", perm, st, i, tt.want)
					}
					for range 3 {
						s.observe(t, o.ID, k, reasons[k])
					}
				}
				st, ends := s.ended(t, o.ID)
				if st != tt.want || len(ends) != 1 {
					t.Fatalf("%v: status %s with ending events %v, want %s once", perm, st, ends, tt.want)
				}
				got, _ := s.store.Order(context.Background(), o.ID)
				if tt.reason != "" && got.CancelReason != tt.reason {
					t.Errorf("%v: cancel reason %q, want %q", perm, got.CancelReason, tt.reason)
				}
			}
		})
	}
}

// TestOrchestratorTakesOnlyTheReplyItAwaits: replies to other steps, and
// repeats, change nothing.
func TestOrchestratorTakesOnlyTheReplyItAwaits(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	o := s.order(t, orders.ModeOrchestration)
	s.observe(t, o.ID, orders.PaymentProcessed, "") // no command sent yet: not awaited
	if sg, _ := s.store.Saga(ctx, o.ID); sg.Step != orders.StepCharge {
		t.Fatalf("an unawaited reply moved the saga to %s", sg.Step)
	}
	// The runner sends the charge.
	claimed, err := s.store.ClaimSagas(ctx, "r", time.Now(), time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatal(claimed, err)
	}
	sent := claimed[0]
	sent.Awaiting = true
	if err := s.store.Advance(ctx, orders.Guard{Owner: "r"}, orders.Transition{Saga: sent}, nil, nil); err != nil {
		t.Fatal(err)
	}
	s.observe(t, o.ID, orders.ItemsReserved, "") // a reply for another step
	if sg, _ := s.store.Saga(ctx, o.ID); sg.Step != orders.StepCharge || !sg.Awaiting {
		t.Fatalf("a reply for another step moved the saga: %+v", sg)
	}
	for range 3 {
		s.observe(t, o.ID, orders.PaymentProcessed, "")
	}
	sg, _ := s.store.Saga(ctx, o.ID)
	if sg.Step != orders.StepReserve || sg.Awaiting {
		t.Fatalf("after the charge reply (three times): %+v, want reserve due, not awaiting", sg)
	}
	hist, _ := s.store.History(ctx, o.ID)
	if len(hist) != 1 {
		t.Errorf("history = %+v, want the one reply recorded", hist)
	}
}

func TestProgressDecides(t *testing.T) {
	var p orders.Progress
	if p.Decide() != "" {
		t.Fatal("nothing seen decides something")
	}
	p = p.With(orders.PaymentFailed)
	if p.Decide() != "" {
		t.Error("cancelled before the stock side settled")
	}
	if p.With(orders.ItemsReleased).Decide() != orders.Cancelled {
		t.Error("not cancelled once both sides settled")
	}
	if p.With(orders.ItemsReleased).With(orders.ItemsReleased) != p.With(orders.ItemsReleased) {
		t.Error("seeing an event twice changed the progress")
	}
}
