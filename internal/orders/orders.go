// Package orders is the heart of the orders service: orders, the rules for
// placing one, and the checkout saga that drives payments, inventory and
// shipping to an end. It knows nothing of HTTP or SQL.
package orders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
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

// An order imported from the legacy monolith ran no saga here: its saga is
// SagaNone and its origin OriginLegacy. An order placed here has no Origin
// stored; API v2, which shows every order, calls its origin OriginShop.
const (
	SagaNone     = "none"
	OriginLegacy = "legacy"
	OriginShop   = "shop"
)

// Origins chooses, by where they come from, the orders a listing holds.
type Origins int

const (
	// PlacedHere holds only the orders placed through this service's
	// checkout: all that API v1 knows of, each of which ran a saga. It is
	// the zero value, so a listing shows no imported order unless asked.
	PlacedHere Origins = iota
	// AnyOrigin holds every order, those imported from the legacy monolith
	// too.
	AnyOrigin
)

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
	CustomerName string // in the read model only: the name UserCreated or UserRenamed gave
	Origin       string // "" for an order placed here, OriginLegacy for one imported
}

// Imported reports whether o was imported (from the legacy monolith)
// rather than placed through this service's checkout.
func (o Order) Imported() bool { return o.Origin != "" }

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
	a, err := r.Address.normalize("shipping_address")
	if err != nil {
		return r, err
	}
	r.Address = a
	return r, nil
}

// normalize checks an address and returns it trimmed; an error names the
// field as at.field.
func (a Address) normalize(at string) (Address, error) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", &a.Name}, {"line1", &a.Line1}, {"city", &a.City}, {"postal_code", &a.PostalCode}, {"country", &a.Country}} {
		*f.v = strings.TrimSpace(*f.v)
		if *f.v == "" || utf8.RuneCountInString(*f.v) > maxFieldRunes || strings.ContainsFunc(*f.v, isControl) {
			return a, fail.New(fail.Invalid, "%s.%s must be 1 to %d printable characters", at, f.name, maxFieldRunes)
		}
	}
	if len(a.Country) != 2 || strings.ToUpper(a.Country) != a.Country || strings.Trim(a.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return a, fail.New(fail.Invalid, "%s.country must be a two-letter code such as US", at)
	}
	return a, nil
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
	// ListAll lists the orders of origins, oldest first.
	ListAll(ctx context.Context, origins Origins, after string, limit int) (Page, error)
	Settings(ctx context.Context) (Settings, bool, error)
	SaveSettings(ctx context.Context, s Settings) error
	// KnownProduct is orders' own copy of a product's price; fail.NotFound
	// if it has none. RememberProduct stores or updates that copy.
	KnownProduct(ctx context.Context, id string) (Product, error)
	RememberProduct(ctx context.Context, p Product) error
	// Import stores historical orders that run no saga, each with the
	// event that announces it to the read model, and applies that event's
	// projection (ApplyImported) at once, all in one transaction: an
	// imported order is listed as soon as Import returns. An order whose
	// id is taken is not stored, nor its event, nor its view: Import
	// returns the orders stored under those ids, for the caller to tell a
	// repeat from a conflict.
	Import(ctx context.Context, batch []ImportedOrder) (taken []Order, err error)
	SagaStore
	ViewStore
}

