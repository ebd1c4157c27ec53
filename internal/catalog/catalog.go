// Package catalog is the heart of the catalog service: products, their prices
// and descriptions, the rules for adding and repricing them, and the events
// that tell other services of both, with no knowledge of HTTP, of the broker
// or of how products are stored.
package catalog

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Product is an item the shop sells.
type Product struct {
	ID          string
	SKU         string
	Name        string
	Description string
	Category    string
	PriceCents  int64
	Currency    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewProduct is what an admin gives to add a product.
type NewProduct struct {
	SKU         string
	Name        string
	Description string
	Category    string
	PriceCents  int64
	Currency    string // empty means DefaultCurrency
}

// Page is one page of a listing; Next is the cursor of the following page,
// empty on the last one.
type Page[T any] struct {
	Items []T
	Next  string
}

// Limits on a product's fields.
const (
	MaxSKULen         = 64
	MaxNameLen        = 200
	MaxDescriptionLen = 2000
	MaxCategoryLen    = 100
	MinPriceCents     = 1
	MaxPriceCents     = 100_000_000
	DefaultCurrency   = "USD"
)

// Limits on a listing page.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
	maxCursorLen     = 128
)

// Store keeps products and the events that announce their changes. A
// document store and a SQL store both fit, so it speaks of products, never of
// rows. A method given events stores them with its change, atomically, so
// that an event is published if and only if its change was made.
type Store interface {
	// Create stores p and events; fail.Conflict if its SKU is taken, and
	// then stores neither.
	Create(ctx context.Context, p Product, events ...event.Event) error
	// ByID finds a product by id; fail.NotFound if none.
	ByID(ctx context.Context, id string) (Product, error)
	// BySKU finds a product by SKU; fail.NotFound if none.
	BySKU(ctx context.Context, sku string) (Product, error)
	// List returns at most limit products with ids greater than after, in id
	// order (ids are UUIDv7, so that is creation order).
	List(ctx context.Context, after string, limit int) ([]Product, error)
	// UpdatePrice sets the price of product id from fromCents to toCents
	// and its update time, stores events, and returns the product as it now
	// is; fail.NotFound if there is no such product, and fail.Conflict,
	// changing nothing, if its price is no longer fromCents.
	UpdatePrice(ctx context.Context, id string, fromCents, toCents int64, at time.Time, events ...event.Event) (Product, error)
}

// Service applies the catalog rules over a store.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns the catalog service.
func NewService(store Store) *Service {
	return &Service{store: store, now: func() time.Time { return time.Now().UTC() }}
}

// Create validates in and adds it as a new product.
func (s *Service) Create(ctx context.Context, in NewProduct) (Product, error) {
	p, err := in.validate()
	if err != nil {
		return Product{}, err
	}
	now := s.now()
	p.ID = uuid.Must(uuid.NewV7()).String()
	p.CreatedAt, p.UpdatedAt = now, now
	created, err := productCreated(p)
	if err != nil {
		return Product{}, err
	}
	if err := s.store.Create(ctx, p, created); err != nil {
		return Product{}, err
	}
	return p, nil
}

// Get returns the product with id.
func (s *Service) Get(ctx context.Context, id string) (Product, error) {
	return s.store.ByID(ctx, id)
}

// BySKU returns the product with sku; seeding uses it to add each product once.
func (s *Service) BySKU(ctx context.Context, sku string) (Product, error) {
	if err := ValidateSKU(sku); err != nil {
		return Product{}, err
	}
	return s.store.BySKU(ctx, sku)
}

// List returns up to limit products after the cursor after (empty for the
// first page). limit must be 1 to MaxPageLimit.
func (s *Service) List(ctx context.Context, after string, limit int) (Page[Product], error) {
	if err := ValidatePage(after, limit); err != nil {
		return Page[Product]{}, err
	}
	// One more than asked tells whether another page follows.
	items, err := s.store.List(ctx, after, limit+1)
	if err != nil {
		return Page[Product]{}, err
	}
	page := Page[Product]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.Next = page.Items[limit-1].ID
	}
	return page, nil
}

// priceChangeAttempts bounds how often ChangePrice re-reads a price that
// another change moved between its read and its write.
const priceChangeAttempts = 5

