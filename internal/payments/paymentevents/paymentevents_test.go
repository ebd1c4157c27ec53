package paymentevents_test

import (
	"context"
	"slices"
	"sync"
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

// countingProvider counts the charges that reach the provider.
type countingProvider struct {
	calls atomic.Int64
	next  payments.Provider
}

func (c *countingProvider) Charge(ctx context.Context, key, card string, amount int64) (payments.Decision, error) {
	c.calls.Add(1)
	return c.next.Charge(ctx, key, card, amount)
}

// service is a payments service on a real database with its inbox.
type service struct {
	svc      *payments.Service
	db       *sqldb.DB
	in       *inbox.Inbox
	provider *countingProvider
	good     string // a token for a card the provider accepts
}

func newService(t *testing.T) *service {
	t.Helper()
	ctx := context.Background()
	db := sqldbtest.OpenMessaging(t, "payments", paymentdb.Migrations)
	s := &service{db: db, in: inbox.New(db, "", nil), provider: &countingProvider{next: simprovider.New()}}
	s.svc = payments.NewService(paymentdb.New(db), s.provider)
	card, err := s.svc.Tokenize(ctx, "4242424242424242")
	if err != nil {
		t.Fatal(err)
	}
	s.good = card.Token
	return s
}

// consume runs Consume until the test ends, and checks that it returns nil
// once its context is cancelled.
func (s *service) consume(t *testing.T, sub bus.Subscriber) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- paymentevents.Consume(ctx, sub, s.in, s.svc, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Consume returned %v after its context ended, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Consume did not return after its context ended")
		}
	})
}

