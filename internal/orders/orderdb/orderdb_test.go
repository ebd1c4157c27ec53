package orderdb

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func open(t *testing.T, d sqldb.Dialect) (*Store, *sqldb.DB) {
	t.Helper()
	db := sqldbtest.OpenMessagingOn(t, d, "orders", Migrations)
	return New(db), db
}

func newOrder(user, mode string) orders.Order {
	now := time.Now().UTC()
	return orders.Order{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: user, Status: orders.Pending,
		Items:      []orders.Item{{ProductID: "p1", Quantity: 2, PriceCents: 500}},
		TotalCents: 1000, Currency: "USD", Saga: mode,
		Address:   orders.Address{Name: "Ada", Line1: "1 Main", City: "X", PostalCode: "1", Country: "GB"},
		CreatedAt: now, UpdatedAt: now,
	}
}

func created(t *testing.T, o orders.Order) event.Event {
	t.Helper()
	e, err := event.New("orders", orders.TopicOrderCreated, "OrderCreated", 1, o.ID, map[string]string{"order_id": o.ID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func place(t *testing.T, s *Store, o orders.Order, replay *orders.Replay) error {
	t.Helper()
	return s.Create(context.Background(), o, orders.NewSaga(o, "tok_1", time.Now()), replay, []event.Event{created(t, o)})
}

func logged(t *testing.T, db *sqldb.DB) []event.Event {
	t.Helper()
	var out []event.Event
	if err := outbox.Log(context.Background(), db, "", func(e event.Event) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrationsUpDownUp(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		_, db := open(t, d)
		ctx := context.Background()
		if err := db.MigrateDown(ctx, Migrations); err != nil {
			t.Fatalf("down: %v", err)
		}
		if err := db.Migrate(ctx, Migrations); err != nil {
			t.Fatalf("up again: %v", err)
		}
	})
}

func TestCreateStoresOrderSagaAndEventTogether(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, db := open(t, d)
		ctx := context.Background()
		o := newOrder("u1", orders.ModeParallel)
		if err := place(t, s, o, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != o.ID || got.TotalCents != 1000 || got.Items[0] != o.Items[0] || got.Address != o.Address || got.Status != orders.Pending {
			t.Errorf("read back %+v, want %+v", got, o)
		}
		sg, err := s.Saga(ctx, o.ID)
		if err != nil || sg.Mode != orders.ModeParallel || sg.CardToken != "tok_1" || sg.Step != orders.StepCharge {
			t.Errorf("saga = %+v, %v", sg, err)
		}
		if ev := logged(t, db); len(ev) != 1 || ev[0].Key != o.ID {
			t.Errorf("outbox = %+v, want the OrderCreated of %s", ev, o.ID)
		}
		if _, err := s.Order(ctx, "nope"); !fail.Is(err, fail.NotFound) {
			t.Errorf("Order(unknown) = %v, want not found", err)
		}
	})
}

// TestNothingCommitsWithoutTheRest: a failed create leaves no order, no saga
// and no event: the event commits with the state it describes or not at all.
func TestNothingCommitsWithoutTheRest(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, db := open(t, d)
		ctx := context.Background()
		a := newOrder("u1", orders.ModeOrchestration)
		if err := place(t, s, a, &orders.Replay{UserID: "u1", Key: "k", Fingerprint: "f", OrderID: a.ID}); err != nil {
			t.Fatal(err)
		}
		b := newOrder("u1", orders.ModeOrchestration)
		if err := place(t, s, b, &orders.Replay{UserID: "u1", Key: "k", Fingerprint: "f", OrderID: b.ID}); !fail.Is(err, fail.Conflict) {
			t.Fatalf("second use of the key: %v, want conflict", err)
		}
		if _, err := s.Order(ctx, b.ID); !fail.Is(err, fail.NotFound) {
			t.Error("the losing order was stored")
		}
		if _, err := s.Saga(ctx, b.ID); !fail.Is(err, fail.NotFound) {
			t.Error("the losing order's saga was stored")
		}
		if ev := logged(t, db); len(ev) != 1 {
			t.Errorf("outbox holds %d events, want only the first order's", len(ev))
		}
		r, err := s.Replay(ctx, "u1", "k")
		if err != nil || r.OrderID != a.ID {
			t.Errorf("Replay = %+v, %v; want order %s", r, err, a.ID)
		}
		c := newOrder("u2", orders.ModeOrchestration) // keys are per user
		if err := place(t, s, c, &orders.Replay{UserID: "u2", Key: "k", Fingerprint: "f", OrderID: c.ID}); err != nil {
			t.Errorf("another user's same key: %v", err)
		}
	})
}

