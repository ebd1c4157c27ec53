package payments_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// countingProvider counts the charges that reach the provider.
type countingProvider struct {
	calls atomic.Int64
	next  payments.Provider
}

func (c *countingProvider) Charge(ctx context.Context, key, card string, amount int64) (payments.Decision, error) {
	c.calls.Add(1)
	return c.next.Charge(ctx, key, card, amount)
}

// downProvider cannot answer, like a provider that is down.
type downProvider struct{}

func (downProvider) Charge(context.Context, string, string, int64) (payments.Decision, error) {
	return payments.Decision{}, errors.New("connection refused")
}

func newStore(t *testing.T) *paymentdb.Store {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "payments", paymentdb.Migrations)
	return paymentdb.New(db)
}

func charge(order string, amount int64, card string) payments.ChargeRequest {
	return payments.ChargeRequest{OrderID: order, UserID: "user-1", AmountCents: amount, Currency: "USD", Card: card}
}

const (
	goodCard     = "4242 4242 4242 4242"
	declinedCard = simprovider.DeclinedCard
)

func TestChargeCapturesOnceAndAnswersRepeats(t *testing.T) {
	ctx := context.Background()
	provider := &countingProvider{next: simprovider.New()}
	svc := payments.NewService(newStore(t), provider)

	first, created, err := svc.Charge(ctx, charge("order-1", 2500, goodCard))
	if err != nil || !created {
		t.Fatalf("first Charge = created %v, %v; want created, nil", created, err)
	}
	if first.Status != payments.StatusCaptured || first.AmountCents != 2500 || first.CardLast4 != "4242" || first.UserID != "user-1" {
		t.Errorf("first Charge = %+v, want CAPTURED 2500 for user-1 with last4 4242", first)
	}
	again, created, err := svc.Charge(ctx, charge("order-1", 2500, goodCard))
	if err != nil || created {
		t.Fatalf("repeat Charge = created %v, %v; want not created, nil", created, err)
	}
	if again.ID != first.ID || again.Status != first.Status || !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("repeat Charge = %+v, want the first payment %+v unchanged", again, first)
	}
	if got := provider.calls.Load(); got != 1 {
		t.Errorf("provider calls = %d, want 1 (a repeat must not reach the provider)", got)
	}

	_, _, err = svc.Charge(ctx, charge("order-1", 2600, goodCard))
	if !fail.Is(err, fail.Conflict) {
		t.Fatalf("Charge for another amount = %v, want fail.Conflict", err)
	}
	got, err := svc.ByOrder(ctx, "order-1")
	if err != nil || got.AmountCents != 2500 || got.Status != payments.StatusCaptured {
		t.Errorf("after the conflict the payment is %+v, %v; want it unchanged", got, err)
	}
}

func TestChargeDeclinedIsRecordedAndFinal(t *testing.T) {
	ctx := context.Background()
	svc := payments.NewService(newStore(t), simprovider.New())

	p, created, err := svc.Charge(ctx, charge("order-1", 500, declinedCard))
	if err != nil || !created {
		t.Fatalf("Charge = created %v, %v; want created, nil", created, err)
	}
	if p.Status != payments.StatusDeclined || p.DeclineReason != simprovider.ReasonDeclined {
		t.Errorf("Charge = %s %q, want DECLINED %q", p.Status, p.DeclineReason, simprovider.ReasonDeclined)
	}
	// A retry with a good card does not turn a decline into a capture: the
	// order's payment is decided.
	again, created, err := svc.Charge(ctx, charge("order-1", 500, goodCard))
	if err != nil || created || again.ID != p.ID || again.Status != payments.StatusDeclined {
		t.Errorf("repeat Charge = %+v created %v, %v; want the declined payment unchanged", again, created, err)
	}
}

func TestChargeInvalidChangesNothing(t *testing.T) {
	ctx := context.Background()
	provider := &countingProvider{next: simprovider.New()}
	svc := payments.NewService(newStore(t), provider)

	_, _, err := svc.Charge(ctx, charge("order-1", 500, "4242424242424241"))
	if !fail.Is(err, fail.Invalid) {
		t.Fatalf("Charge with a bad card = %v, want fail.Invalid", err)
	}
	if got := provider.calls.Load(); got != 0 {
		t.Errorf("provider calls = %d, want 0", got)
	}
	if _, err := svc.ByOrder(ctx, "order-1"); !fail.Is(err, fail.NotFound) {
		t.Errorf("ByOrder after a refused charge = %v, want fail.NotFound", err)
	}
}

func TestChargeProviderErrorRecordsNothing(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)

	_, _, err := payments.NewService(store, downProvider{}).Charge(ctx, charge("order-1", 500, goodCard))
	if !fail.Is(err, fail.Unavailable) {
		t.Fatalf("Charge with the provider down = %v, want fail.Unavailable", err)
	}
	if _, err := store.ByOrder(ctx, "order-1"); !fail.Is(err, fail.NotFound) {
		t.Fatalf("ByOrder after the provider failed = %v, want fail.NotFound", err)
	}

	// Once the provider is back, the retry charges.
	p, created, err := payments.NewService(store, simprovider.New()).Charge(ctx, charge("order-1", 500, goodCard))
	if err != nil || !created || p.Status != payments.StatusCaptured {
		t.Fatalf("retry = %+v created %v, %v; want a new CAPTURED payment", p, created, err)
	}
}

