// Package legacy is the heart of the legacy service: the old shop, the
// monolith microshop was split out of, with customers and their orders in one
// database and its own unversioned API. A strangler-fig facade in the gateway
// moves its domains to the new services one at a time: it copies the data out
// through the export (every write is stamped with a change number, so a copy
// can catch up), then hands the domain over, after which the monolith refuses
// every request for it. It knows nothing of HTTP or SQL.
package legacy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
)

// Customer is a customer of the old shop. ID is the users service's user id:
// the monolith keys customers by the subject of the access token.
type Customer struct {
	ID    string
	Name  string
	Email string
}

// Status is where an order is. The old shop knew one: its back office charged
// and shipped by hand, so an order was confirmed on receipt.
type Status string

// Confirmed is the status of every order the old shop takes.
const Confirmed Status = "CONFIRMED"

// Line is one line of an order, at the unit price it was placed at.
type Line struct {
	ProductID      string
	Qty            int
	UnitPriceCents int64
}

// Address is where an order is delivered.
type Address struct {
	Name       string
	Line1      string
	City       string
	PostalCode string
	Country    string
}

// Order is a customer's order.
type Order struct {
	No         string // a UUIDv7
	CustomerID string
	Status     Status
	Lines      []Line
	TotalCents int64
	Currency   string
	PlacedAt   time.Time
	DeliverTo  Address
	// CardLast4 is all the monolith keeps of the card: the number itself is
	// never stored.
	CardLast4 string
}

// The domains the facade can move out of the monolith, each with the public
// routes that serve it.
const (
	DomainProfiles = "profiles" // GET and PUT /profile
	DomainOrders   = "orders"   // GET /orders, GET /orders/{no}, POST /orders
)

// Domains lists every domain a handover may name.
var Domains = []string{DomainProfiles, DomainOrders}

// Handover records that a domain's data moved to another service, which
// owns it from then on. A handover is for ever: nothing undoes it.
type Handover struct {
	Domain   string
	Service  string
	HandedAt time.Time
}

// Moved is the error of a request for a domain that was handed over: its
// data now lives in Service. Transport adapters answer it as gone (410),
// naming the service. It unwraps to a fail.NotFound with the same message,
// so that an adapter that does not know it still answers sensibly.
type Moved struct {
	Domain  string
	Service string
}

// Error implements error.
func (e *Moved) Error() string {
	return fmt.Sprintf("this route's data moved to the %s service", e.Service)
}

// Unwrap gives the error a kind for code that knows no Moved.
func (e *Moved) Unwrap() error { return fail.New(fail.NotFound, "%s", e.Error()) }

// Stamped is a row as the export reads it, with the change number of the
// write that last touched it.
type Stamped[T any] struct {
	Item T
	Seq  int64
}

// Export is one page of an export, in change order, and the cursor of the
// next: the last item's change number, or the one asked after when the page
// is empty.
type Export[T any] struct {
	Items []Stamped[T]
	Next  int64
}

// Stats are the monolith's figures, for the console's Monolith view.
type Stats struct {
	Customers int
	Orders    int
	Handovers []Handover
}

