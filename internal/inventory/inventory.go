// Package inventory is the heart of the inventory service: the stock of each
// product, the reservations orders hold on it, and the rules that keep
// available + reserved + sold equal to what was supplied, with no knowledge
// of HTTP or of how stock is stored.
package inventory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Stock is the stock of one product. Every unit ever supplied is in exactly
// one of Available, Reserved or Sold, so their sum is Supplied.
type Stock struct {
	ProductID string
	Available int64
	Reserved  int64 // held by RESERVED reservations
	Sold      int64 // taken by COMMITTED reservations
	Supplied  int64 // the first level set plus every restock since
}

// Balanced reports whether s keeps the inventory invariant: nothing
// negative, and every supplied unit accounted for once.
func (s Stock) Balanced() bool {
	return s.Available >= 0 && s.Reserved >= 0 && s.Sold >= 0 &&
		s.Available+s.Reserved+s.Sold == s.Supplied
}

// Status is where a reservation is in its life.
type Status string

// The statuses of a reservation. RESERVED is the only one that holds stock
// and the only one that can change: to COMMITTED (sold) or RELEASED (given
// back). REJECTED never held any.
const (
	Reserved  Status = "RESERVED"
	Committed Status = "COMMITTED"
	Released  Status = "RELEASED"
	Rejected  Status = "REJECTED"
)

// Item is a quantity of one product.
type Item struct {
	ProductID string
	Quantity  int64
}