// ChangePrice sets the price of product id and announces the change, with
// the price it replaced, in ProductPriceChanged. It is the one way a price
// changes. Setting the price a product has already changes nothing and
// announces nothing. The old price in the event is the one the update
// replaced: the store writes only if the price is still the one read, and a
// change that lost that race reads again.
func (s *Service) ChangePrice(ctx context.Context, id string, priceCents int64) (Product, error) {
	if err := ValidatePrice(priceCents); err != nil {
		return Product{}, err
	}
	for range priceChangeAttempts {
		current, err := s.store.ByID(ctx, id)
		if err != nil {
			return Product{}, err
		}
		if current.PriceCents == priceCents {
			return current, nil
		}
		changed, err := priceChanged(current, priceCents)
		if err != nil {
			return Product{}, err
		}
		p, err := s.store.UpdatePrice(ctx, id, current.PriceCents, priceCents, s.now(), changed)
		if !fail.Is(err, fail.Conflict) {
			return p, err
		}
	}
	return Product{}, fail.New(fail.Conflict, "the price of product %s kept changing; try again", id)
}

// validate checks every field of in and returns the product it describes,
// with text trimmed and the currency defaulted; the id and times are left for
// the caller.
func (in NewProduct) validate() (Product, error) {
	// Surrounding spaces are trimmed from text, as users expect of a form;
	// the SKU is an identifier and is taken exactly as given.
	in.Name = strings.TrimSpace(in.Name)
	in.Description = strings.TrimSpace(in.Description)
	in.Category = strings.TrimSpace(in.Category)
	if err := ValidateSKU(in.SKU); err != nil {
		return Product{}, err
	}
	if err := checkText("name", in.Name, 1, MaxNameLen, false); err != nil {
		return Product{}, err
	}
	if err := checkText("description", in.Description, 0, MaxDescriptionLen, true); err != nil {
		return Product{}, err
	}
	if err := checkText("category", in.Category, 1, MaxCategoryLen, false); err != nil {
		return Product{}, err
	}
	if err := ValidatePrice(in.PriceCents); err != nil {
		return Product{}, err
	}
	currency := in.Currency
	if currency == "" {
		currency = DefaultCurrency
	}
	if currency != DefaultCurrency {
		return Product{}, fail.New(fail.Invalid, "currency must be %s", DefaultCurrency)
	}
	return Product{
		SKU: in.SKU, Name: in.Name, Description: in.Description, Category: in.Category,
		PriceCents: in.PriceCents, Currency: currency,
	}, nil
}

// ValidateSKU checks that sku is 1 to MaxSKULen characters of A-Z, 0-9 and '-'.
// It is not normalised: a SKU is stored exactly as given.
func ValidateSKU(sku string) error {
	if sku == "" || len(sku) > MaxSKULen {
		return fail.New(fail.Invalid, "sku must be 1 to %d characters", MaxSKULen)
	}
	for _, r := range sku {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
			return fail.New(fail.Invalid, "sku may hold only A-Z, 0-9 and '-'")
		}
	}
	return nil
}

// ValidatePrice checks that a price in cents is within MinPriceCents to MaxPriceCents.
func ValidatePrice(cents int64) error {
	if cents < MinPriceCents || cents > MaxPriceCents {
		return fail.New(fail.Invalid, "price_cents must be %d to %d", MinPriceCents, MaxPriceCents)
	}
	return nil
}

// ValidatePage checks a listing's cursor and limit.
func ValidatePage(after string, limit int) error {
	if limit < 1 || limit > MaxPageLimit {
		return fail.New(fail.Invalid, "limit must be 1 to %d", MaxPageLimit)
	}
	if len(after) > maxCursorLen {
		return fail.New(fail.Invalid, "after must be at most %d characters", maxCursorLen)
	}
	return nil
}

// checkText checks that s has min to max characters and no control
// characters; multiline allows line breaks and tabs, for descriptions.
func checkText(field, s string, minLen, maxLen int, multiline bool) error {
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen || !utf8.ValidString(s) {
		return fail.New(fail.Invalid, "%s must be %d to %d characters", field, minLen, maxLen)
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fail.New(fail.Invalid, "%s must not contain control characters", field)
		}
	}
	return nil
}