func TestListAllIsPagedOldestFirst(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, _ := open(t, d)
		ctx := context.Background()
		var ids []string
		for range 5 {
			o := newOrder("u1", orders.ModeOrchestration)
			ids = append(ids, o.ID)
			if err := place(t, s, o, nil); err != nil {
				t.Fatal(err)
			}
		}
		p1, err := s.ListAll(ctx, orders.PlacedHere, "", 3)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := s.ListAll(ctx, orders.PlacedHere, p1.Next, 3)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range append(p1.Orders, p2.Orders...) {
			got = append(got, o.ID)
		}
		if len(got) != 5 || p2.Next != "" {
			t.Fatalf("pages = %v (next %q), want %v", got, p2.Next, ids)
		}
		for i := range ids {
			if got[i] != ids[i] {
				t.Fatalf("oldest first: got %v, want %v", got, ids)
			}
		}
	})
}

// TestLeasesKeepSagasToOneRunner claims concurrently from many runners and
// checks no saga is handed out twice while its lease lasts, and that only
// orchestrated sagas are claimed.
func TestLeasesKeepSagasToOneRunner(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, _ := open(t, d)
		ctx := context.Background()
		const n = 40
		for range n {
			if err := place(t, s, newOrder("u1", orders.ModeOrchestration), nil); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 { // event-driven sagas have nothing for a runner to send
			if err := place(t, s, newOrder("u1", orders.ModeChoreography), nil); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now() // every saga is due
		var (
			mu    sync.Mutex
			seen  = map[string]string{}
			wg    sync.WaitGroup
			dupes int
		)
		for r := range 8 {
			owner := "runner-" + string(rune('a'+r))
			wg.Go(func() {
				for range 5 {
					sagas, err := s.ClaimSagas(ctx, owner, now, time.Minute, 3)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, sg := range sagas {
						if _, ok := seen[sg.OrderID]; ok {
							dupes++
						}
						if sg.Mode != orders.ModeOrchestration {
							t.Errorf("claimed a %s saga", sg.Mode)
						}
						seen[sg.OrderID] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if dupes != 0 || len(seen) != n {
			t.Fatalf("claimed %d distinct sagas with %d handed out twice; want %d and 0", len(seen), dupes, n)
		}
		later, err := s.ClaimSagas(ctx, "runner-z", now.Add(2*time.Minute), time.Minute, 2*n)
		if err != nil || len(later) != n {
			t.Fatalf("after expiry claimed %d, %v; want %d", len(later), err, n)
		}
	})
}

func TestAdvanceGuardsAndEndsTheOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, db := open(t, d)
		ctx := context.Background()
		o := newOrder("u1", orders.ModeOrchestration)
		if err := place(t, s, o, nil); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		claimed, err := s.ClaimSagas(ctx, "me", now, time.Minute, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		sent := claimed[0]
		sent.Awaiting, sent.Attempts = true, 1
		cmd := created(t, o)
		rec := []orders.StepRecord{{OrderID: o.ID, Step: orders.StepCharge, Result: "sent", At: now}}
		if err := s.Advance(ctx, orders.Guard{Owner: "someone-else"}, orders.Transition{Saga: sent}, rec, []event.Event{cmd}); !fail.Is(err, fail.Conflict) {
			t.Fatalf("advance without the lease: %v, want conflict", err)
		}
		if n := len(logged(t, db)); n != 1 {
			t.Fatalf("a refused advance left %d events, want only the OrderCreated", n)
		}
		if err := s.Advance(ctx, orders.Guard{Owner: "me"}, orders.Transition{Saga: sent}, rec, []event.Event{cmd}); err != nil {
			t.Fatal(err)
		}
		// A reply applies only to the state it was matched against.
		stale := claimed[0] // not awaiting: a reply judged on it is out of date
		tr := sent.Next(orders.Refused, "payment declined", now)
		if err := s.Advance(ctx, orders.Guard{Expect: &stale}, tr, nil, nil); !fail.Is(err, fail.Conflict) {
			t.Fatalf("advance on a stale state: %v, want conflict", err)
		}
		if err := s.Advance(ctx, orders.Guard{Expect: &sent}, tr, []orders.StepRecord{{OrderID: o.ID, Step: orders.StepCharge, Result: "refused", At: now}}, nil); err != nil {
			t.Fatal(err)
		}
		sg, _ := s.Saga(ctx, o.ID)
		if sg.Step != orders.StepRefund || !sg.Compensating || sg.Awaiting || sg.CardToken != "" {
			t.Fatalf("saga = %+v, want refund next, not awaiting, token dropped", sg)
		}
		final := orders.Transition{Saga: sg, Final: orders.Cancelled}
		final.Saga.Step = orders.StepDone
		if err := s.Advance(ctx, orders.Guard{Expect: &sg}, final, []orders.StepRecord{{OrderID: o.ID, Step: orders.StepRefund, Result: "ok", At: now}}, nil); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Order(ctx, o.ID)
		if got.Status != orders.Cancelled || got.CancelReason != "payment declined" {
			t.Errorf("order = %s (%q), want CANCELLED (payment declined)", got.Status, got.CancelReason)
		}
		if left, _ := s.ClaimSagas(ctx, "me", now.Add(time.Hour), time.Minute, 10); len(left) != 0 {
			t.Errorf("an ended saga was claimed again: %+v", left)
		}
		hist, err := s.History(ctx, o.ID)
		if err != nil || len(hist) != 3 {
			t.Errorf("history = %+v, %v; want sent, refused, ok", hist, err)
		}
	})
}

func TestKnownProductsAndSettings(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, _ := open(t, d)
		ctx := context.Background()
		if _, err := s.KnownProduct(ctx, "p1"); !fail.Is(err, fail.NotFound) {
			t.Fatalf("unknown product: %v", err)
		}
		for _, price := range []int64{500, 450} {
			if err := s.RememberProduct(ctx, orders.Product{ID: "p1", PriceCents: price, Currency: "USD"}); err != nil {
				t.Fatal(err)
			}
			if p, err := s.KnownProduct(ctx, "p1"); err != nil || p.PriceCents != price {
				t.Fatalf("known product = %+v, %v; want price %d", p, err, price)
			}
		}
		if _, ok, err := s.Settings(ctx); ok || err != nil {
			t.Fatalf("fresh settings: ok=%v err=%v, want none", ok, err)
		}
		if err := s.SaveSettings(ctx, orders.Settings{SagaMode: "parallel"}); err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := s.Settings(ctx); !ok || got.SagaMode != "parallel" {
			t.Fatalf("settings = %+v", got)
		}
	})
}

// TestReadModelIsOrderIndependentAndRebuildable applies an order's events in
// both orders, and rebuilds the model from the log, with the same result.
func TestReadModelIsOrderIndependentAndRebuildable(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		s, db := open(t, d)
		ctx := context.Background()
		o := newOrder("u1", orders.ModeParallel)
		c := orders.OrderCreated{OrderID: o.ID, UserID: "u1", Saga: o.Saga, Items: o.Items, TotalCents: 1000, Currency: "USD", CreatedAt: o.CreatedAt}
		end := orders.OrderEnded{OrderID: o.ID, UserID: "u1", Saga: o.Saga, Reason: "payment declined", UpdatedAt: o.CreatedAt.Add(time.Second)}
		if err := s.ApplyEnded(ctx, orders.Cancelled, end); err != nil { // the end first
			t.Fatal(err)
		}
		if p, _ := s.ViewsByUser(ctx, "u1", orders.PlacedHere, "", 10); len(p.Orders) != 0 {
			t.Fatalf("a view without its creation is listed: %+v", p.Orders)
		}
		if err := s.ApplyCreated(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := s.ApplyCustomer(ctx, "u1", "Ada", time.Now()); err != nil {
			t.Fatal(err)
		}
		p, err := s.ViewsByUser(ctx, "u1", orders.PlacedHere, "", 10)
		if err != nil || len(p.Orders) != 1 {
			t.Fatalf("views = %+v, %v", p, err)
		}
		v := p.Orders[0]
		if v.Status != orders.Cancelled || v.CancelReason != "payment declined" || v.TotalCents != 1000 || v.CustomerName != "Ada" {
			t.Errorf("view = %+v, want the cancelled order with all its fields", v)
		}

		// Rebuild from the log: orders' own events, committed with their state.
		ctx2 := context.Background()
		err = db.Atomic(ctx2, func(ctx context.Context) error {
			ce, _ := event.New("orders", orders.TopicOrderCreated, "OrderCreated", 1, o.ID, c)
			ee, _ := event.New("orders", orders.TopicOrderCancelled, "OrderCancelled", 1, o.ID, end)
			return outbox.Add(ctx, db, ce, ee)
		})
		if err != nil {
			t.Fatal(err)
		}
		proj := orders.NewProjector(s)
		n, err := s.RebuildViews(ctx, func(ctx context.Context, e event.Event) error {
			switch e.Topic {
			case orders.TopicOrderCreated:
				var c orders.OrderCreated
				_ = e.Decode(&c)
				return proj.Created(ctx, c)
			case orders.TopicOrderCancelled:
				var end orders.OrderEnded
				_ = e.Decode(&end)
				return proj.Ended(ctx, orders.Cancelled, end)
			}
			return errors.New("unexpected " + e.Topic)
		})
		if err != nil || n != 2 {
			t.Fatalf("rebuild = %d, %v; want 2 events", n, err)
		}
		again, _ := s.ViewsByUser(ctx, "u1", orders.PlacedHere, "", 10)
		if len(again.Orders) != 1 || again.Orders[0].Status != v.Status || again.Orders[0].TotalCents != v.TotalCents || again.Orders[0].CancelReason != v.CancelReason {
			t.Errorf("rebuilt = %+v, want %+v", again.Orders, v)
		}
	})
}

func TestMigrationsRoundTripOnEveryDialect(t *testing.T) {
	sqldbtest.MigrationsRoundTrip(t, Migrations)
}
