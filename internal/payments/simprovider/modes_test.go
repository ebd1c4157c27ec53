package simprovider_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/natsbus/natsbustest"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/paymentevents"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want simprovider.Mode
		ok   bool
	}{
		{"ok", simprovider.ModeOK, true},
		{"timeout", simprovider.ModeTimeout, true},
		{"fail", simprovider.ModeFail, true},
		{"", "", false},
		{"OK", "", false},
		{"down", "", false},
	} {
		got, err := simprovider.ParseMode(tc.in)
		if got != tc.want || (err == nil) != tc.ok || (err != nil && !fail.Is(err, fail.Invalid)) {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, ok=%v (fail.Invalid otherwise)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	p := simprovider.New()
	if err := p.SetMode("sometimes"); err == nil || p.Mode() != simprovider.ModeOK {
		t.Errorf("SetMode(sometimes) = %v, mode %q; want an error and ok unchanged", err, p.Mode())
	}
	for _, m := range simprovider.Modes {
		if m.Expect() == "" {
			t.Errorf("mode %q says nothing of what to expect", m)
		}
	}
}

func TestModes(t *testing.T) {
	const good = "4242424242424242"
	t.Run("fail answers an error at once, whatever the card", func(t *testing.T) {
		p := simprovider.New()
		if err := p.SetMode(simprovider.ModeFail); err != nil {
			t.Fatal(err)
		}
		for _, card := range []string{good, simprovider.DeclinedCard} {
			if d, err := p.Charge(context.Background(), "order-1", card, 100); !errors.Is(err, simprovider.ErrProviderFailed) || d.Approved {
				t.Errorf("Charge(%s) in fail mode = %+v, %v; want ErrProviderFailed", card, d, err)
			}
		}
	})
	t.Run("timeout hangs until the caller's deadline", func(t *testing.T) {
		p := simprovider.New()
		if err := p.SetMode(simprovider.ModeTimeout); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		// The error is the caller's deadline, not a timer of the
		// provider's: it waited for the caller to give up.
		if _, err := p.Charge(ctx, "order-1", good, 100); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Charge in timeout mode = %v, want the caller's deadline exceeded", err)
		}
	})
	t.Run("ok again answers by card", func(t *testing.T) {
		p := simprovider.New()
		for _, m := range []simprovider.Mode{simprovider.ModeFail, simprovider.ModeOK} {
			if err := p.SetMode(m); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := p.Charge(context.Background(), "order-1", good, 100); err != nil || !d.Approved {
			t.Errorf("Charge after switching back to ok = %+v, %v; want approved", d, err)
		}
		if p.Calls() != 1 {
			t.Errorf("Calls() = %d, want 1", p.Calls())
		}
	})
}

// TestATimedOutChargeRecordsNothing: through the payments service, a
// provider that hangs costs the charge its caller's deadline, answers
// fail.Unavailable and records no payment, so that a retry is free to
// charge once the provider answers again.
func TestATimedOutChargeRecordsNothing(t *testing.T) {
	db := sqldbtest.OpenMessaging(t, "payments", paymentdb.Migrations)
	p := simprovider.New()
	svc := payments.NewService(paymentdb.New(db), p)
	req := payments.ChargeRequest{OrderID: "order-1", UserID: "user-1", AmountCents: 900, Currency: "USD", Card: "4242424242424242"}
	if err := p.SetMode(simprovider.ModeTimeout); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := svc.Charge(ctx, req); !fail.Is(err, fail.Unavailable) {
		t.Fatalf("Charge with a hanging provider = %v, want fail.Unavailable", err)
	}
	if _, err := svc.ByOrder(context.Background(), "order-1"); !fail.Is(err, fail.NotFound) {
		t.Fatalf("after a timed-out charge, ByOrder = %v; want no payment recorded", err)
	}
	if err := p.SetMode(simprovider.ModeOK); err != nil {
		t.Fatal(err)
	}
	got, created, err := svc.Charge(context.Background(), req)
	if err != nil || !created || got.Status != payments.StatusCaptured {
		t.Fatalf("retry once the provider answers = %+v, created %v, %v; want a new CAPTURED payment", got, created, err)
	}
	if p.Calls() != 2 {
		t.Errorf("provider calls = %d, want 2", p.Calls())
	}
}

// recoveringProvider is the simulated provider in fail mode that switches
// itself back to ok after a number of failed charges, so that the test
// decides by count, not by time, when the provider recovers.
type recoveringProvider struct {
	*simprovider.Provider
	failures int64
}

func (r *recoveringProvider) Charge(ctx context.Context, key, card string, amount int64) (payments.Decision, error) {
	d, err := r.Provider.Charge(ctx, key, card, amount)
	if r.Provider.Calls() >= r.failures {
		_ = r.Provider.SetMode(simprovider.ModeOK)
	}
	return d, err
}

// TestFailModeThroughTheBroker runs the payments consumer on a real
// JetStream broker with the provider failing, and counts what one
// OrderCreated (parallel saga) costs: a provider that recovers within the
// delivery budget gets the order charged once with no dead letter; one that
// does not is tried exactly MaxDeliver times, and the event is
// dead-lettered with nothing charged.
func TestFailModeThroughTheBroker(t *testing.T) {
	for _, tc := range []struct {
		name         string
		failures     int64 // failed charges before the provider recovers
		wantCalls    int64
		wantStatus   payments.Status
		wantDeadSize int
	}{
		// Within one delivery payments tries the provider ProviderAttempts
		// times; a provider that never answers is recorded as a decline, so
		// the saga compensates and the order ends, with nothing dead-lettered.
		{"recovers within the budget", 2, 3, payments.StatusCaptured, 0},
		{"never recovers", 1 << 30, payments.ProviderAttempts, payments.StatusDeclined, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := sqldbtest.OpenMessaging(t, "payments", paymentdb.Migrations)
			sim := simprovider.New()
			if err := sim.SetMode(simprovider.ModeFail); err != nil {
				t.Fatal(err)
			}
			svc := payments.NewService(paymentdb.New(db), &recoveringProvider{Provider: sim, failures: tc.failures})
			card, err := svc.Tokenize(context.Background(), "4242424242424242")
			if err != nil {
				t.Fatal(err)
			}
			in := inbox.New(db, "payments", nil)
			broker := natsbustest.Embedded(t, "payments")
			ready := make(chan struct{})
			var once atomic.Bool
			sub := readySubscriber{Subscriber: broker, ready: func() {
				if once.CompareAndSwap(false, true) {
					close(ready)
				}
			}}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- paymentevents.Consume(ctx, sub, in, svc, nil) }()
			t.Cleanup(func() { cancel(); <-done })
			<-ready

			e, err := event.New("orders", paymentevents.TopicOrderCreated, "OrderCreated", 1, "order-1", map[string]any{
				"order_id": "order-1", "user_id": "user-1", "saga": "parallel", "total_cents": 900, "currency": "USD", "card_token": card.Token,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := broker.Publish(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the event is applied or dead-lettered", func() bool {
				return applied(t, db) == 1 || len(deadLetters(t, in)) == 1
			})
			status := payments.Status("NONE")
			if p, err := svc.ByOrder(context.Background(), "order-1"); err == nil {
				status = p.Status
			}
			dead := len(deadLetters(t, in))
			if sim.Calls() != tc.wantCalls || status != tc.wantStatus || dead != tc.wantDeadSize {
				t.Errorf("provider calls %d, payment %s, dead letters %d; want %d, %s, %d",
					sim.Calls(), status, dead, tc.wantCalls, tc.wantStatus, tc.wantDeadSize)
			}
			t.Logf("verdict: mode=fail failures_before_recovery=%d provider_calls=%d payment=%s dead_letters=%d max_deliver=%d",
				min(tc.failures, sim.Calls()), sim.Calls(), status, dead, bus.DefaultMaxDeliver)
		})
	}
}

// readySubscriber tells the test when the subscription exists.
type readySubscriber struct {
	bus.Subscriber
	ready func()
}

func (s readySubscriber) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	sub.Ready = s.ready
	return s.Subscriber.Subscribe(ctx, sub, h)
}

func applied(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM inbox WHERE consumer_group = ?`, paymentevents.Group).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func deadLetters(t *testing.T, in *inbox.Inbox) []inbox.DeadLetter {
	t.Helper()
	dls, _, err := in.List(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

// waitFor polls ok, failing the test after a generous bound that is no
// speed requirement.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
