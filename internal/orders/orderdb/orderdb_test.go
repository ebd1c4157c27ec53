package orderdb

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/sqldb"
)

func open(t *testing.T) (*Store, *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, Migrations); err != nil {
		t.Fatal(err)
	}
	return New(db), db
}

func newOrder(user string) orders.Order {
	now := time.Now().UTC()
	return orders.Order{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: user, Status: orders.Pending,
		Items:      []orders.Item{{ProductID: "p1", Quantity: 2, PriceCents: 500}},
		TotalCents: 1000, Currency: "USD", Saga: orders.ModeOrchestration,
		Address:   orders.Address{Name: "Ada", Line1: "1 Main", City: "X", PostalCode: "1", Country: "GB"},
		CreatedAt: now, UpdatedAt: now,
	}
}

func TestMigrationsUpDownUp(t *testing.T) {
	_, db := open(t)
	ctx := context.Background()
	if err := db.MigrateDown(ctx, Migrations); err != nil {
		t.Fatalf("down: %v", err)
	}
	if err := db.Migrate(ctx, Migrations); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

func TestCreateAndRead(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	o := newOrder("u1")
	if err := s.Create(ctx, o, orders.NewSaga(o, "4242424242424242", time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != o.ID || got.TotalCents != 1000 || got.Items[0] != o.Items[0] || got.Address != o.Address || got.Status != orders.Pending {
		t.Errorf("read back %+v, want %+v", got, o)
	}
	if _, err := s.Order(ctx, "nope"); !fail.Is(err, fail.NotFound) {
		t.Errorf("Order(unknown) = %v, want not found", err)
	}
}

func TestIdempotencyKeyIsTakenOnce(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	a, b := newOrder("u1"), newOrder("u1")
	ra := &orders.Replay{UserID: "u1", Key: "k", Fingerprint: "f", OrderID: a.ID}
	rb := &orders.Replay{UserID: "u1", Key: "k", Fingerprint: "f", OrderID: b.ID}
	if err := s.Create(ctx, a, orders.NewSaga(a, "", time.Now()), ra); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, b, orders.NewSaga(b, "", time.Now()), rb); !fail.Is(err, fail.Conflict) {
		t.Fatalf("second use of the key: %v, want conflict", err)
	}
	if _, err := s.Order(ctx, b.ID); !fail.Is(err, fail.NotFound) {
		t.Error("the losing order was stored anyway")
	}
	r, err := s.Replay(ctx, "u1", "k")
	if err != nil || r.OrderID != a.ID {
		t.Errorf("Replay = %+v, %v; want order %s", r, err, a.ID)
	}
	// Keys are per user.
	c := newOrder("u2")
	if err := s.Create(ctx, c, orders.NewSaga(c, "", time.Now()), &orders.Replay{UserID: "u2", Key: "k", Fingerprint: "f", OrderID: c.ID}); err != nil {
		t.Errorf("another user's same key: %v", err)
	}
}

func TestListsArePagedAndOrdered(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	var ids []string
	for range 5 {
		o := newOrder("u1")
		ids = append(ids, o.ID)
		if err := s.Create(ctx, o, orders.NewSaga(o, "", time.Now()), nil); err != nil {
			t.Fatal(err)
		}
	}
	other := newOrder("u2")
	if err := s.Create(ctx, other, orders.NewSaga(other, "", time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	p1, err := s.ListByUser(ctx, "u1", "", 3)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.ListByUser(ctx, "u1", p1.Next, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range append(p1.Orders, p2.Orders...) {
		got = append(got, o.ID)
	}
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if len(got) != len(want) || p2.Next != "" {
		t.Fatalf("pages = %v (next %q), want %v", got, p2.Next, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("newest first: got %v, want %v", got, want)
		}
	}
	all, err := s.ListAll(ctx, "", 100)
	if err != nil || len(all.Orders) != 6 {
		t.Fatalf("ListAll = %d orders, %v; want 6", len(all.Orders), err)
	}
}

// TestLeasesKeepSagasToOneRunner claims concurrently from many runners and
// checks no saga is handed out twice while its lease lasts.
func TestLeasesKeepSagasToOneRunner(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	now := time.Now()
	const n = 40
	for range n {
		o := newOrder("u1")
		if err := s.Create(ctx, o, orders.NewSaga(o, "", now), nil); err != nil {
			t.Fatal(err)
		}
	}
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
	// After the lease runs out, another runner takes over.
	later, err := s.ClaimSagas(ctx, "runner-z", now.Add(2*time.Minute), time.Minute, n)
	if err != nil || len(later) != n {
		t.Fatalf("after expiry claimed %d, %v; want %d", len(later), err, n)
	}
}

func TestAdvanceNeedsTheLeaseAndEndsTheOrder(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	now := time.Now()
	o := newOrder("u1")
	if err := s.Create(ctx, o, orders.NewSaga(o, "4242424242424242", now), nil); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.ClaimSagas(ctx, "me", now, time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	sg := claimed[0]
	if sg.Card != "4242424242424242" {
		t.Errorf("card = %q, want it held until the charge", sg.Card)
	}
	tr := sg.Next(orders.Refused, "payment declined", now)
	rec := orders.StepRecord{OrderID: o.ID, Step: sg.Step, Result: "refused", Detail: "payment declined", At: now}
	if err := s.Advance(ctx, "someone-else", tr, rec); !fail.Is(err, fail.Conflict) {
		t.Fatalf("advance without the lease: %v, want conflict", err)
	}
	if err := s.Advance(ctx, "me", tr, rec); err != nil {
		t.Fatal(err)
	}
	// The refund step is due now and the lease was released.
	next, err := s.ClaimSagas(ctx, "me", now, time.Minute, 1)
	if err != nil || len(next) != 1 || next[0].Step != orders.StepRefund || next[0].Card != "" {
		t.Fatalf("next claim = %+v, %v; want the refund step with the card erased", next, err)
	}
	tr = next[0].Next(orders.Succeeded, "", now)
	if err := s.Advance(ctx, "me", tr, orders.StepRecord{OrderID: o.ID, Step: orders.StepRefund, Result: "ok", At: now}); err != nil {
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
	if err != nil || len(hist) != 2 || hist[0].Step != orders.StepCharge || hist[1].Step != orders.StepRefund {
		t.Errorf("history = %+v, %v", hist, err)
	}
}

func TestSettings(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if _, ok, err := s.Settings(ctx); ok || err != nil {
		t.Fatalf("fresh settings: ok=%v err=%v, want none", ok, err)
	}
	for _, mode := range []string{"orchestration", "parallel"} {
		if err := s.SaveSettings(ctx, orders.Settings{SagaMode: mode}); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Settings(ctx)
		if !ok || err != nil || got.SagaMode != mode {
			t.Fatalf("settings = %+v %v %v, want %s", got, ok, err, mode)
		}
	}
}