// Store keeps customers, orders and handovers in one database. Every write
// runs in a transaction that first takes the next change number, and stamps
// what it writes with it; and every write for a domain is refused with a
// *Moved, in that same transaction, once the domain is handed over, so that
// nothing is written for it after the handover whatever the timing.
type Store interface {
	// Customer returns the customer with id; fail.NotFound if none.
	Customer(ctx context.Context, id string) (Customer, error)
	// Enrol stores c unless a customer with its id exists already (a
	// concurrent first visit), and returns the customer as stored.
	Enrol(ctx context.Context, c Customer) (Customer, error)
	// Rename sets the customer's name; fail.NotFound if there is no
	// such customer.
	Rename(ctx context.Context, id, name string) (Customer, error)
	// PlaceOrder stores o with its lines in one transaction.
	PlaceOrder(ctx context.Context, o Order) error
	// Order returns the order numbered no; fail.NotFound if none.
	Order(ctx context.Context, no string) (Order, error)
	// OrdersOf returns a customer's orders, newest first, at most limit.
	OrdersOf(ctx context.Context, customerID string, limit int) ([]Order, error)
	// Stats counts customers and orders and lists the handovers.
	Stats(ctx context.Context) (Stats, error)
	// Handover returns the handover of domain; fail.NotFound if the
	// domain is still served here.
	Handover(ctx context.Context, domain string) (Handover, error)
	// Handovers lists every handover, oldest first.
	Handovers(ctx context.Context) ([]Handover, error)
	// HandOver records h unless its domain was handed over already, and
	// returns the handover as stored: h, or the earlier one.
	HandOver(ctx context.Context, h Handover) (Handover, error)
	// ExportProfiles returns at most limit customers whose change number
	// is above after, in change order.
	ExportProfiles(ctx context.Context, after int64, limit int) ([]Stamped[Customer], error)
	// ExportOrders is ExportProfiles for orders, with their lines.
	ExportOrders(ctx context.Context, after int64, limit int) ([]Stamped[Order], error)
}

// Account is what the users service holds of a user that the monolith copies
// when the customer first comes.
type Account struct {
	Name  string
	Email string
}

// Accounts looks a user's account up at the users service, with the user's
// own access token: login was taken out of the monolith long ago.
type Accounts interface {
	Account(ctx context.Context, userID, token string) (Account, error)
}

// Product is what the monolith needs of a catalog product.
type Product struct {
	ID         string
	PriceCents int64
	Currency   string
}

// Catalog tells a product's current price. A product the catalog does not
// have is fail.Invalid (or fail.NotFound); any other error means the catalog
// could not answer.
type Catalog interface {
	Product(ctx context.Context, id string) (Product, error)
}

// Caller is the customer a public request speaks for: the token's subject,
// and the token itself, which enrolment shows the users service.
type Caller struct {
	ID    string
	Token string
}

// Limits of the old API. The order limits are the orders service's
// (internal/orders: MaxItems, MaxQuantity, its product id and address
// bounds), copied, and the name rule is the users service's: a client must
// get the same answer before and after a route moves.
const (
	MaxLines          = 50
	MaxQty            = 1000
	maxProductIDBytes = 64
	maxFieldRunes     = 200
	maxNameRunes      = 100
	maxEmailBytes     = 254
	maxOrderNoBytes   = 64
	minCardDigits     = 12
	maxCardDigits     = 19
	maxCurrencyBytes  = 8
	maxServiceBytes   = 64
	// MaxListed bounds GET /orders: the old shop showed the latest 200.
	MaxListed = 200
	// DefaultExportLimit and MaxExportLimit bound an export page.
	DefaultExportLimit = 500
	MaxExportLimit     = 1000
	// maxUnitPriceCents keeps any order's total within int64, whatever
	// the catalog answers.
	maxUnitPriceCents = math.MaxInt64 / (MaxLines * MaxQty)
)

// Service applies the monolith's rules over its store.
type Service struct {
	store    Store
	accounts Accounts
	catalog  Catalog
	now      func() time.Time

	// moved remembers the domains known to be handed over. A handover is
	// never undone, so a domain found here needs no more reads; one not
	// found is read from the store each time, since another instance may
	// have recorded its handover meanwhile.
	moved sync.Map // domain -> *Moved
}

// NewService returns the monolith over store, enrolling customers from
// accounts and pricing orders from catalog.
func NewService(store Store, accounts Accounts, catalog Catalog) *Service {
	return &Service{store: store, accounts: accounts, catalog: catalog, now: time.Now}
}

