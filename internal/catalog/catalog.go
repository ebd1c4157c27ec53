// Package catalog is the heart of the catalog service: products, their prices
// and descriptions, and the rules for adding and repricing them, with no
// knowledge of HTTP or of how products are stored.
package catalog

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

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

// Store keeps products. A document store and a SQL store both fit, so it
// speaks of products, never of rows.
type Store interface {
	// Create stores p; fail.Conflict if its SKU is taken.
	Create(ctx context.Context, p Product) error
	// ByID finds a product by id; fail.NotFound if none.
	ByID(ctx context.Context, id string) (Product, error)
	// BySKU finds a product by SKU; fail.NotFound if none.
	BySKU(ctx context.Context, sku string) (Product, error)
	// List returns at most limit products with ids greater than after, in id
	// order (ids are UUIDv7, so that is creation order).
	List(ctx context.Context, after string, limit int) ([]Product, error)
	// UpdatePrice sets the price of product id and its update time, and
	// returns the product as it now is; fail.NotFound if none.
	UpdatePrice(ctx context.Context, id string, priceCents int64, at time.Time) (Product, error)
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
	if err := s.store.Create(ctx, p); err != nil {
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

// ChangePrice sets the price of product id. It is the one way a price
// changes, so that the ProductPriceChanged event can be published from here.
func (s *Service) ChangePrice(ctx context.Context, id string, priceCents int64) (Product, error) {
	if err := ValidatePrice(priceCents); err != nil {
		return Product{}, err
	}
	return s.store.UpdatePrice(ctx, id, priceCents, s.now())
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
