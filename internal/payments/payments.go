// Package payments is the heart of the payments service: charging an order's
// card through a provider at most once, refunding it, the rules for card
// numbers and amounts, and how payments takes part in each checkout saga. It
// knows nothing of HTTP, SQL or the broker.
//
// Payments is the only service that ever holds a card number. Orders
// exchanges the number for a token (Tokenize) when an order is placed, and
// from then on only the token travels, in events and commands alike; the
// number stays in payments' own store, and a payment keeps only its last four
// digits.
package payments

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Status is where a payment stands.
type Status string

// The statuses a payment can have. A payment is born CAPTURED or DECLINED;
// only a CAPTURED one can become REFUNDED. A refund that arrives before any
// charge (a saga compensating a charge whose answer was lost) records a
// VOIDED payment of nothing, so that the charge, if it arrives late, is
// refused instead of taking money for a cancelled order.
const (
	StatusCaptured Status = "CAPTURED"
	StatusDeclined Status = "DECLINED"
	StatusRefunded Status = "REFUNDED"
	StatusVoided   Status = "VOIDED"
)

// Currency is the only currency the shop charges in.
const Currency = "USD"

// Bounds on a charge, in cents.
const (
	MinAmountCents int64 = 1
	MaxAmountCents int64 = 100_000_000
)

// Bounds on a listing page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxIDBytes bounds the ids other services hand us, so that a hostile caller
// cannot make us store or index megabytes.
const maxIDBytes = 100