// Reservation is what one order holds, or was refused. There is at most one
// per order, which is what makes every operation on it idempotent.
type Reservation struct {
	OrderID   string
	Status    Status
	Items     []Item // merged by product and sorted by product id; none for a release tombstone
	Reason    string // why it was rejected; empty otherwise
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Page is one page of a listing; Next is the cursor of the following page,
// empty on the last one.
type Page[T any] struct {
	Items []T
	Next  string
}

// Limits on requests.
const (
	MaxItems         = 50
	MaxQuantity      = 1000
	MaxAvailable     = 1_000_000_000
	MaxIDLen         = 100
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// Store keeps stock and reservations. Each operation that changes stock runs
// in one transaction and follows the rules of this package: Reservation's
// ReserveAgain, CommitStep and ReleaseStep, and Shortage. Operations called
// with the context of an Atomic unit join that unit.
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
	// MergeIntent adds what in says about a choreographed order (its items,
	// that it was paid) to what was recorded before, and returns the whole
	// intent as it now stands. Items once recorded are kept, Paid once set
	// stays set, and the saga is the one first recorded.
	MergeIntent(ctx context.Context, in Intent, at time.Time) (Intent, error)

	// Stock returns the stock of a product; fail.NotFound if it has none.
	Stock(ctx context.Context, productID string) (Stock, error)
	// ListStock returns at most limit stocks with product ids after after, in order.
	ListStock(ctx context.Context, after string, limit int) ([]Stock, error)
	// SetAvailable sets the available units of a product, creating its stock
	// if missing, and adds the difference to Supplied.
	SetAvailable(ctx context.Context, productID string, available int64, at time.Time) (Stock, error)

	// Reserve records r, a new RESERVED reservation, and moves its items from
	// available to reserved, unless one exists for r.OrderID: then it answers
	// that one as ReserveAgain says, and created is false. If Shortage finds a
	// product short, it records r as REJECTED without touching stock and
	// returns fail.Conflict.
	Reserve(ctx context.Context, r Reservation) (got Reservation, created bool, err error)
	// Commit applies CommitStep: moves a RESERVED reservation's items from
	// reserved to sold. fail.NotFound if the order has no reservation.
	Commit(ctx context.Context, orderID string, at time.Time) (Reservation, error)
	// Release applies ReleaseStep: moves a RESERVED reservation's items from
	// reserved back to available. An order with no reservation gets a
	// RELEASED one with no items, so that a reserve arriving late is refused.
	Release(ctx context.Context, orderID string, at time.Time) (Reservation, error)
	// Reservation returns the reservation of an order; fail.NotFound if none.
	Reservation(ctx context.Context, orderID string) (Reservation, error)
	// ListReservations returns at most limit reservations with order ids after after, in order.
	ListReservations(ctx context.Context, after string, limit int) ([]Reservation, error)
}

// Step is what an operation does to an existing reservation.
type Step int

// The steps. Each operation either answers what is recorded or moves stock
// and records the new status; which one depends only on the status.
const (
	Replay Step = iota + 1 // answer the reservation as recorded; change nothing
	Apply                  // move the stock and record the new status
)

// ReserveAgain is the answer to a reserve for an order that already has a
// reservation: the reservation as it is if it holds or sold stock, else the
// refusal it stands for.
func (r Reservation) ReserveAgain() error {
	switch r.Status {
	case Reserved, Committed:
		return nil
	case Rejected:
		return fail.New(fail.Conflict, "%s", r.Reason)
	default:
		return fail.New(fail.Conflict, "reservation was released")
	}
}

// CommitStep says what a commit does to r: RESERVED is committed, COMMITTED
// answered again; RELEASED and REJECTED hold no stock to sell.
func (r Reservation) CommitStep() (Step, error) {
	switch r.Status {
	case Reserved:
		return Apply, nil
	case Committed:
		return Replay, nil
	case Released:
		return 0, fail.New(fail.Conflict, "reservation was released")
	default:
		return 0, fail.New(fail.Conflict, "reservation was rejected: %s", r.Reason)
	}
}

// ReleaseStep says what a release does to r: RESERVED is released, RELEASED
// and REJECTED (which hold nothing) answered again; COMMITTED stock is sold
// and cannot be given back.
func (r Reservation) ReleaseStep() (Step, error) {
	switch r.Status {
	case Reserved:
		return Apply, nil
	case Released, Rejected:
		return Replay, nil
	default:
		return 0, fail.New(fail.Conflict, "reservation was committed")
	}
}

// Shortage finds the first item, in the order given, that available (units
// per product id) cannot cover, and returns a reason fit for the caller;
// short is false when every item is covered. A product missing from
// available has none.
func Shortage(items []Item, available map[string]int64) (reason string, short bool) {
	for _, it := range items {
		if n, ok := available[it.ProductID]; !ok || n < it.Quantity {
			return "insufficient stock for product " + it.ProductID, true
		}
	}
	return "", false
}

// NoReservation is the error for an order with no reservation.
func NoReservation(orderID string) error {
	return fail.New(fail.NotFound, "no reservation for order %s", orderID)
}

// MergeItems validates items and returns them merged by product and sorted by
// product id, so that each product appears once and stores touch products in
// one order. It takes 1 to MaxItems lines of 1 to MaxQuantity each; a product
// spread over several lines must still total at most MaxQuantity.
func MergeItems(items []Item) ([]Item, error) {
	if len(items) < 1 || len(items) > MaxItems {
		return nil, fail.New(fail.Invalid, "items must hold 1 to %d lines", MaxItems)
	}
	merged := make(map[string]int64, len(items))
	for i, it := range items {
		if err := ValidateProductID(it.ProductID); err != nil {
			return nil, fail.New(fail.Invalid, "items[%d]: %s", i, fail.MessageOf(err))
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			return nil, fail.New(fail.Invalid, "items[%d]: quantity must be 1 to %d", i, MaxQuantity)
		}
		merged[it.ProductID] += it.Quantity
	}
	out := make([]Item, 0, len(merged))
	for id, q := range merged {
		if q > MaxQuantity {
			return nil, fail.New(fail.Invalid, "product %s: total quantity must be at most %d", id, MaxQuantity)
		}
		out = append(out, Item{ProductID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b Item) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return out, nil
}

// ValidateID checks a product or order id: 1 to MaxIDLen characters of
// letters, digits, '-', '_', '.' and ':'. IDs are opaque, but they travel in
// paths and logs, so nothing else is let in.
func ValidateID(field, id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fail.New(fail.Invalid, "%s must be 1 to %d characters", field, MaxIDLen)
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' && r != '.' && r != ':' {
			return fail.New(fail.Invalid, "%s may hold only letters, digits, '-', '_', '.' and ':'", field)
		}
	}
	return nil
}

// unaddressableProductID is the one product id the API cannot address: the
// stock of a product of that name would live where the reservations listing
// is, so it could be set but never read.
const unaddressableProductID = "reservations"

// ValidateProductID checks a product id as ValidateID does, and refuses the
// one id that names the reservations listing rather than a product.
func ValidateProductID(id string) error {
	if err := ValidateID("product_id", id); err != nil {
		return err
	}
	if id == unaddressableProductID {
		return fail.New(fail.Invalid, "product_id may not be %q, the name of the reservations listing", id)
	}
	return nil
}

// ValidatePage checks a listing's cursor and limit.
func ValidatePage(after string, limit int) error {
	if limit < 1 || limit > MaxPageLimit {
		return fail.New(fail.Invalid, "limit must be 1 to %d", MaxPageLimit)
	}
	if len(after) > MaxIDLen {
		return fail.New(fail.Invalid, "after must be at most %d characters", MaxIDLen)
	}
	return nil
}

// Service applies the inventory rules over a store.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns the inventory service.
func NewService(store Store) *Service {
	return &Service{store: store, now: func() time.Time { return time.Now().UTC() }}
}

// Stock returns the stock of a product.
func (s *Service) Stock(ctx context.Context, productID string) (Stock, error) {
	if err := ValidateProductID(productID); err != nil {
		return Stock{}, err
	}
	return s.store.Stock(ctx, productID)
}

// ListStock returns a page of stock, in product id order.
func (s *Service) ListStock(ctx context.Context, after string, limit int) (Page[Stock], error) {
	if err := ValidatePage(after, limit); err != nil {
		return Page[Stock]{}, err
	}
	items, err := s.store.ListStock(ctx, after, limit+1) // one more tells whether a next page exists
	if err != nil {
		return Page[Stock]{}, err
	}
	return paginate(items, limit, func(st Stock) string { return st.ProductID }), nil
}

// SetAvailable sets the available units of a product (an admin restock or
// correction) to n, 0 to MaxAvailable.
func (s *Service) SetAvailable(ctx context.Context, productID string, n int64) (Stock, error) {
	if err := ValidateProductID(productID); err != nil {
		return Stock{}, err
	}
	if n < 0 || n > MaxAvailable {
		return Stock{}, fail.New(fail.Invalid, "available must be 0 to %d", MaxAvailable)
	}
	return s.store.SetAvailable(ctx, productID, n, s.now())
}

// Reserve holds items for an order, all or nothing, and announces the
// outcome under saga: ItemsReserved, or ReservationFailed with the reason.
// Repeating it for the same order answers (and announces again) the recorded
// reservation, with created false, or its refusal, whatever items come with
// the repeat. A shortage is recorded as REJECTED and answered with
// fail.Conflict.
func (s *Service) Reserve(ctx context.Context, saga Saga, orderID string, items []Item) (r Reservation, created bool, err error) {
	if err := validateOrder(saga, orderID); err != nil {
		return Reservation{}, false, err
	}
	merged, err := MergeItems(items)
	if err != nil {
		return Reservation{}, false, err
	}
	err = s.unit(ctx, func(ctx context.Context) error {
		var err error
		r, created, err = s.reserve(ctx, saga, orderID, merged)
		return err
	})
	if err != nil {
		return Reservation{}, false, err
	}
	return r, created, nil
}

// Commit turns an order's reserved stock into sold stock and announces the
// outcome under saga: ItemsCommitted, or CommitFailed with the reason (the
// reservation was released or rejected, or there is none).
func (s *Service) Commit(ctx context.Context, saga Saga, orderID string) (r Reservation, err error) {
	if err := validateOrder(saga, orderID); err != nil {
		return Reservation{}, err
	}
	err = s.unit(ctx, func(ctx context.Context) error {
		var err error
		r, err = s.commit(ctx, saga, orderID)
		return err
	})
	if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// Release gives an order's reserved stock back and announces ItemsReleased
// under saga. Releasing an order that reserved nothing records that, so a
// reserve arriving later is refused. Stock already sold cannot be given back:
// that refusal (fail.Conflict) announces nothing, as no event says so.
func (s *Service) Release(ctx context.Context, saga Saga, orderID string) (r Reservation, err error) {
	if err := validateOrder(saga, orderID); err != nil {
		return Reservation{}, err
	}
	err = s.unit(ctx, func(ctx context.Context) error {
		var err error
		r, err = s.release(ctx, saga, orderID)
		return err
	})
	if err != nil {
		return Reservation{}, err
	}
	return r, nil
}

// Reservation returns the reservation of an order.
func (s *Service) Reservation(ctx context.Context, orderID string) (Reservation, error) {
	if err := ValidateID("order_id", orderID); err != nil {
		return Reservation{}, err
	}
	return s.store.Reservation(ctx, orderID)
}

// ListReservations returns a page of reservations, in order id order.
func (s *Service) ListReservations(ctx context.Context, after string, limit int) (Page[Reservation], error) {
	if err := ValidatePage(after, limit); err != nil {
		return Page[Reservation]{}, err
	}
	items, err := s.store.ListReservations(ctx, after, limit+1)
	if err != nil {
		return Page[Reservation]{}, err
	}
	return paginate(items, limit, func(r Reservation) string { return r.OrderID }), nil
}

// paginate cuts items, fetched one beyond limit, to a page whose cursor is
// the key of its last item when more follow.
func paginate[T any](items []T, limit int, key func(T) string) Page[T] {
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	items = items[:limit]
	return Page[T]{Items: items, Next: key(items[limit-1])}
}