// Serving returns a *Moved if domain was handed over, and nil while the
// monolith still serves it. Every public request checks it first, so that a
// moved route is gone whatever else is wrong with the request.
func (s *Service) Serving(ctx context.Context, domain string) error {
	if m, ok := s.moved.Load(domain); ok {
		return m.(*Moved)
	}
	h, err := s.store.Handover(ctx, domain)
	if fail.Is(err, fail.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	m := &Moved{Domain: h.Domain, Service: h.Service}
	s.moved.Store(domain, m)
	return m
}

// Profile returns the caller's profile, enrolling the caller on a first visit.
func (s *Service) Profile(ctx context.Context, c Caller) (Customer, error) {
	if err := s.Serving(ctx, DomainProfiles); err != nil {
		return Customer{}, err
	}
	return s.enrolled(ctx, c)
}

// Rename sets the caller's name, trimmed, enrolling the caller first on a
// first visit. A name that breaks the rule changes nothing, and enrols no one.
func (s *Service) Rename(ctx context.Context, c Caller, name string) (Customer, error) {
	if err := s.Serving(ctx, DomainProfiles); err != nil {
		return Customer{}, err
	}
	name = strings.TrimSpace(name)
	if err := validateName(name); err != nil {
		return Customer{}, err
	}
	if _, err := s.enrolled(ctx, c); err != nil {
		return Customer{}, err
	}
	return s.store.Rename(ctx, c.ID, name)
}

// enrolled returns the caller's customer record, creating it from the users
// service's account the first time. From then on the monolith answers from
// its own row only: the account is not asked again.
func (s *Service) enrolled(ctx context.Context, c Caller) (Customer, error) {
	cust, err := s.store.Customer(ctx, c.ID)
	if !fail.Is(err, fail.NotFound) {
		return cust, err
	}
	acct, err := s.accounts.Account(ctx, c.ID, c.Token)
	switch {
	case fail.Is(err, fail.Unauthenticated):
		return Customer{}, err
	case fail.Is(err, fail.NotFound), fail.Is(err, fail.Forbidden):
		return Customer{}, fail.Wrap(fail.NotFound, err, "no account for this token")
	case err != nil:
		return Customer{}, fail.Wrap(fail.Unavailable, err, "users unavailable")
	}
	// The users service's answer is checked like any input: a row the
	// monolith stores must fit its own rules.
	name := strings.TrimSpace(acct.Name)
	email := strings.TrimSpace(acct.Email)
	if validateName(name) != nil || email == "" || len(email) > maxEmailBytes || !utf8.ValidString(email) {
		return Customer{}, fail.New(fail.Unavailable, "users answered an account the monolith cannot store")
	}
	return s.store.Enrol(ctx, Customer{ID: c.ID, Name: name, Email: email})
}

// Orders returns the customer's orders, newest first, at most MaxListed.
func (s *Service) Orders(ctx context.Context, customerID string) ([]Order, error) {
	if err := s.Serving(ctx, DomainOrders); err != nil {
		return nil, err
	}
	return s.store.OrdersOf(ctx, customerID, MaxListed)
}

// Order returns the customer's order numbered no. Another customer's order is
// not found, as is one that does not exist, so no one learns which exist.
func (s *Service) Order(ctx context.Context, customerID, no string) (Order, error) {
	if err := s.Serving(ctx, DomainOrders); err != nil {
		return Order{}, err
	}
	notFound := fail.New(fail.NotFound, "order not found")
	if no == "" || len(no) > maxOrderNoBytes {
		return Order{}, notFound
	}
	o, err := s.store.Order(ctx, no)
	if fail.Is(err, fail.NotFound) || err == nil && o.CustomerID != customerID {
		return Order{}, notFound
	}
	return o, err
}

// LineRequest is one line a customer asks for.
type LineRequest struct {
	ProductID string
	Qty       int
}

// PlaceRequest is a customer's order as the old API takes it.
type PlaceRequest struct {
	Lines      []LineRequest
	CardNumber string
	DeliverTo  Address
}

// Normalize checks an order request and returns it with the lines for one
// product merged and the address trimmed. The rules and their numbers are the
// orders service's, named as the old API names the fields.
func (r PlaceRequest) Normalize() (PlaceRequest, error) {
	if len(r.Lines) == 0 || len(r.Lines) > MaxLines {
		return r, fail.New(fail.Invalid, "an order needs 1 to %d lines", MaxLines)
	}
	merged := make([]LineRequest, 0, len(r.Lines))
	at := map[string]int{}
	for _, l := range r.Lines {
		if l.ProductID == "" || len(l.ProductID) > maxProductIDBytes {
			return r, fail.New(fail.Invalid, "product_id must be 1 to %d characters", maxProductIDBytes)
		}
		if l.Qty < 1 || l.Qty > MaxQty {
			return r, fail.New(fail.Invalid, "qty must be 1 to %d", MaxQty)
		}
		if i, ok := at[l.ProductID]; ok {
			merged[i].Qty += l.Qty
			if merged[i].Qty > MaxQty {
				return r, fail.New(fail.Invalid, "qty must be 1 to %d", MaxQty)
			}
			continue
		}
		at[l.ProductID] = len(merged)
		merged = append(merged, l)
	}
	r.Lines = merged
	if err := validateCard(r.CardNumber); err != nil {
		return r, err
	}
	a := &r.DeliverTo
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", &a.Name}, {"line1", &a.Line1}, {"city", &a.City}, {"postal_code", &a.PostalCode}, {"country", &a.Country}} {
		*f.v = strings.TrimSpace(*f.v)
		if *f.v == "" || utf8.RuneCountInString(*f.v) > maxFieldRunes || strings.ContainsFunc(*f.v, isControl) {
			return r, fail.New(fail.Invalid, "deliver_to.%s must be 1 to %d printable characters", f.name, maxFieldRunes)
		}
	}
	if len(a.Country) != 2 || strings.Trim(a.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return r, fail.New(fail.Invalid, "deliver_to.country must be a two-letter code such as US")
	}
	return r, nil
}