// Payment is the one charge made for an order. It keeps only the last four
// digits of the card: the full number is never stored or logged.
type Payment struct {
	ID            string
	OrderID       string
	UserID        string
	AmountCents   int64
	Currency      string
	Status        Status
	CardLast4     string
	DeclineReason string // why the provider declined; empty otherwise
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Decision is a card provider's answer to a charge.
type Decision struct {
	Approved bool
	Reason   string // why it was declined, in the provider's words
}

// Provider takes money from cards. An error means the provider could not
// decide (it is down, or timed out); a decline is a Decision, not an error.
// The idempotency key (the order id) lets a real provider answer a repeated
// charge with the first decision instead of charging again.
type Provider interface {
	Charge(ctx context.Context, idempotencyKey, card string, amountCents int64) (Decision, error)
}

// Store keeps payments, the cards they are charged to, and the events that
// announce them. A method given events stores them in the same transaction
// as its change, so that an event is published if and only if the change
// it announces was made.
type Store interface {
	// Create stores p and events; fail.Conflict if a payment for
	// p.OrderID exists, and then stores neither.
	Create(ctx context.Context, p Payment, events ...event.Event) error
	// ByOrder finds the payment of an order; fail.NotFound if none.
	ByOrder(ctx context.Context, orderID string) (Payment, error)
	// SetStatus moves the payment of orderID from status from to status
	// to, only if it is still in from, and stores events only if it moved
	// it. It returns the payment as it stands afterwards and whether this
	// call moved it; fail.NotFound if there is none.
	SetStatus(ctx context.Context, orderID string, from, to Status, at time.Time, events ...event.Event) (p Payment, moved bool, err error)
	// List returns up to q.Limit payments in id order, after q.After, of
	// q.UserID or of everyone when it is empty.
	List(ctx context.Context, q ListQuery) ([]Payment, error)
	// Announce stores events that announce no new change: the outcome of
	// a repeated command, told again.
	Announce(ctx context.Context, events ...event.Event) error
	// SaveCard stores the card number a token stands for.
	SaveCard(ctx context.Context, token, number string, at time.Time) error
	// CardNumber returns the card number of a token; fail.NotFound if the
	// token is unknown.
	CardNumber(ctx context.Context, token string) (string, error)
}

// ChargeRequest asks for an order to be paid, with either a card token (from
// Tokenize) or, from callers that predate tokens, the card number itself.
type ChargeRequest struct {
	OrderID     string
	UserID      string
	AmountCents int64
	Currency    string
	CardToken   string
	Card        string
	// Saga is the style the order runs under, echoed in the outcome event.
	// Empty means orchestration: only the orchestrator charges over HTTP.
	Saga Saga
	// DeclineWhenUnavailable records a provider that cannot answer (after
	// ProviderAttempts tries) as a decline, so the saga compensates and the
	// order ends; without it the charge fails with fail.Unavailable and the
	// caller retries.
	DeclineWhenUnavailable bool
}

// ProviderAttempts bounds the tries at the card provider for one charge,
// each within ProviderAttemptTimeout, with a short backoff between them.
const (
	ProviderAttempts       = 3
	ProviderAttemptTimeout = 2 * time.Second
	ReasonUnavailable      = "provider_unavailable"
)

// ListQuery selects a page of payments.
type ListQuery struct {
	UserID string // only this user's payments; empty means everyone's
	After  string // the last id of the previous page; empty for the first
	Limit  int    // 1..MaxLimit
}

// Page is one page of a listing. Next is the cursor of the following page,
// empty when there is none.
type Page struct {
	Items []Payment
	Next  string
}

// Card is a tokenized card as its owner may see it: the token that stands
// for it and the last four digits.
type Card struct {
	Token string
	Last4 string
}

// ReasonUnknownCard is why a charge to a token payments never issued (or no
// longer has) is declined, without asking the provider.
const ReasonUnknownCard = "unknown card"

// ErrCalledOff is the cause of the fail.Conflict a charge gets when its order
// was refunded before it was ever charged: the refund left a VOIDED payment so
// that no money is taken for a cancelled order. The charge's outcome,
// PaymentFailed, has been announced.
var ErrCalledOff = errors.New("order was cancelled before it was charged")

// Service applies the payments rules over a store and a card provider.
type Service struct {
	store    Store
	provider Provider
	now      func() time.Time
}

// NewService returns the payments service.
func NewService(store Store, provider Provider) *Service {
	return &Service{store: store, provider: provider, now: func() time.Time { return time.Now().UTC() }}
}

// Tokenize checks a card number and stores it under a new token, which stands
// for the card from then on. The token is random rather than time-ordered,
// since whoever holds it can have the card charged.
func (s *Service) Tokenize(ctx context.Context, card string) (Card, error) {
	digits, err := NormalizeCard(card)
	if err != nil {
		return Card{}, err
	}
	token := "card_" + uuid.NewString()
	if err := s.store.SaveCard(ctx, token, digits, s.now()); err != nil {
		return Card{}, err
	}
	return Card{Token: token, Last4: digits[len(digits)-4:]}, nil
}

// Charge pays for an order once, and announces the outcome (PaymentProcessed
// or PaymentFailed) in the transaction that records it. If the order already
// has a payment it is returned unchanged with created false, whatever its
// status, and its outcome is announced again, so a retry never charges twice
// and is always answered; a retry for another amount is fail.Conflict. A
// charge to an unknown card token is recorded as DECLINED with
// ReasonUnknownCard. A provider that cannot answer records nothing and is
// fail.Unavailable, so the caller can try again.
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (p Payment, created bool, err error) {
	if err := validateCharge(req); err != nil {
		return Payment{}, false, err
	}
	saga := req.Saga.orDefault()
	existing, err := s.store.ByOrder(ctx, req.OrderID)
	switch {
	case err == nil:
		return s.answerCharge(ctx, existing, req, saga)
	case !fail.Is(err, fail.NotFound):
		return Payment{}, false, err
	}

	now := s.now()
	p = Payment{
		ID:          uuid.Must(uuid.NewV7()).String(),
		OrderID:     req.OrderID,
		UserID:      req.UserID,
		AmountCents: req.AmountCents,
		Currency:    req.Currency,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	card, err := s.cardOf(ctx, req)
	switch {
	case fail.Is(err, fail.NotFound):
		p.Status, p.DeclineReason = StatusDeclined, ReasonUnknownCard
	case err != nil:
		return Payment{}, false, err
	default:
		decision, err := s.askProvider(ctx, req.OrderID, card, req.AmountCents)
		switch {
		case err != nil && !req.DeclineWhenUnavailable:
			return Payment{}, false, fail.Wrap(fail.Unavailable, err, "card provider unavailable")
		case err != nil:
			// A simulated provider that cannot answer took nothing. A real
			// one would first be asked, by the idempotency key, whether the
			// charge went through, before it is declined here.
			p.Status, p.DeclineReason, p.CardLast4 = StatusDeclined, ReasonUnavailable, card[len(card)-4:]
		default:
			p.Status, p.CardLast4 = StatusCaptured, card[len(card)-4:]
			if !decision.Approved {
				p.Status, p.DeclineReason = StatusDeclined, declineReason(decision.Reason)
			}
		}
	}
	outcome, err := chargeOutcome(p, saga)
	if err != nil {
		return Payment{}, false, err
	}
	err = s.store.Create(ctx, p, outcome)
	if fail.Is(err, fail.Conflict) {
		// Another call for the same order won the race to record its
		// payment: the order's payment is that one, never a second.
		winner, err := s.store.ByOrder(ctx, req.OrderID)
		if err != nil {
			return Payment{}, false, err
		}
		return s.answerCharge(ctx, winner, req, saga)
	}
	if err != nil {
		return Payment{}, false, err
	}
	return p, true, nil
}

// cardOf returns the card number to charge: the one given, or the one its
// token stands for (fail.NotFound for an unknown token).
func (s *Service) cardOf(ctx context.Context, req ChargeRequest) (string, error) {
	if req.CardToken == "" {
		return NormalizeCard(req.Card)
	}
	return s.store.CardNumber(ctx, req.CardToken)
}

// answerCharge answers a repeated charge with the recorded payment and
// announces its outcome again, unless the repeat asks for another amount:
// that is another request under the same order, and must not pass for the
// first. A VOIDED payment refuses the charge with ErrCalledOff, after
// announcing that the charge failed.
func (s *Service) answerCharge(ctx context.Context, p Payment, req ChargeRequest, saga Saga) (Payment, bool, error) {
	if p.Status != StatusVoided && (p.AmountCents != req.AmountCents || p.Currency != req.Currency) {
		return Payment{}, false, fail.New(fail.Conflict,
			"order %s was already charged %d %s", p.OrderID, p.AmountCents, p.Currency)
	}
	outcome, err := chargeOutcome(p, saga)
	if err != nil {
		return Payment{}, false, err
	}
	if err := s.store.Announce(ctx, outcome); err != nil {
		return Payment{}, false, err
	}
	if p.Status == StatusVoided {
		return p, false, fail.Wrap(fail.Conflict, ErrCalledOff, "order %s was called off before it was charged", p.OrderID)
	}
	return p, false, nil
}

// declineReason keeps a provider's reason short and printable, since it is
// stored and shown; a decline without a reason still says it was declined.
func declineReason(reason string) string {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 100 || !printable(reason) {
		return "declined"
	}
	return reason
}

// Refund gives back the money of an order's payment and announces what it
// left (PaymentRefunded), also when it finds the refund made already. A
// CAPTURED payment becomes REFUNDED; a REFUNDED, DECLINED or VOIDED one is
// answered as it is, since nothing is held. An order without a payment gets a
// VOIDED one, so that no charge for it can be taken afterwards. saga is the
// style the order runs under; empty means orchestration.
func (s *Service) Refund(ctx context.Context, orderID string, saga Saga) (Payment, error) {
	if err := validateID("order_id", orderID); err != nil {
		return Payment{}, err
	}
	if err := saga.validate(); err != nil {
		return Payment{}, err
	}
	saga = saga.orDefault()
	p, err := s.store.ByOrder(ctx, orderID)
	if fail.Is(err, fail.NotFound) {
		now := s.now()
		void := Payment{ID: uuid.Must(uuid.NewV7()).String(), OrderID: orderID, Currency: Currency, Status: StatusVoided, CreatedAt: now, UpdatedAt: now}
		outcome, oerr := refundOutcome(void, saga)
		if oerr != nil {
			return Payment{}, oerr
		}
		err = s.store.Create(ctx, void, outcome)
		if err == nil {
			return void, nil
		}
		if fail.Is(err, fail.Conflict) { // a charge landed meanwhile: refund it
			p, err = s.store.ByOrder(ctx, orderID)
		}
	}
	if err != nil {
		return Payment{}, err
	}
	if p.Status != StatusCaptured {
		return p, s.announceRefund(ctx, p, saga)
	}
	// The store moves it only if it is still CAPTURED, so two refunds racing
	// each other refund once, and the one that lost tells the outcome again.
	now := s.now()
	refunded := p
	refunded.Status, refunded.UpdatedAt = StatusRefunded, now
	outcome, err := refundOutcome(refunded, saga)
	if err != nil {
		return Payment{}, err
	}
	p, moved, err := s.store.SetStatus(ctx, orderID, StatusCaptured, StatusRefunded, now, outcome)
	if err != nil {
		return Payment{}, err
	}
	if !moved {
		return p, s.announceRefund(ctx, p, saga)
	}
	return p, nil
}

// announceRefund tells again what an earlier refund (or decline) left.
func (s *Service) announceRefund(ctx context.Context, p Payment, saga Saga) error {
	outcome, err := refundOutcome(p, saga)
	if err != nil {
		return err
	}
	return s.store.Announce(ctx, outcome)
}

// ByOrder returns the payment of an order; fail.NotFound if it has none.
func (s *Service) ByOrder(ctx context.Context, orderID string) (Payment, error) {
	if err := validateID("order_id", orderID); err != nil {
		return Payment{}, err
	}
	return s.store.ByOrder(ctx, orderID)
}

// List returns one page of payments, oldest first.
func (s *Service) List(ctx context.Context, q ListQuery) (Page, error) {
	if q.Limit < 1 || q.Limit > MaxLimit {
		return Page{}, fail.New(fail.Invalid, "limit must be a whole number from 1 to %d", MaxLimit)
	}
	if len(q.After) > maxIDBytes || !printable(q.After) {
		return Page{}, fail.New(fail.Invalid, "after must be the cursor of a previous page")
	}
	// One row more than asked tells whether another page follows.
	items, err := s.store.List(ctx, ListQuery{UserID: q.UserID, After: q.After, Limit: q.Limit + 1})
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: items}
	if len(items) > q.Limit {
		page.Items = items[:q.Limit]
		page.Next = page.Items[q.Limit-1].ID
	}
	return page, nil
}

// validateCharge checks a charge request. Exactly one of the card and its
// token must be given; a token is checked for shape only, since whether it
// is known is an outcome (a decline), not a malformed request.
func validateCharge(req ChargeRequest) error {
	if err := validateID("order_id", req.OrderID); err != nil {
		return err
	}
	if err := validateID("user_id", req.UserID); err != nil {
		return err
	}
	if req.AmountCents < MinAmountCents || req.AmountCents > MaxAmountCents {
		return fail.New(fail.Invalid, "amount_cents must be from %d to %d", MinAmountCents, MaxAmountCents)
	}
	if req.Currency != Currency {
		return fail.New(fail.Invalid, "currency must be %s", Currency)
	}
	if err := req.Saga.validate(); err != nil {
		return err
	}
	switch {
	case req.CardToken != "" && req.Card != "":
		return fail.New(fail.Invalid, "give either card or card_token, not both")
	case req.CardToken != "":
		return validateID("card_token", req.CardToken)
	default:
		_, err := NormalizeCard(req.Card)
		return err
	}
}

// validateID checks an id handed to us by another service: ids are opaque,
// but they are never empty, huge or unprintable.
func validateID(field, id string) error {
	if id == "" || len(id) > maxIDBytes || !printable(id) {
		return fail.New(fail.Invalid, "%s must be 1 to %d printable characters", field, maxIDBytes)
	}
	return nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// Card number length bounds, in digits (ISO/IEC 7812).
const (
	minCardDigits = 12
	maxCardDigits = 19
)

// NormalizeCard returns a card number with its spaces removed, if what is
// left is 12 to 19 digits that pass the Luhn check; otherwise fail.Invalid.
// The error never repeats the number.
func NormalizeCard(card string) (string, error) {
	invalid := fail.New(fail.Invalid, "card number is not valid")
	if len(card) > 4*maxCardDigits { // spaces are allowed, not unbounded
		return "", invalid
	}
	digits := strings.ReplaceAll(card, " ", "")
	if len(digits) < minCardDigits || len(digits) > maxCardDigits {
		return "", invalid
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", invalid
		}
	}
	if !Luhn(digits) {
		return "", invalid
	}
	return digits, nil
}

// Luhn reports whether a string of ASCII digits passes the Luhn checksum. It
// is false for an empty string or one holding anything but digits.
func Luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// askProvider charges the card at the provider, trying ProviderAttempts
// times, each bounded by ProviderAttemptTimeout and by ctx, with a short
// backoff between tries. The order id is the provider's idempotency key, so
// a retry never charges twice at a real provider.
func (s *Service) askProvider(ctx context.Context, orderID, card string, amount int64) (Decision, error) {
	var last error
	for attempt := range ProviderAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return Decision{}, errors.Join(last, ctx.Err())
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		actx, cancel := context.WithTimeout(ctx, ProviderAttemptTimeout)
		d, err := s.provider.Charge(actx, orderID, card, amount)
		cancel()
		if err == nil {
			return d, nil
		}
		last = err
	}
	return Decision{}, last
}