// status is the order's payment status, or "NONE" without a payment.
func (s *service) status(t *testing.T, order string) payments.Status {
	t.Helper()
	p, err := s.svc.ByOrder(context.Background(), order)
	if fail.Is(err, fail.NotFound) {
		return "NONE"
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.Status
}

// published returns "Type order_id" of every event in the outbox, oldest first.
func (s *service) published(t *testing.T) []string {
	t.Helper()
	out := []string{}
	for _, e := range sqldbtest.Outbox(t, s.db) {
		out = append(out, e.Type+" "+e.Key)
	}
	return out
}

// applied counts the events the payments group has recorded in its inbox.
func (s *service) applied(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM inbox WHERE consumer_group = ?`, paymentevents.Group).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// deadLetters returns the ids of the events in the dead letters.
func (s *service) deadLetters(t *testing.T) []string {
	t.Helper()
	dls, _, err := s.in.List(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, dl := range dls {
		ids = append(ids, dl.EventID)
	}
	return ids
}

func newEvent(t *testing.T, source, topic, typ, order string, payload map[string]any) event.Event {
	t.Helper()
	e, err := event.New(source, topic, typ, 1, order, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// checkout is a set of messages covering every topic payments consumes,
// with the state each leaves and the events each makes payments publish.
type checkout struct {
	events     []event.Event
	poison     []event.Event // invalid: to be dead-lettered, changing nothing
	wantStatus map[string]payments.Status
	want       []string // published, in any order
}

func newCheckout(t *testing.T, good string) checkout {
	created := func(order, saga string) event.Event {
		return newEvent(t, "orders", paymentevents.TopicOrderCreated, "OrderCreated", order, map[string]any{
			"order_id": order, "user_id": "user-1", "saga": saga, "total_cents": 900, "currency": "USD", "card_token": good,
			"items":            []map[string]any{{"product_id": "p1", "quantity": 1, "price_cents": 900}}, // read by others only
			"shipping_address": map[string]any{"name": "Ada"},
		})
	}
	charge := func(order string) event.Event {
		return newEvent(t, "orders", paymentevents.TopicChargeCommand, "ChargePayment", order, map[string]any{
			"order_id": order, "user_id": "user-1", "amount_cents": 500, "currency": "USD", "card_token": good, "saga": "orchestration",
		})
	}
	about := func(source, topic, typ, order, saga string) event.Event {
		return newEvent(t, source, topic, typ, order, map[string]any{"order_id": order, "saga": saga, "reason": "out of stock"})
	}
	return checkout{
		events: []event.Event{
			created("par-paid", "parallel"),
			created("orch-placed", "orchestration"),
			charge("orch-charged"),
			created("par-short", "parallel"),
			about("inventory", paymentevents.TopicReservationFailed, "ReservationFailed", "par-short", "parallel"),
			about("inventory", paymentevents.TopicCommitFailed, "CommitFailed", "choreo-void", "choreography"),
			charge("orch-refunded"),
			about("orders", paymentevents.TopicRefundCommand, "RefundPayment", "orch-refunded", "orchestration"),
			about("orders", paymentevents.TopicOrderCancelled, "OrderCancelled", "orch-cancelled", "orchestration"),
		},
		poison: []event.Event{
			newEvent(t, "orders", paymentevents.TopicOrderCreated, "OrderCreated", "", map[string]any{"saga": "parallel", "total_cents": 900, "currency": "USD", "card_token": good, "user_id": "u"}),
			newEvent(t, "orders", paymentevents.TopicOrderCancelled, "OrderCancelled", "bad-saga", map[string]any{"order_id": "bad-saga", "saga": "waterfall"}),
			newEvent(t, "orders", paymentevents.TopicChargeCommand, "ChargePayment", "bad-json", map[string]any{"order_id": 42}),
			// An order without the card token Reads requires is refused,
			// not charged.
			newEvent(t, "orders", paymentevents.TopicOrderCreated, "OrderCreated", "no-token", map[string]any{
				"order_id": "no-token", "user_id": "u", "saga": "parallel", "total_cents": 900, "currency": "USD",
			}),
		},
		wantStatus: map[string]payments.Status{
			"par-paid": payments.StatusCaptured, "orch-placed": "NONE", "orch-charged": payments.StatusCaptured,
			"choreo-void": payments.StatusVoided, "orch-cancelled": payments.StatusVoided,
			"bad-saga": "NONE", "bad-json": "NONE", "no-token": "NONE",
		},
		want: []string{
			"PaymentProcessed par-paid", "PaymentProcessed orch-charged",
			"PaymentRefunded choreo-void", "PaymentRefunded orch-cancelled",
		},
	}
}

// racing are the orders whose charge and refund a broker may hand over in
// either order, or at once: charged then refunded, or voided then refused.
// Both leave no money held and a settled answer.
var racing = []string{"par-short", "orch-refunded"}

func checkRacing(t *testing.T, s *service, published []string) {
	t.Helper()
	for _, order := range racing {
		var want []string
		switch got := s.status(t, order); got {
		case payments.StatusRefunded:
			want = []string{"PaymentProcessed " + order, "PaymentRefunded " + order}
		case payments.StatusVoided:
			want = []string{"PaymentFailed " + order, "PaymentRefunded " + order}
		default:
			t.Errorf("payment of %s = %s, want REFUNDED or VOIDED", order, got)
			continue
		}
		var got []string
		for _, e := range published {
			if _, o, _ := cutLast(e); o == order {
				got = append(got, e)
			}
		}
		if !slices.Equal(sorted(got), want) {
			t.Errorf("published for %s: %v, want %v", order, got, want)
		}
	}
}

// settled drops the events of the racing orders.
func settled(events []string) []string {
	return slices.DeleteFunc(slices.Clone(events), func(e string) bool {
		_, o, _ := cutLast(e)
		return slices.Contains(racing, o)
	})
}

func cutLast(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// stutter is a bus.Subscriber that hands every event to the handler three
// times at once, as a broker redelivering and a relay republishing might,
// retries a failed delivery up to MaxDeliver attempts and then hands it to
// the dead-letter handler, as a broker does.
type stutter struct {
	events []event.Event
	done   chan struct{} // closed once every event has been handled
}

func (s *stutter) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	sub = sub.WithDefaults()
	if err := sub.Validate(); err != nil {
		return err
	}
	for _, e := range s.events {
		if !slices.Contains(sub.Topics, e.Topic) {
			continue
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				var err error
				attempt := 0
				for attempt < sub.MaxDeliver {
					attempt++
					if err = h(ctx, bus.Delivery{Event: e, Attempt: attempt}); err == nil {
						return
					}
				}
				for sub.DeadLetter(ctx, bus.Delivery{Event: e, Attempt: attempt}, nil, err) != nil {
					if ctx.Err() != nil {
						return
					}
				}
			})
		}
		wg.Wait()
	}
	close(s.done)
	<-ctx.Done()
	return nil
}

func TestEveryEventDeliveredThreeTimesIsAppliedOnce(t *testing.T) {
	s := newService(t)
	c := newCheckout(t, s.good)
	sub := &stutter{events: slices.Concat(c.events, c.poison), done: make(chan struct{})}
	s.consume(t, sub)
	select {
	case <-sub.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the events were not all handled")
	}

	for order, want := range c.wantStatus {
		if got := s.status(t, order); got != want {
			t.Errorf("payment of %s = %s, want %s", order, got, want)
		}
	}
	published := s.published(t)
	checkRacing(t, s, published)
	if got, want := sorted(settled(published)), sorted(c.want); !slices.Equal(got, want) {
		t.Errorf("published\n got %v\nwant %v (each once)", got, want)
	}
	// The events come one after the other, so the racing orders are
	// charged before they are refunded: four orders charged, once each.
	if got := s.provider.calls.Load(); got != 4 {
		t.Errorf("provider calls = %d, want 4: one per order charged, never one per delivery", got)
	}
	if got := s.applied(t); got != len(c.events) {
		t.Errorf("inbox records = %d, want %d: each valid event once", got, len(c.events))
	}
	var poison []string
	for _, e := range c.poison {
		poison = append(poison, e.ID)
	}
	if got := s.deadLetters(t); !slices.Equal(sorted(got), sorted(poison)) {
		t.Errorf("dead letters = %v, want each poison event once: %v", got, poison)
	}
}

func TestAnUnexpectedTopicIsDeadLettered(t *testing.T) {
	// A topic payments did not subscribe to, delivered anyway, is refused
	// rather than acknowledged unread.
	s := newService(t)
	stray := newEvent(t, "orders", paymentevents.TopicOrderCreated, "OrderCreated", "o1", map[string]any{"order_id": "o1", "saga": "parallel"})
	stray.Topic = "orders.order.completed"
	sub := &stutter{events: []event.Event{stray}, done: make(chan struct{})}
	// The stutter only delivers subscribed topics; hand it over through
	// a subscriber that ignores the filter, as a misconfigured broker would.
	s.consume(t, anyTopic{sub})
	select {
	case <-sub.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the event was not handled")
	}
	if got := s.deadLetters(t); !slices.Equal(got, []string{stray.ID}) {
		t.Errorf("dead letters = %v, want the stray event %s", got, stray.ID)
	}
	if got := s.published(t); len(got) != 0 {
		t.Errorf("published %v, want nothing", got)
	}
}

// anyTopic subscribes its stutter to every topic its events have.
type anyTopic struct{ *stutter }

func (a anyTopic) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	for _, e := range a.events {
		sub.Topics = append(sub.Topics, e.Topic)
	}
	return a.stutter.Subscribe(ctx, sub, h)
}

func TestConsumeOnTheEmbeddedBroker(t *testing.T) {
	ctx := context.Background()
	b := natsbustest.Embedded(t, "paymentevents-test")

	s := newService(t)
	c := newCheckout(t, s.good)
	// Published before anyone subscribes, and each three times: the
	// durable group gets all of them, and applies each once.
	for _, e := range slices.Concat(c.events, c.poison) {
		for range 3 {
			if err := b.Publish(ctx, e); err != nil {
				t.Fatalf("publishing %s: %v", e.Type, err)
			}
		}
	}
	s.consume(t, b)

	deadline := time.Now().Add(60 * time.Second)
	for s.applied(t) < len(c.events) || len(s.deadLetters(t)) < len(c.poison) {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d events applied of %d, %d dead letters of %d",
				s.applied(t), len(c.events), len(s.deadLetters(t)), len(c.poison))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for order, want := range c.wantStatus {
		if got := s.status(t, order); got != want {
			t.Errorf("payment of %s = %s, want %s", order, got, want)
		}
	}
	published := s.published(t)
	checkRacing(t, s, published)
	if got, want := sorted(settled(published)), sorted(c.want); !slices.Equal(got, want) {
		t.Errorf("published\n got %v\nwant %v", got, want)
	}
	if got := s.applied(t); got != len(c.events) {
		t.Errorf("inbox records = %d, want %d", got, len(c.events))
	}
}