// validateCard checks a card number: digits only, 12 to 19 of them, passing
// the Luhn check. The message never repeats the number.
func validateCard(card string) error {
	if len(card) < minCardDigits || len(card) > maxCardDigits || strings.Trim(card, "0123456789") != "" {
		return fail.New(fail.Invalid, "card_number must be %d to %d digits", minCardDigits, maxCardDigits)
	}
	if !luhn(card) {
		return fail.New(fail.Invalid, "card_number is not a valid card number")
	}
	return nil
}

// luhn reports whether a string of ASCII digits passes the Luhn checksum.
func luhn(digits string) bool {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// isControl refuses what the orders service refuses in an address: every
// control character, C1 included, and invalid UTF-8.
func isControl(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }

// validateName is the users service's rule for a name (internal/users:
// validateName), copied rune for rune: /profile must answer the same before
// and after it moves to users.
func validateName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > maxNameRunes || !utf8.ValidString(name) {
		return fail.New(fail.Invalid, "name must be 1 to %d characters", maxNameRunes)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fail.New(fail.Invalid, "name must not contain control characters")
		}
	}
	return nil
}

// Place takes a customer's order: it checks it, prices every line from the
// catalog, and stores it CONFIRMED, with the card's last four digits only.
func (s *Service) Place(ctx context.Context, customerID string, req PlaceRequest) (Order, error) {
	if err := s.Serving(ctx, DomainOrders); err != nil {
		return Order{}, err
	}
	req, err := req.Normalize()
	if err != nil {
		return Order{}, err
	}
	o := Order{
		No: uuid.Must(uuid.NewV7()).String(), CustomerID: customerID, Status: Confirmed,
		PlacedAt: s.now().UTC(), DeliverTo: req.DeliverTo, CardLast4: req.CardNumber[len(req.CardNumber)-4:],
	}
	for _, l := range req.Lines {
		p, err := s.price(ctx, l.ProductID)
		if err != nil {
			return Order{}, err
		}
		if o.Currency == "" {
			o.Currency = p.Currency
		} else if o.Currency != p.Currency {
			return Order{}, fail.New(fail.Invalid, "all lines must be priced in one currency")
		}
		o.Lines = append(o.Lines, Line{ProductID: l.ProductID, Qty: l.Qty, UnitPriceCents: p.PriceCents})
		o.TotalCents += p.PriceCents * int64(l.Qty)
	}
	if err := s.store.PlaceOrder(ctx, o); err != nil {
		return Order{}, err
	}
	return o, nil
}

