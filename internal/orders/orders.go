// Package orders is the heart of the orders service: orders, the rules for
// placing one, and the checkout saga that drives payments, inventory and
// shipping to an end. It knows nothing of HTTP or SQL.
package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Status is where an order is in its life.
type Status string

// An order is PENDING until its saga ends it COMPLETED or CANCELLED.
const (
	Pending   Status = "PENDING"
	Completed Status = "COMPLETED"
	Cancelled Status = "CANCELLED"
)

// Saga styles an order can run under.
const (
	ModeOrchestration = "orchestration"
	ModeChoreography  = "choreography"
	ModeParallel      = "parallel"
)

// Modes are the saga styles this service can run.
var Modes = []string{ModeOrchestration, ModeChoreography, ModeParallel}

// Item is one line of an order, at the price it was placed at.
type Item struct {
	ProductID  string `json:"product_id"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

// Address is where an order ships to.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// Order is a customer's order.
type Order struct {
	ID           string
	UserID       string
	Status       Status
	Items        []Item
	TotalCents   int64
	Currency     string
	Saga         string
	CancelReason string
	Address      Address
	CreatedAt    time.Time
	UpdatedAt    time.Time
	CustomerName string // in the read model only: the name UserCreated gave
}

// Line is what a customer asks for: a product and how many.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// PlaceRequest is a customer's checkout.
type PlaceRequest struct {
	Items   []Line  `json:"items"`
	Card    string  `json:"card"`
	Address Address `json:"shipping_address"`
}

// Limits on one order, so that no request can ask for unbounded work.
const (
	MaxItems       = 50
	MaxQuantity    = 1000
	maxIDBytes     = 64
	maxFieldRunes  = 200
	maxIdemKeyLen  = 255
	defaultListLen = 50
	maxListLen     = 1000
)

// Normalize checks a checkout and returns it with duplicate products merged
// and the address trimmed.
func (r PlaceRequest) Normalize() (PlaceRequest, error) {
	if len(r.Items) == 0 || len(r.Items) > MaxItems {
		return r, fail.New(fail.Invalid, "an order needs 1 to %d items", MaxItems)
	}
	merged := make([]Line, 0, len(r.Items))
	at := map[string]int{}
	for _, l := range r.Items {
		if l.ProductID == "" || len(l.ProductID) > maxIDBytes {
			return r, fail.New(fail.Invalid, "product_id must be 1 to %d characters", maxIDBytes)
		}
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return r, fail.New(fail.Invalid, "quantity must be 1 to %d", MaxQuantity)
		}
		if i, ok := at[l.ProductID]; ok {
			merged[i].Quantity += l.Quantity
			if merged[i].Quantity > MaxQuantity {
				return r, fail.New(fail.Invalid, "quantity must be 1 to %d", MaxQuantity)
			}
			continue
		}
		at[l.ProductID] = len(merged)
		merged = append(merged, l)
	}
	r.Items = merged
	r.Card = strings.ReplaceAll(strings.TrimSpace(r.Card), " ", "")
	if len(r.Card) < 12 || len(r.Card) > 19 || strings.Trim(r.Card, "0123456789") != "" {
		return r, fail.New(fail.Invalid, "payment.card must be 12 to 19 digits")
	}
	a := &r.Address
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", &a.Name}, {"line1", &a.Line1}, {"city", &a.City}, {"postal_code", &a.PostalCode}, {"country", &a.Country}} {
		*f.v = strings.TrimSpace(*f.v)
		if *f.v == "" || utf8.RuneCountInString(*f.v) > maxFieldRunes || strings.ContainsFunc(*f.v, isControl) {
			return r, fail.New(fail.Invalid, "shipping_address.%s must be 1 to %d printable characters", f.name, maxFieldRunes)
		}
	}
	if len(a.Country) != 2 || strings.ToUpper(a.Country) != a.Country || strings.Trim(a.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return r, fail.New(fail.Invalid, "shipping_address.country must be a two-letter code such as US")
	}
	return r, nil
}

// isControl refuses what shipping refuses in an address (every control
// character, C1 included, and invalid UTF-8), so that an order accepted here
// is never one shipping cannot schedule.
func isControl(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }

// Fingerprint identifies a checkout's content, so that a retry with the same
// Idempotency-Key can be told apart from a different order under that key.
func (r PlaceRequest) Fingerprint() string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Product is what orders needs to know of a catalog product.
type Product struct {
	ID         string
	PriceCents int64
	Currency   string
}

// Catalog tells the current price of a product; fail.NotFound if none.
// Orders keeps its own copy of every price from the catalog's events, and
// asks the catalog only for a product it has not heard of yet.
type Catalog interface {
	Product(ctx context.Context, id string) (Product, error)
}

// CardVault exchanges a card number for a token that only the payments
// service can charge, so that no card number is stored here or travels on
// the bus.
type CardVault interface {
	Tokenize(ctx context.Context, card string) (token string, err error)
}

// Settings are the admin-tunable settings of the orders service.
type Settings struct {
	SagaMode string `json:"saga_mode"`
}

// Replay is the first answer given for an Idempotency-Key.
type Replay struct {
	UserID      string
	Key         string
	Fingerprint string
	OrderID     string
}

// Page is one page of a listing and the cursor of the next.
type Page struct {
	Orders []Order
	Next   string
}

// Store keeps orders, saga state and settings.
type Store interface {
	// Create stores a new order, its saga and, when replay is not nil, the
	// idempotency record, in one transaction. fail.Conflict if the
	// idempotency key was taken meanwhile.
	Create(ctx context.Context, o Order, s Saga, replay *Replay, events []event.Event) error
	Order(ctx context.Context, id string) (Order, error)
	Replay(ctx context.Context, userID, key string) (Replay, error)
	ListAll(ctx context.Context, after string, limit int) (Page, error)
	Settings(ctx context.Context) (Settings, bool, error)
	SaveSettings(ctx context.Context, s Settings) error
	// KnownProduct is orders' own copy of a product's price; fail.NotFound
	// if it has none. RememberProduct stores or updates that copy.
	KnownProduct(ctx context.Context, id string) (Product, error)
	RememberProduct(ctx context.Context, p Product) error
	SagaStore
	ViewStore
}

// Meter counts what becomes of orders, for the service's metrics. It is
// told after the change is stored, with the context of the unit of work
// that stored it; that work may not have committed yet (an event's effect
// commits with the event's inbox record, after Observe returns), so a
// Meter counts once it has, and never for work that rolled back.
type Meter interface {
	// Placed counts an order accepted under the saga style saga.
	Placed(ctx context.Context, saga string)
	// Ended counts an order that ended final under saga, took after it
	// was placed. It is told once per order: only the change that ends
	// an order's saga, which the store makes once, tells it.
	Ended(ctx context.Context, saga string, final Status, took time.Duration)
}

// noMeter counts nothing, until Measure is called.
type noMeter struct{}

func (noMeter) Placed(context.Context, string)                       {}
func (noMeter) Ended(context.Context, string, Status, time.Duration) {}

// Service applies the orders rules.
type Service struct {
	store       Store
	catalog     Catalog
	vault       CardVault
	defaultMode string
	wake        func()
	meter       Meter
	now         func() time.Time
}

// NewService returns the orders service. defaultMode is the saga style for
// new orders until an admin changes it; wake, called after a saga changed,
// tells the orchestrator there may be a command to send.
func NewService(store Store, catalog Catalog, vault CardVault, defaultMode string, wake func()) *Service {
	return &Service{store: store, catalog: catalog, vault: vault, defaultMode: defaultMode, wake: wake, meter: noMeter{}, now: time.Now}
}

// Measure makes the service count the orders placed and ended with m.
// Call it before the service is used.
func (s *Service) Measure(m Meter) { s.meter = m }

// Place accepts a checkout: it prices the items from the catalog, stores the
// order with its saga, and returns it PENDING. With an idempotency key, a
// retry of the same checkout returns the first order and creates nothing; the
// same key with another checkout is refused. replayed says which happened.
func (s *Service) Place(ctx context.Context, userID, idemKey string, req PlaceRequest) (o Order, replayed bool, err error) {
	if len(idemKey) > maxIdemKeyLen {
		return Order{}, false, fail.New(fail.Invalid, "Idempotency-Key must be at most %d characters", maxIdemKeyLen)
	}
	req, err = req.Normalize()
	if err != nil {
		return Order{}, false, err
	}
	fingerprint := req.Fingerprint()
	if idemKey != "" {
		if o, ok, err := s.replay(ctx, userID, idemKey, fingerprint); ok || err != nil {
			return o, ok, err
		}
	}
	settings, err := s.Settings(ctx)
	if err != nil {
		return Order{}, false, err
	}
	now := s.now().UTC()
	o = Order{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: userID, Status: Pending,
		Saga: settings.SagaMode, Address: req.Address, CreatedAt: now, UpdatedAt: now,
	}
	for _, l := range req.Items {
		p, err := s.price(ctx, l.ProductID)
		if err != nil {
			return Order{}, false, err
		}
		if o.Currency == "" {
			o.Currency = p.Currency
		} else if o.Currency != p.Currency {
			return Order{}, false, fail.New(fail.Invalid, "all items must be priced in one currency")
		}
		o.Items = append(o.Items, Item{ProductID: p.ID, Quantity: l.Quantity, PriceCents: p.PriceCents})
		o.TotalCents += p.PriceCents * int64(l.Quantity)
	}
	var replay *Replay
	if idemKey != "" {
		replay = &Replay{UserID: userID, Key: idemKey, Fingerprint: fingerprint, OrderID: o.ID}
	}
	token, err := s.vault.Tokenize(ctx, req.Card)
	if err != nil {
		if fail.Is(err, fail.Invalid) {
			return Order{}, false, fail.New(fail.Invalid, "payment.card: %s", fail.MessageOf(err))
		}
		return Order{}, false, fail.Wrap(fail.Unavailable, err, "payments unavailable")
	}
	created, err := orderCreated(o, token)
	if err != nil {
		return Order{}, false, err
	}
	sg := NewSaga(o, token, now)
	sg.TraceParent = traceParent(ctx) // the orchestrator's steps join the trace of this checkout
	if err := s.store.Create(ctx, o, sg, replay, []event.Event{created}); err != nil {
		if fail.Is(err, fail.Conflict) && idemKey != "" { // a concurrent retry won the key
			if o, ok, rerr := s.replay(ctx, userID, idemKey, fingerprint); ok || rerr != nil {
				return o, ok, rerr
			}
		}
		return Order{}, false, err
	}
	s.meter.Placed(ctx, o.Saga)
	s.wake()
	return o, false, nil
}

// traceParent is the W3C traceparent of the span in ctx, or "" if it has
// none: what the saga keeps to run its later steps in the same trace.
func traceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// inTrace returns ctx in the trace traceparent names, with its span as the
// remote parent of the spans started in ctx; ctx as it is if there is none.
func inTrace(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// price returns a product's current price: orders' own copy, kept from the
// catalog's events, or the catalog's answer for a product not heard of yet.
func (s *Service) price(ctx context.Context, id string) (Product, error) {
	p, err := s.store.KnownProduct(ctx, id)
	if err == nil {
		return p, nil
	}
	if !fail.Is(err, fail.NotFound) {
		return Product{}, err
	}
	p, err = s.catalog.Product(ctx, id)
	if fail.Is(err, fail.NotFound) {
		return Product{}, fail.New(fail.Invalid, "product %s does not exist", id)
	}
	if err != nil {
		return Product{}, fail.Wrap(fail.Unavailable, err, "catalog unavailable")
	}
	if err := s.store.RememberProduct(ctx, p); err != nil {
		return Product{}, err
	}
	return p, nil
}

// ProductChanged updates orders' copy of a product's price, from the
// catalog's ProductCreated and ProductPriceChanged events. Orders already
// placed keep the price they were placed at.
func (s *Service) ProductChanged(ctx context.Context, p Product) error {
	return s.store.RememberProduct(ctx, p)
}

func (s *Service) replay(ctx context.Context, userID, key, fingerprint string) (Order, bool, error) {
	r, err := s.store.Replay(ctx, userID, key)
	if fail.Is(err, fail.NotFound) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, err
	}
	if r.Fingerprint != fingerprint {
		return Order{}, false, fail.New(fail.Invalid, "Idempotency-Key was already used for a different order")
	}
	o, err := s.store.Order(ctx, r.OrderID)
	return o, err == nil, err
}

// Get returns an order the caller may see: its owner's, or any for an admin.
// Anyone else is told it does not exist.
func (s *Service) Get(ctx context.Context, callerID string, admin bool, id string) (Order, error) {
	o, err := s.store.Order(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if !admin && o.UserID != callerID {
		return Order{}, fail.New(fail.NotFound, "order not found")
	}
	return o, nil
}

// ListByUser returns a user's orders, newest first, from the read model.
func (s *Service) ListByUser(ctx context.Context, userID, after string, limit int) (Page, error) {
	return s.store.ViewsByUser(ctx, userID, after, clampLimit(limit))
}

// ListAll returns every order, oldest first, for admins and the audit.
func (s *Service) ListAll(ctx context.Context, after string, limit int) (Page, error) {
	return s.store.ListAll(ctx, after, clampLimit(limit))
}

func clampLimit(n int) int {
	if n <= 0 {
		return defaultListLen
	}
	return min(n, maxListLen)
}

// Settings returns the current settings.
func (s *Service) Settings(ctx context.Context) (Settings, error) {
	st, ok, err := s.store.Settings(ctx)
	if err != nil {
		return Settings{}, err
	}
	if !ok {
		st = Settings{SagaMode: s.defaultMode}
	}
	return st, nil
}

// UpdateSettings changes the settings; a new saga mode applies to orders
// placed after it.
func (s *Service) UpdateSettings(ctx context.Context, st Settings) (Settings, error) {
	if !slices.Contains(Modes, st.SagaMode) {
		return Settings{}, fail.New(fail.Invalid, "saga_mode must be one of %s", strings.Join(Modes, ", "))
	}
	if err := s.store.SaveSettings(ctx, st); err != nil {
		return Settings{}, err
	}
	return st, nil
}