// ImportedOrder is a historical order, the OrderImported event that
// announces it to orders' own read model, and that event's payload, which
// the store projects in the transaction that stores the order. The
// projection is idempotent, so the event, when the read model's consumer
// applies it later, changes nothing.
type ImportedOrder struct {
	Order Order
	Event event.Event
	View  OrderImported
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

// MaxImport bounds one import of historical orders, so that no call asks
// for unbounded work in one transaction.
const MaxImport = 1000

// ImportResult is what an import of historical orders did. Imported,
// Skipped and the Conflicts add up to the orders given.
type ImportResult struct {
	// Imported counts the orders stored now.
	Imported int
	// Skipped counts the orders that were stored already, as given: a
	// repeat of an earlier import.
	Skipped int
	// Conflicts lists the ids of orders stored already with other
	// content; they are left as they are.
	Conflicts []string
}

// Import takes over historical orders from the legacy monolith. They ended
// there, COMPLETED or CANCELLED, and were charged and shipped by hand: no
// saga runs for them, and no event reaches payments, inventory or
// shipping. Each is stored with origin legacy and saga none, put in the
// read model at once, and announced to orders' own read model alone
// (OrderImported), so that the listings that show imported orders list it
// as soon as Import returns and after a rebuild of the read model. An id
// already stored is skipped, so an import may be repeated; with other
// content it is reported as a conflict and left alone. The import is one
// transaction and is refused whole, changing nothing, if an order breaks a
// rule.
func (s *Service) Import(ctx context.Context, in []Order) (ImportResult, error) {
	if len(in) > MaxImport {
		return ImportResult{}, fail.New(fail.Invalid, "an import holds at most %d orders", MaxImport)
	}
	now := s.now().UTC()
	batch := make([]ImportedOrder, 0, len(in))
	wanted := make(map[string]Order, len(in))
	for i, o := range in {
		o, err := historical(o, now)
		if err != nil {
			return ImportResult{}, fail.New(fail.Invalid, "orders[%d].%s", i, fail.MessageOf(err))
		}
		if _, dup := wanted[o.ID]; dup {
			return ImportResult{}, fail.New(fail.Invalid, "orders[%d].id %q appears more than once", i, o.ID)
		}
		wanted[o.ID] = o
		view, imported, err := orderImported(o)
		if err != nil {
			return ImportResult{}, err
		}
		batch = append(batch, ImportedOrder{Order: o, Event: imported, View: view})
	}
	res := ImportResult{Conflicts: []string{}}
	if len(batch) == 0 {
		return res, nil
	}
	taken, err := s.store.Import(ctx, batch)
	if err != nil {
		return ImportResult{}, err
	}
	for _, got := range taken {
		if sameHistory(got, wanted[got.ID]) {
			res.Skipped++
		} else {
			res.Conflicts = append(res.Conflicts, got.ID)
		}
	}
	res.Imported = len(batch) - len(taken)
	return res, nil
}

// historical checks a historical order and returns it as it is stored:
// trimmed, in UTC, of origin legacy and saga none, last updated when it was
// placed. An error names the field, for the caller to say which order.
func historical(o Order, now time.Time) (Order, error) {
	switch {
	case o.ID == "" || len(o.ID) > maxIDBytes:
		return o, fail.New(fail.Invalid, "id must be 1 to %d characters", maxIDBytes)
	case o.UserID == "" || len(o.UserID) > maxIDBytes:
		return o, fail.New(fail.Invalid, "user_id must be 1 to %d characters", maxIDBytes)
	case o.Status != Completed && o.Status != Cancelled:
		return o, fail.New(fail.Invalid, "status must be %s or %s: a historical order has ended", Completed, Cancelled)
	case len(o.Items) == 0 || len(o.Items) > MaxItems:
		return o, fail.New(fail.Invalid, "items must be 1 to %d lines", MaxItems)
	case len(o.Currency) != 3 || strings.Trim(o.Currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
		return o, fail.New(fail.Invalid, "currency must be a three-letter code such as USD")
	case o.CreatedAt.IsZero():
		return o, fail.New(fail.Invalid, "created_at is required")
	case o.CreatedAt.After(now.Add(maxClockSkew)):
		return o, fail.New(fail.Invalid, "created_at must not be in the future")
	}
	var total int64
	for i, it := range o.Items {
		switch {
		case it.ProductID == "" || len(it.ProductID) > maxIDBytes:
			return o, fail.New(fail.Invalid, "items[%d].product_id must be 1 to %d characters", i, maxIDBytes)
		case it.Quantity < 1 || it.Quantity > MaxQuantity:
			return o, fail.New(fail.Invalid, "items[%d].quantity must be 1 to %d", i, MaxQuantity)
		case it.PriceCents < 0 || it.PriceCents > (math.MaxInt64-total)/int64(it.Quantity):
			return o, fail.New(fail.Invalid, "items[%d].price_cents must be 0 or more, and the total must fit in 64 bits", i)
		}
		total += it.PriceCents * int64(it.Quantity)
	}
	if o.TotalCents != total {
		return o, fail.New(fail.Invalid, "total_cents is %d, but the items add up to %d", o.TotalCents, total)
	}
	a, err := o.Address.normalize("shipping_address")
	if err != nil {
		return o, err
	}
	o.Address = a
	o.Items = slices.Clone(o.Items)
	o.CreatedAt = o.CreatedAt.UTC()
	o.UpdatedAt = o.CreatedAt
	o.Saga, o.Origin, o.CancelReason, o.CustomerName = SagaNone, OriginLegacy, "", ""
	return o, nil
}

// maxClockSkew is how far ahead of this service's clock a historical
// order's time may be: the monolith's clock and this one differ a little.
const maxClockSkew = time.Minute

// sameHistory reports whether a stored order is the historical order want,
// both as historical returns them.
func sameHistory(got, want Order) bool {
	return got.ID == want.ID && got.UserID == want.UserID && got.Status == want.Status &&
		slices.Equal(got.Items, want.Items) && got.TotalCents == want.TotalCents && got.Currency == want.Currency &&
		got.Address == want.Address && got.CreatedAt.Equal(want.CreatedAt) &&
		got.Origin == OriginLegacy && got.Saga == SagaNone
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
// Anyone else is told it does not exist. An imported order is returned too:
// which API versions show one is theirs to say.
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

// ListByUser returns a user's orders of origins, newest first, from the
// read model.
func (s *Service) ListByUser(ctx context.Context, userID string, origins Origins, after string, limit int) (Page, error) {
	return s.store.ViewsByUser(ctx, userID, origins, after, clampLimit(limit))
}

// ListAll returns every order of origins, oldest first, for admins and the
// audit.
func (s *Service) ListAll(ctx context.Context, origins Origins, after string, limit int) (Page, error) {
	return s.store.ListAll(ctx, origins, after, clampLimit(limit))
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