// price asks the catalog for a product's price, and checks the answer.
func (s *Service) price(ctx context.Context, id string) (Product, error) {
	p, err := s.catalog.Product(ctx, id)
	switch {
	case fail.Is(err, fail.Invalid), fail.Is(err, fail.NotFound):
		return Product{}, fail.Wrap(fail.Invalid, err, "unknown product %q", id)
	case err != nil:
		return Product{}, fail.Wrap(fail.Unavailable, err, "catalog unavailable")
	}
	if p.PriceCents < 0 || p.PriceCents > maxUnitPriceCents || p.Currency == "" || len(p.Currency) > maxCurrencyBytes {
		return Product{}, fail.New(fail.Unavailable, "catalog answered an unusable price for product %q", id)
	}
	return p, nil
}

// Stats returns the monolith's figures.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	return s.store.Stats(ctx)
}

// ExportProfiles returns the customers written after the change numbered
// after, in change order, at most limit (DefaultExportLimit when 0). The
// export goes on after a handover: the facade catches up with it.
func (s *Service) ExportProfiles(ctx context.Context, after int64, limit int) (Export[Customer], error) {
	limit, err := exportLimit(after, limit)
	if err != nil {
		return Export[Customer]{}, err
	}
	items, err := s.store.ExportProfiles(ctx, after, limit)
	return exported(items, after), err
}

// ExportOrders is ExportProfiles for orders.
func (s *Service) ExportOrders(ctx context.Context, after int64, limit int) (Export[Order], error) {
	limit, err := exportLimit(after, limit)
	if err != nil {
		return Export[Order]{}, err
	}
	items, err := s.store.ExportOrders(ctx, after, limit)
	return exported(items, after), err
}

func exportLimit(after int64, limit int) (int, error) {
	if after < 0 {
		return 0, fail.New(fail.Invalid, "after must be a whole number of 0 or more")
	}
	if limit == 0 {
		return DefaultExportLimit, nil
	}
	if limit < 1 || limit > MaxExportLimit {
		return 0, fail.New(fail.Invalid, "limit must be a whole number from 1 to %d", MaxExportLimit)
	}
	return limit, nil
}

func exported[T any](items []Stamped[T], after int64) Export[T] {
	e := Export[T]{Items: items, Next: after}
	if len(items) > 0 {
		e.Next = items[len(items)-1].Seq
	}
	return e
}

// Handovers lists every handover, oldest first.
func (s *Service) Handovers(ctx context.Context) ([]Handover, error) {
	return s.store.Handovers(ctx)
}

// HandOver records that domain moved to service. Asked again with the same
// service it answers the first record and changes nothing; with another
// service it is a conflict: a domain moves once.
func (s *Service) HandOver(ctx context.Context, domain, service string) (Handover, error) {
	if !slices.Contains(Domains, domain) {
		return Handover{}, fail.New(fail.Invalid, "domain must be one of %s", strings.Join(Domains, ", "))
	}
	if !serviceName(service) {
		return Handover{}, fail.New(fail.Invalid, "service must be a service name: 1 to %d lower-case letters, digits or dashes", maxServiceBytes)
	}
	h, err := s.store.HandOver(ctx, Handover{Domain: domain, Service: service, HandedAt: s.now().UTC()})
	if err != nil {
		return Handover{}, err
	}
	if h.Service != service {
		return Handover{}, fail.New(fail.Conflict, "domain %s was handed over to %s already", domain, h.Service)
	}
	return h, nil
}

// serviceName reports whether s can be a service's name in the registry.
func serviceName(s string) bool {
	if s == "" || len(s) > maxServiceBytes {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
