// Package payments is the heart of the payments service: charging an order's
// card through a provider at most once, refunding it, and the rules for card
// numbers and amounts. It knows nothing of HTTP or SQL.
package payments

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

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

// Store keeps payments.
type Store interface {
	// Create stores p; fail.Conflict if a payment for p.OrderID exists.
	Create(ctx context.Context, p Payment) error
	// ByOrder finds the payment of an order; fail.NotFound if none.
	ByOrder(ctx context.Context, orderID string) (Payment, error)
	// SetStatus moves the payment of orderID from status from to status to,
	// only if it is still in from, and returns it as it stands afterwards;
	// fail.NotFound if there is none.
	SetStatus(ctx context.Context, orderID string, from, to Status, at time.Time) (Payment, error)
	// List returns up to q.Limit payments in id order, after q.After, of
	// q.UserID or of everyone when it is empty.
	List(ctx context.Context, q ListQuery) ([]Payment, error)
}

// ChargeRequest asks for an order to be paid.
type ChargeRequest struct {
	OrderID     string
	UserID      string
	AmountCents int64
	Currency    string
	Card        string
}

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

// Charge pays for an order once. If the order already has a payment it is
// returned unchanged with created false, whatever its status, so a retry
// never charges twice; a retry for another amount is fail.Conflict. A
// provider that cannot answer records nothing and is fail.Unavailable, so the
// caller can try again.
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (p Payment, created bool, err error) {
	card, err := validateCharge(req)
	if err != nil {
		return Payment{}, false, err
	}
	existing, err := s.store.ByOrder(ctx, req.OrderID)
	switch {
	case err == nil:
		return sameCharge(existing, req)
	case !fail.Is(err, fail.NotFound):
		return Payment{}, false, err
	}

	decision, err := s.provider.Charge(ctx, req.OrderID, card, req.AmountCents)
	if err != nil {
		return Payment{}, false, fail.Wrap(fail.Unavailable, err, "card provider unavailable")
	}
	now := s.now()
	p = Payment{
		ID:          uuid.Must(uuid.NewV7()).String(),
		OrderID:     req.OrderID,
		UserID:      req.UserID,
		AmountCents: req.AmountCents,
		Currency:    req.Currency,
		Status:      StatusCaptured,
		CardLast4:   card[len(card)-4:],
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if !decision.Approved {
		p.Status = StatusDeclined
		p.DeclineReason = declineReason(decision.Reason)
	}
	err = s.store.Create(ctx, p)
	if fail.Is(err, fail.Conflict) {
		// Another call for the same order won the race to record its
		// payment: the order's payment is that one, never a second.
		winner, err := s.store.ByOrder(ctx, req.OrderID)
		if err != nil {
			return Payment{}, false, err
		}
		return sameCharge(winner, req)
	}
	if err != nil {
		return Payment{}, false, err
	}
	return p, true, nil
}

// sameCharge answers a repeated charge with the recorded payment, unless the
// repeat asks for another amount: that is another request under the same
// order, and must not pass for the first.
func sameCharge(p Payment, req ChargeRequest) (Payment, bool, error) {
	if p.Status == StatusVoided {
		return Payment{}, false, fail.New(fail.Conflict, "order %s was called off before it was charged", p.OrderID)
	}
	if p.AmountCents != req.AmountCents || p.Currency != req.Currency {
		return Payment{}, false, fail.New(fail.Conflict,
			"order %s was already charged %d %s", p.OrderID, p.AmountCents, p.Currency)
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

// Refund gives back the money of an order's payment. A CAPTURED payment
// becomes REFUNDED; a REFUNDED, DECLINED or VOIDED one is answered as it is,
// since nothing is held. An order without a payment gets a VOIDED one, so
// that no charge for it can be taken afterwards.
func (s *Service) Refund(ctx context.Context, orderID string) (Payment, error) {
	if err := validateID("order_id", orderID); err != nil {
		return Payment{}, err
	}
	p, err := s.store.ByOrder(ctx, orderID)
	if fail.Is(err, fail.NotFound) {
		now := s.now()
		void := Payment{ID: uuid.Must(uuid.NewV7()).String(), OrderID: orderID, Currency: Currency, Status: StatusVoided, CreatedAt: now, UpdatedAt: now}
		err = s.store.Create(ctx, void)
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
		return p, nil
	}
	// The store moves it only if it is still CAPTURED, so two refunds racing
	// each other refund once and both answer REFUNDED.
	return s.store.SetStatus(ctx, orderID, StatusCaptured, StatusRefunded, s.now())
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

func validateCharge(req ChargeRequest) (card string, err error) {
	if err := validateID("order_id", req.OrderID); err != nil {
		return "", err
	}
	if err := validateID("user_id", req.UserID); err != nil {
		return "", err
	}
	if req.AmountCents < MinAmountCents || req.AmountCents > MaxAmountCents {
		return "", fail.New(fail.Invalid, "amount_cents must be from %d to %d", MinAmountCents, MaxAmountCents)
	}
	if req.Currency != Currency {
		return "", fail.New(fail.Invalid, "currency must be %s", Currency)
	}
	return NormalizeCard(req.Card)
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
