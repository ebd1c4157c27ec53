// Package shipping is the heart of the shipping service: scheduling one
// delivery per order, cancelling it, and the rules for a delivery address. It
// knows nothing of HTTP or SQL.
package shipping

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Status is where a shipment stands.
type Status string

// The statuses a shipment can have. A CANCELLED shipment stays cancelled.
const (
	StatusScheduled Status = "SCHEDULED"
	StatusCancelled Status = "CANCELLED"
)

// Bounds on a listing page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxIDBytes bounds the ids other services hand us, so that a hostile caller
// cannot make us store or index megabytes.
const maxIDBytes = 100

// maxAddressRunes bounds each field of an address.
const maxAddressRunes = 200

// Address is where a shipment goes.
type Address struct {
	Name       string
	Line1      string
	City       string
	PostalCode string
	Country    string // ISO 3166-1 alpha-2, upper case
}

// Shipment is the one delivery of an order. A shipment cancelled before it
// was ever scheduled is a tombstone: CANCELLED, with no user and no address,
// kept so that a late Schedule for the order is refused.
type Shipment struct {
	ID        string
	OrderID   string
	UserID    string
	Status    Status
	Address   Address
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store keeps shipments. Operations called with the context of an Atomic
// unit join that unit.
type Store interface {
	// Atomic runs fn as one unit of work: what fn does through the store
	// with the context it is given commits together or not at all. Inside
	// another unit (a consumer's inbox transaction) it nests, and a failing
	// fn undoes only its own work.
	Atomic(ctx context.Context, fn func(ctx context.Context) error) error
	// Publish stores events in the outbox within the unit of work of ctx,
	// so that they are published if and only if that unit commits. Without
	// a unit in ctx it fails.
	Publish(ctx context.Context, events ...event.Event) error
	// MergeIntent adds what in says about an order (that it was created,
	// with its user and address; that its items were reserved; that it was
	// paid) to what was recorded before, and returns the whole intent as it
	// now stands. What is set once stays set, the user and address are the
	// first ones recorded, and the saga is the one first recorded.
	MergeIntent(ctx context.Context, in Intent, at time.Time) (Intent, error)

	// Create stores sh; fail.Conflict if a shipment for sh.OrderID exists.
	Create(ctx context.Context, sh Shipment) error
	// ByOrder finds the shipment of an order; fail.NotFound if none.
	ByOrder(ctx context.Context, orderID string) (Shipment, error)
	// SetStatus moves the shipment of orderID from status from to status to,
	// only if it is still in from, and returns it as it stands afterwards;
	// fail.NotFound if there is none.
	SetStatus(ctx context.Context, orderID string, from, to Status, at time.Time) (Shipment, error)
	// List returns up to q.Limit shipments in id order, after q.After, of
	// q.UserID or of everyone when it is empty.
	List(ctx context.Context, q ListQuery) ([]Shipment, error)
}

// ListQuery selects a page of shipments.
type ListQuery struct {
	UserID string // only this user's shipments; empty means everyone's
	After  string // the last id of the previous page; empty for the first
	Limit  int    // 1..MaxLimit
}

// Page is one page of a listing. Next is the cursor of the following page,
// empty when there is none.
type Page struct {
	Items []Shipment
	Next  string
}

// Service applies the shipping rules over a store.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns the shipping service.
func NewService(store Store) *Service {
	return &Service{store: store, now: func() time.Time { return time.Now().UTC() }}
}

// Schedule records the delivery of an order to addr and announces it under
// saga with DeliveryScheduled. If the order already has a shipment it is
// returned unchanged with created false (and announced again), so a retry
// schedules nothing new; if that shipment was cancelled the answer is
// fail.Conflict, announced as ShipmentRefused, since a cancelled order must
// not ship.
func (s *Service) Schedule(ctx context.Context, saga Saga, orderID, userID string, addr Address) (sh Shipment, created bool, err error) {
	if err := validateOrder(saga, orderID); err != nil {
		return Shipment{}, false, err
	}
	if err := validateID("user_id", userID); err != nil {
		return Shipment{}, false, err
	}
	addr, err = NormalizeAddress(addr)
	if err != nil {
		return Shipment{}, false, err
	}
	err = s.unit(ctx, func(ctx context.Context) error {
		var err error
		sh, created, err = s.schedule(ctx, saga, orderID, userID, addr)
		return err
	})
	if err != nil {
		return Shipment{}, false, err
	}
	return sh, created, nil
}

// record finds or creates the shipment of an order, in the unit of ctx.
func (s *Service) record(ctx context.Context, orderID, userID string, addr Address) (Shipment, bool, error) {
	existing, err := s.store.ByOrder(ctx, orderID)
	switch {
	case err == nil:
		return recorded(existing)
	case !fail.Is(err, fail.NotFound):
		return Shipment{}, false, err
	}
	now := s.now()
	sh := Shipment{
		ID:        uuid.Must(uuid.NewV7()).String(),
		OrderID:   orderID,
		UserID:    userID,
		Status:    StatusScheduled,
		Address:   addr,
		CreatedAt: now,
		UpdatedAt: now,
	}
	err = s.store.Create(ctx, sh)
	if fail.Is(err, fail.Conflict) {
		// Another call for the order (a Schedule or a Cancel) recorded first:
		// its shipment is the order's, never a second one.
		winner, err := s.store.ByOrder(ctx, orderID)
		if err != nil {
			return Shipment{}, false, err
		}
		return recorded(winner)
	}
	if err != nil {
		return Shipment{}, false, err
	}
	return sh, true, nil
}

// recorded answers a Schedule for an order that already has a shipment.
func recorded(sh Shipment) (Shipment, bool, error) {
	if sh.Status == StatusCancelled {
		return Shipment{}, false, fail.New(fail.Conflict, "shipment was cancelled")
	}
	return sh, false, nil
}

// Cancel calls off the delivery of an order and announces it under saga with
// ShipmentCancelled. A SCHEDULED shipment becomes CANCELLED and a CANCELLED
// one is answered as it is. An order with no shipment gets a CANCELLED
// tombstone, because the cancel may overtake the Schedule it compensates, and
// that Schedule must then be refused.
func (s *Service) Cancel(ctx context.Context, saga Saga, orderID string) (sh Shipment, err error) {
	if err := validateOrder(saga, orderID); err != nil {
		return Shipment{}, err
	}
	err = s.unit(ctx, func(ctx context.Context) error {
		var err error
		sh, err = s.cancel(ctx, saga, orderID)
		return err
	})
	if err != nil {
		return Shipment{}, err
	}
	return sh, nil
}

// callOff cancels the shipment of an order or leaves its tombstone, in the
// unit of ctx.
func (s *Service) callOff(ctx context.Context, orderID string) (Shipment, error) {
	// Two rounds at most: a tombstone loses its insert only to a shipment
	// that then exists, and the second round cancels that one.
	for range 2 {
		sh, err := s.store.ByOrder(ctx, orderID)
		switch {
		case err == nil && sh.Status == StatusCancelled:
			return sh, nil
		case err == nil:
			return s.store.SetStatus(ctx, orderID, sh.Status, StatusCancelled, s.now())
		case !fail.Is(err, fail.NotFound):
			return Shipment{}, err
		}
		now := s.now()
		tomb := Shipment{
			ID:        uuid.Must(uuid.NewV7()).String(),
			OrderID:   orderID,
			Status:    StatusCancelled,
			CreatedAt: now,
			UpdatedAt: now,
		}
		err = s.store.Create(ctx, tomb)
		if err == nil {
			return tomb, nil
		}
		if !fail.Is(err, fail.Conflict) {
			return Shipment{}, err
		}
	}
	return Shipment{}, fail.New(fail.Unavailable, "shipment of order %s keeps changing; try again", orderID)
}

// ByOrder returns the shipment of an order; fail.NotFound if it has none.
func (s *Service) ByOrder(ctx context.Context, orderID string) (Shipment, error) {
	if err := validateID("order_id", orderID); err != nil {
		return Shipment{}, err
	}
	return s.store.ByOrder(ctx, orderID)
}

// List returns one page of shipments, oldest first.
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

// NormalizeAddress returns addr with every field trimmed, if each is then 1
// to 200 characters with no control characters and the country is a
// two-letter upper-case code; otherwise fail.Invalid naming the field.
func NormalizeAddress(addr Address) (Address, error) {
	fields := []struct {
		name  string
		value *string
	}{
		{"name", &addr.Name},
		{"line1", &addr.Line1},
		{"city", &addr.City},
		{"postal_code", &addr.PostalCode},
		{"country", &addr.Country},
	}
	for _, f := range fields {
		*f.value = strings.TrimSpace(*f.value)
		v := *f.value
		if v == "" || !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxAddressRunes {
			return Address{}, fail.New(fail.Invalid, "address.%s must be 1 to %d characters", f.name, maxAddressRunes)
		}
		if strings.ContainsFunc(v, unicode.IsControl) {
			return Address{}, fail.New(fail.Invalid, "address.%s must not contain control characters", f.name)
		}
	}
	if !isCountryCode(addr.Country) {
		return Address{}, fail.New(fail.Invalid, "address.country must be a two-letter upper-case country code")
	}
	return addr, nil
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
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