// barrierProvider holds every charge until n have arrived, so that all the
// callers of a race have looked for an existing payment, found none, and
// asked the provider before any of them records one.
type barrierProvider struct {
	arrived sync.WaitGroup
	next    payments.Provider
}

func newBarrierProvider(n int) *barrierProvider {
	b := &barrierProvider{next: simprovider.New()}
	b.arrived.Add(n)
	return b
}

func (b *barrierProvider) Charge(ctx context.Context, key, card string, amount int64) (payments.Decision, error) {
	b.arrived.Done()
	b.arrived.Wait()
	return b.next.Charge(ctx, key, card, amount)
}

func TestChargeRaceRecordsOnePayment(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	const callers = 10
	svc := payments.NewService(store, newBarrierProvider(callers))

	var (
		wg      sync.WaitGroup
		ids     [callers]string
		errs    [callers]error
		created atomic.Int64
		start   = make(chan struct{})
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			p, c, err := svc.Charge(ctx, charge("order-1", 700, goodCard))
			ids[i], errs[i] = p.ID, err
			if c {
				created.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if ids[i] != ids[0] {
			t.Errorf("caller %d got payment %s, caller 0 got %s; want the same", i, ids[i], ids[0])
		}
	}
	if got := created.Load(); got != 1 {
		t.Errorf("callers told created = %d, want 1", got)
	}
	rows, err := store.List(ctx, payments.ListQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("payment rows = %d, want 1", len(rows))
	}
}

func TestRefund(t *testing.T) {
	ctx := context.Background()
	svc := payments.NewService(newStore(t), simprovider.New())
	captured, _, err := svc.Charge(ctx, charge("paid", 900, goodCard))
	if err != nil {
		t.Fatal(err)
	}
	declined, _, err := svc.Charge(ctx, charge("declined", 900, declinedCard))
	if err != nil {
		t.Fatal(err)
	}

	refunded, err := svc.Refund(ctx, "paid", "")
	if err != nil || refunded.Status != payments.StatusRefunded || refunded.ID != captured.ID {
		t.Fatalf("Refund(captured) = %+v, %v; want REFUNDED", refunded, err)
	}
	again, err := svc.Refund(ctx, "paid", "")
	if err != nil || again.Status != payments.StatusRefunded || !again.UpdatedAt.Equal(refunded.UpdatedAt) {
		t.Errorf("Refund again = %+v, %v; want the same REFUNDED answer", again, err)
	}
	d, err := svc.Refund(ctx, "declined", "")
	if err != nil || d.Status != payments.StatusDeclined || d.ID != declined.ID {
		t.Errorf("Refund(declined) = %+v, %v; want it DECLINED, unchanged", d, err)
	}
	// A refund before any charge voids the order: a late charge is refused
	// and takes nothing.
	v, err := svc.Refund(ctx, "nobody", "")
	if err != nil || v.Status != payments.StatusVoided || v.AmountCents != 0 {
		t.Errorf("Refund(unknown) = %+v, %v; want VOIDED of nothing", v, err)
	}
	if again, err := svc.Refund(ctx, "nobody", ""); err != nil || again.ID != v.ID {
		t.Errorf("Refund(voided) again = %+v, %v; want the same VOIDED payment", again, err)
	}
	if _, _, err := svc.Charge(ctx, charge("nobody", 900, goodCard)); !fail.Is(err, fail.Conflict) {
		t.Errorf("Charge after void = %v, want fail.Conflict", err)
	}
	if got, _ := svc.ByOrder(ctx, "nobody"); got.Status != payments.StatusVoided {
		t.Errorf("after a late charge the payment is %s, want still VOIDED", got.Status)
	}
	if _, err := svc.Refund(ctx, "", ""); !fail.Is(err, fail.Invalid) {
		t.Errorf("Refund(\"\") = %v, want fail.Invalid", err)
	}
	// A charge after the refund must not capture again.
	p, created, err := svc.Charge(ctx, charge("paid", 900, goodCard))
	if err != nil || created || p.Status != payments.StatusRefunded {
		t.Errorf("Charge after refund = %s created %v, %v; want REFUNDED, not created", p.Status, created, err)
	}
}

func TestListPages(t *testing.T) {
	ctx := context.Background()
	svc := payments.NewService(newStore(t), simprovider.New())
	var mine []string
	for i := range 5 {
		req := charge(fmt.Sprintf("order-%d", i), 100, goodCard)
		if i%2 == 1 {
			req.UserID = "user-2"
		}
		p, _, err := svc.Charge(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if req.UserID == "user-1" {
			mine = append(mine, p.ID)
		}
	}

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("listing does not end")
		}
		page, err := svc.List(ctx, payments.ListQuery{UserID: "user-1", After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Items {
			got = append(got, p.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(mine) {
		t.Errorf("user-1's pages = %v, want %v", got, mine)
	}

	all, err := svc.List(ctx, payments.ListQuery{Limit: 5})
	if err != nil || len(all.Items) != 5 || all.Next != "" {
		t.Errorf("List(all, limit 5) = %d items, next %q, %v; want 5, no next", len(all.Items), all.Next, err)
	}

	for _, limit := range []int{0, -1, 1001} {
		if _, err := svc.List(ctx, payments.ListQuery{Limit: limit}); !fail.Is(err, fail.Invalid) {
			t.Errorf("List(limit %d) = %v, want fail.Invalid", limit, err)
		}
	}
}
