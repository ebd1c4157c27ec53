package payments_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// world is a payments service on a real database, with its outbox readable.
type world struct {
	svc      *payments.Service
	db       *sqldb.DB
	provider *countingProvider
	good     string // a token for a card the provider accepts
	declined string // a token for a card the provider declines
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "payments", paymentdb.Migrations)
	w := &world{db: db, provider: &countingProvider{next: simprovider.New()}}
	w.svc = payments.NewService(paymentdb.New(db), w.provider)
	w.good = w.tokenize(t, goodCard)
	w.declined = w.tokenize(t, declinedCard)
	return w
}

func (w *world) tokenize(t *testing.T, card string) string {
	t.Helper()
	c, err := w.svc.Tokenize(context.Background(), card)
	if err != nil {
		t.Fatalf("Tokenize: %v", err)
	}
	return c.Token
}

// published returns the events in the outbox, oldest first.
func (w *world) published(t *testing.T) []event.Event {
	t.Helper()
	return sqldbtest.Outbox(t, w.db)
}

// status is the order's payment status, or "NONE" without a payment.
func (w *world) status(t *testing.T, order string) payments.Status {
	t.Helper()
	p, err := w.svc.ByOrder(context.Background(), order)
	if fail.Is(err, fail.NotFound) {
		return "NONE"
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.Status
}

// held is the money the order's payment holds: its amount while CAPTURED.
func (w *world) held(t *testing.T, order string) int64 {
	t.Helper()
	p, err := w.svc.ByOrder(context.Background(), order)
	switch {
	case fail.Is(err, fail.NotFound):
		return 0
	case err != nil:
		t.Fatal(err)
	}
	if p.Status != payments.StatusCaptured {
		return 0
	}
	return p.AmountCents
}

// outcome is an event as the tests compare it: its type and the payload
// fields that tell the outcome.
type outcome struct {
	Type   string
	Order  string          `json:"order_id"`
	Status payments.Status `json:"status"`
	Reason string          `json:"reason"`
	Saga   payments.Saga   `json:"saga"`
	Amount int64           `json:"amount_cents"`
}

func (o outcome) String() string {
	return fmt.Sprintf("%s{%s %s %q %s %d}", o.Type, o.Order, o.Status, o.Reason, o.Saga, o.Amount)
}

func outcomes(t *testing.T, events []event.Event) []outcome {
	t.Helper()
	out := []outcome{}
	for _, e := range events {
		var o outcome
		if err := e.Decode(&o); err != nil {
			t.Fatal(err)
		}
		o.Type = e.Type
		if e.Source != payments.Source || e.Key != o.Order || e.Version != 1 {
			t.Errorf("event %s: source %q, key %q, version %d; want payments, the order id, 1", e.ID, e.Source, e.Key, e.Version)
		}
		if want := map[string]string{
			payments.TypePaymentProcessed: payments.TopicPaymentProcessed,
			payments.TypePaymentFailed:    payments.TopicPaymentFailed,
			payments.TypePaymentRefunded:  payments.TopicPaymentRefunded,
		}[e.Type]; e.Topic != want {
			t.Errorf("event %s of type %s went to %q, want %q", e.ID, e.Type, e.Topic, want)
		}
		out = append(out, o)
	}
	return out
}

// A message payments reacts to, as its consumer hands it over.
type message func(ctx context.Context, w *world, order string, saga payments.Saga) error

func placed(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.OrderPlaced(ctx, payments.ChargeRequest{OrderID: order, UserID: "user-1", AmountCents: 900, Currency: "USD", CardToken: w.good, Saga: saga})
}

func placedDeclined(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.OrderPlaced(ctx, payments.ChargeRequest{OrderID: order, UserID: "user-1", AmountCents: 900, Currency: "USD", CardToken: w.declined, Saga: saga})
}

func placedUnknownCard(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.OrderPlaced(ctx, payments.ChargeRequest{OrderID: order, UserID: "user-1", AmountCents: 900, Currency: "USD", CardToken: "card_forged", Saga: saga})
}

func chargeCommand(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.ChargeCommanded(ctx, payments.ChargeRequest{OrderID: order, UserID: "user-1", AmountCents: 900, Currency: "USD", CardToken: w.good, Saga: saga})
}

func inventoryFailed(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.InventoryFailed(ctx, order, saga)
}

func cancelled(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.OrderCancelled(ctx, order, saga)
}

func refundCommand(ctx context.Context, w *world, order string, saga payments.Saga) error {
	return w.svc.RefundCommanded(ctx, order, saga)
}

func TestReactions(t *testing.T) {
	const (
		orch   = payments.SagaOrchestration
		choreo = payments.SagaChoreography
		par    = payments.SagaParallel
	)
	processed := func(saga payments.Saga) outcome {
		return outcome{Type: payments.TypePaymentProcessed, Order: "o1", Saga: saga, Amount: 900}
	}
	failed := func(reason string, saga payments.Saga) outcome {
		return outcome{Type: payments.TypePaymentFailed, Order: "o1", Reason: reason, Saga: saga}
	}
	refunded := func(status payments.Status, amount int64, saga payments.Saga) outcome {
		return outcome{Type: payments.TypePaymentRefunded, Order: "o1", Status: status, Saga: saga, Amount: amount}
	}
	tests := []struct {
		name       string
		before     []message // applied first, under the same saga
		msg        message
		saga       payments.Saga
		wantStatus payments.Status
		want       []outcome // what msg published
	}{
		{"parallel: a placed order is charged", nil, placed, par, payments.StatusCaptured, []outcome{processed(par)}},
		{"choreography: a placed order is charged", nil, placed, choreo, payments.StatusCaptured, []outcome{processed(choreo)}},
		{"orchestration: a placed order waits for the command", nil, placed, orch, "NONE", []outcome{}},
		{"a declined card fails the payment", nil, placedDeclined, choreo, payments.StatusDeclined, []outcome{failed(simprovider.ReasonDeclined, choreo)}},
		{"an unknown card fails the payment", nil, placedUnknownCard, par, payments.StatusDeclined, []outcome{failed(payments.ReasonUnknownCard, par)}},
		{"orchestration: the charge command charges", nil, chargeCommand, orch, payments.StatusCaptured, []outcome{processed(orch)}},
		{"a repeated charge command is answered again", []message{chargeCommand}, chargeCommand, orch, payments.StatusCaptured, []outcome{processed(orch)}},
		{"a late OrderCreated after the command answers again", []message{chargeCommand}, placed, par, payments.StatusCaptured, []outcome{processed(par)}},
		{"parallel: a failed reservation refunds", []message{placed}, inventoryFailed, par, payments.StatusRefunded, []outcome{refunded(payments.StatusRefunded, 900, par)}},
		{"choreography: a failed commit refunds", []message{placed}, inventoryFailed, choreo, payments.StatusRefunded, []outcome{refunded(payments.StatusRefunded, 900, choreo)}},
		{"parallel: a failure before the charge voids", nil, inventoryFailed, par, payments.StatusVoided, []outcome{refunded(payments.StatusVoided, 0, par)}},
		{"orchestration: inventory failures are the orchestrator's", []message{chargeCommand}, inventoryFailed, orch, payments.StatusCaptured, []outcome{}},
		{"a charge after the void fails", []message{inventoryFailed}, placed, par, payments.StatusVoided, []outcome{failed(payments.ErrCalledOff.Error(), par)}},
		{"a cancelled order is refunded in every style", []message{chargeCommand}, cancelled, orch, payments.StatusRefunded, []outcome{refunded(payments.StatusRefunded, 900, orch)}},
		{"a cancellation after the refund answers again", []message{placed, inventoryFailed}, cancelled, par, payments.StatusRefunded, []outcome{refunded(payments.StatusRefunded, 900, par)}},
		{"the refund command refunds", []message{chargeCommand}, refundCommand, orch, payments.StatusRefunded, []outcome{refunded(payments.StatusRefunded, 900, orch)}},
		{"a refund of a decline leaves it declined", []message{placedDeclined}, refundCommand, choreo, payments.StatusDeclined, []outcome{refunded(payments.StatusDeclined, 900, choreo)}},
		{"a charge after the refund tells of the refund", []message{chargeCommand, refundCommand}, chargeCommand, orch, payments.StatusRefunded, []outcome{refunded(payments.StatusRefunded, 900, orch)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			for _, m := range tt.before {
				if err := m(ctx, w, "o1", tt.saga); err != nil {
					t.Fatalf("setting up: %v", err)
				}
			}
			seen := len(w.published(t))
			if err := tt.msg(ctx, w, "o1", tt.saga); err != nil {
				t.Fatalf("reaction = %v, want nil", err)
			}
			if got := w.status(t, "o1"); got != tt.wantStatus {
				t.Errorf("payment status = %s, want %s", got, tt.wantStatus)
			}
			got := outcomes(t, w.published(t)[seen:])
			if !slices.Equal(got, tt.want) {
				t.Errorf("published %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReactionsRefuseInvalidMessages(t *testing.T) {
	// An invalid message is an error, so that it ends in the dead letters;
	// it changes nothing and publishes nothing.
	good := func(w *world) payments.ChargeRequest {
		return payments.ChargeRequest{OrderID: "o1", UserID: "user-1", AmountCents: 900, Currency: "USD", CardToken: w.good, Saga: payments.SagaParallel}
	}
	tests := []struct {
		name string
		run  func(ctx context.Context, w *world) error
		want string // in the error's message
	}{
		{"OrderCreated without order_id", func(ctx context.Context, w *world) error {
			r := good(w)
			r.OrderID = ""
			return w.svc.OrderPlaced(ctx, r)
		}, "order_id"},
		{"OrderCreated without saga", func(ctx context.Context, w *world) error {
			r := good(w)
			r.Saga = ""
			return w.svc.OrderPlaced(ctx, r)
		}, "saga"},
		{"OrderCreated of an unknown saga", func(ctx context.Context, w *world) error {
			r := good(w)
			r.Saga = "waterfall"
			return w.svc.OrderPlaced(ctx, r)
		}, "saga"},
		{"OrderCreated without a card token", func(ctx context.Context, w *world) error {
			r := good(w)
			r.CardToken = ""
			return w.svc.OrderPlaced(ctx, r)
		}, "card"},
		{"OrderCreated without a total", func(ctx context.Context, w *world) error {
			r := good(w)
			r.AmountCents = 0
			return w.svc.OrderPlaced(ctx, r)
		}, "amount_cents"},
		{"charge command without user", func(ctx context.Context, w *world) error {
			r := good(w)
			r.UserID = ""
			return w.svc.ChargeCommanded(ctx, r)
		}, "user_id"},
		{"ReservationFailed without order_id", func(ctx context.Context, w *world) error {
			return w.svc.InventoryFailed(ctx, "", payments.SagaParallel)
		}, "order_id"},
		{"OrderCancelled without saga", func(ctx context.Context, w *world) error {
			return w.svc.OrderCancelled(ctx, "o1", "")
		}, "saga"},
		{"refund command of an unknown saga", func(ctx context.Context, w *world) error {
			return w.svc.RefundCommanded(ctx, "o1", "waterfall")
		}, "saga"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			err := tt.run(context.Background(), w)
			if !fail.Is(err, fail.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("reaction = %v, want fail.Invalid naming %q", err, tt.want)
			}
			if got := w.status(t, "o1"); got != "NONE" {
				t.Errorf("payment status = %s, want NONE", got)
			}
			if got := w.published(t); len(got) != 0 {
				t.Errorf("published %d events, want none", len(got))
			}
		})
	}
}

func TestAChargeForAnotherAmountIsRefused(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := placed(ctx, w, "o1", payments.SagaParallel); err != nil {
		t.Fatal(err)
	}
	seen := len(w.published(t))
	err := w.svc.ChargeCommanded(ctx, payments.ChargeRequest{OrderID: "o1", UserID: "user-1", AmountCents: 901, Currency: "USD", CardToken: w.good, Saga: payments.SagaOrchestration})
	if !fail.Is(err, fail.Conflict) {
		t.Fatalf("charge for another amount = %v, want fail.Conflict (to be dead-lettered)", err)
	}
	if got := len(w.published(t)); got != seen {
		t.Errorf("published %d events, want none for a refused charge", got-seen)
	}
}

// permutations returns every order of msgs.
func permutations(msgs []string) [][]string {
	if len(msgs) <= 1 {
		return [][]string{slices.Clone(msgs)}
	}
	var out [][]string
	for i, m := range msgs {
		rest := slices.Concat(msgs[:i], msgs[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]string{m}, p...))
		}
	}
	return out
}

func TestAnyArrivalOrderSettlesTheSame(t *testing.T) {
	// However the messages of a failed checkout arrive, the order ends
	// holding no money, the provider is asked at most once, and the last
	// word payments published about it is a settled one (PaymentFailed or
	// PaymentRefunded), on which orders can cancel.
	messages := map[string]message{
		"OrderCreated": placed, "ReservationFailed": inventoryFailed, "OrderCancelled": cancelled,
		"charge": chargeCommand, "refund": refundCommand,
	}
	tests := []struct {
		saga payments.Saga
		msgs []string
	}{
		{payments.SagaParallel, []string{"OrderCreated", "ReservationFailed", "OrderCancelled"}},
		{payments.SagaChoreography, []string{"OrderCreated", "ReservationFailed", "OrderCancelled"}},
		{payments.SagaOrchestration, []string{"charge", "refund", "OrderCancelled"}},
	}
	for _, tt := range tests {
		for _, order := range permutations(tt.msgs) {
			t.Run(string(tt.saga)+"/"+strings.Join(order, ","), func(t *testing.T) {
				ctx := context.Background()
				w := newWorld(t)
				for _, m := range order {
					if err := messages[m](ctx, w, "o1", tt.saga); err != nil {
						t.Fatalf("%s: %v", m, err)
					}
				}
				if got := w.held(t, "o1"); got != 0 {
					t.Errorf("money held = %d, want 0", got)
				}
				if got := w.provider.calls.Load(); got > 1 {
					t.Errorf("provider asked %d times, want at most once", got)
				}
				events := outcomes(t, w.published(t))
				if len(events) == 0 {
					t.Fatal("published nothing")
				}
				if last := events[len(events)-1]; last.Type == payments.TypePaymentProcessed {
					t.Errorf("last event = %v, want PaymentFailed or PaymentRefunded", last)
				}
				for _, e := range events {
					if e.Saga != tt.saga {
						t.Errorf("event %v names saga %s, want %s", e, e.Saga, tt.saga)
					}
				}
			})
		}
	}
}

func TestTokenize(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, err := w.svc.Tokenize(ctx, "4242 4242 4242 4242")
	if err != nil {
		t.Fatalf("Tokenize: %v", err)
	}
	if a.Last4 != "4242" || a.Token == "" || strings.Contains(a.Token, "4242424242424242") {
		t.Errorf("Tokenize = %+v, want last4 4242 and a token that does not hold the number", a)
	}
	b, err := w.svc.Tokenize(ctx, "4242424242424242")
	if err != nil || b.Token == a.Token {
		t.Errorf("second Tokenize = %+v, %v; want a new token", b, err)
	}
	for _, bad := range []string{"", "4242424242424241", "1234", "4242-4242-4242-4242"} {
		if _, err := w.svc.Tokenize(ctx, bad); !fail.Is(err, fail.Invalid) {
			t.Errorf("Tokenize(%q) = %v, want fail.Invalid", bad, err)
		}
	}
	// A charge to the token charges the card it stands for.
	p, _, err := w.svc.Charge(ctx, payments.ChargeRequest{OrderID: "o1", UserID: "u", AmountCents: 100, Currency: "USD", CardToken: a.Token})
	if err != nil || p.Status != payments.StatusCaptured || p.CardLast4 != "4242" {
		t.Errorf("Charge(token) = %+v, %v; want CAPTURED on 4242", p, err)
	}
	if got := w.provider.calls.Load(); got != 1 {
		t.Errorf("provider calls = %d, want 1", got)
	}
	// An unknown token is declined without asking the provider.
	p, created, err := w.svc.Charge(ctx, payments.ChargeRequest{OrderID: "o2", UserID: "u", AmountCents: 100, Currency: "USD", CardToken: "card_forged"})
	if err != nil || !created || p.Status != payments.StatusDeclined || p.DeclineReason != payments.ReasonUnknownCard || p.CardLast4 != "" {
		t.Errorf("Charge(unknown token) = %+v created %v, %v; want a new DECLINED %q with no digits", p, created, err, payments.ReasonUnknownCard)
	}
	if got := w.provider.calls.Load(); got != 1 {
		t.Errorf("provider calls = %d, want still 1", got)
	}
}
