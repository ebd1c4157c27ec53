package legacy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/legacy/legacydb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// accounts is a fake of the users service's accounts: it knows Ada, counts
// the calls, and can be down.
type accounts struct {
	calls  atomic.Int64
	down   bool
	tokens sync.Map // token -> true, each one it was shown
}

func (a *accounts) Account(_ context.Context, userID, token string) (legacy.Account, error) {
	a.calls.Add(1)
	a.tokens.Store(token, true)
	switch {
	case a.down:
		return legacy.Account{}, fail.New(fail.Unavailable, "users unavailable")
	case userID == "gone":
		return legacy.Account{}, fail.New(fail.NotFound, "user not found")
	}
	return legacy.Account{Name: " Ada ", Email: "ada@example.com"}, nil
}

// catalog is a fake of the catalog: a few products, unknown ones refused as
// the real client refuses them, and "broken" that cannot be priced.
type catalog struct{}

func (catalog) Product(_ context.Context, id string) (legacy.Product, error) {
	switch id {
	case "p-1":
		return legacy.Product{ID: id, PriceCents: 500, Currency: "USD"}, nil
	case "p-2":
		return legacy.Product{ID: id, PriceCents: 1250, Currency: "USD"}, nil
	case "p-eur":
		return legacy.Product{ID: id, PriceCents: 900, Currency: "EUR"}, nil
	case "broken":
		return legacy.Product{}, errors.New("connection refused")
	}
	return legacy.Product{}, fail.New(fail.Invalid, "unknown product %q", id)
}

// newService is the monolith over a real SQLite store, with the fakes.
func newService(t *testing.T) (*legacy.Service, *legacydb.Store, *accounts) {
	t.Helper()
	store := legacydb.New(sqldbtest.Open(t, "legacy", legacydb.Migrations))
	acc := &accounts{}
	return legacy.NewService(store, acc, catalog{}), store, acc
}

func validRequest() legacy.PlaceRequest {
	return legacy.PlaceRequest{
		Lines:      []legacy.LineRequest{{ProductID: "p-1", Qty: 2}, {ProductID: "p-2", Qty: 1}},
		CardNumber: "4242424242424242",
		DeliverTo:  legacy.Address{Name: "Ada", Line1: "1 Main St", City: "London", PostalCode: "N1", Country: "GB"},
	}
}

var ada = legacy.Caller{ID: "u-1", Token: "tok-ada"}

// TestNormalize holds the old API to the orders service's limits.
func TestNormalize(t *testing.T) {
	tests := []struct {
		name   string
		change func(*legacy.PlaceRequest)
		want   string // part of the error message; empty means valid
	}{
		{"valid", func(*legacy.PlaceRequest) {}, ""},
		{"50 lines", func(r *legacy.PlaceRequest) {
			r.Lines = nil
			for i := range 50 {
				r.Lines = append(r.Lines, legacy.LineRequest{ProductID: strings.Repeat("p", i+1), Qty: 1})
			}
		}, ""},
		{"no lines", func(r *legacy.PlaceRequest) { r.Lines = nil }, "1 to 50 lines"},
		{"51 lines", func(r *legacy.PlaceRequest) {
			r.Lines = nil
			for i := range 51 {
				r.Lines = append(r.Lines, legacy.LineRequest{ProductID: strings.Repeat("p", i+1), Qty: 1})
			}
		}, "1 to 50 lines"},
		{"zero qty", func(r *legacy.PlaceRequest) { r.Lines[0].Qty = 0 }, "qty must be 1 to 1000"},
		{"negative qty", func(r *legacy.PlaceRequest) { r.Lines[0].Qty = -3 }, "qty must be 1 to 1000"},
		{"qty 1000", func(r *legacy.PlaceRequest) { r.Lines[0].Qty = 1000 }, ""},
		{"qty 1001", func(r *legacy.PlaceRequest) { r.Lines[0].Qty = 1001 }, "qty must be 1 to 1000"},
		{"merged qty too big", func(r *legacy.PlaceRequest) {
			r.Lines = []legacy.LineRequest{{ProductID: "p-1", Qty: 600}, {ProductID: "p-1", Qty: 600}}
		}, "qty must be 1 to 1000"},
		{"empty product", func(r *legacy.PlaceRequest) { r.Lines[0].ProductID = "" }, "product_id"},
		{"long product", func(r *legacy.PlaceRequest) { r.Lines[0].ProductID = strings.Repeat("p", 65) }, "product_id"},
		{"card with letters", func(r *legacy.PlaceRequest) { r.CardNumber = "4242abcd42424242" }, "card_number must be 12 to 19 digits"},
		{"card with spaces", func(r *legacy.PlaceRequest) { r.CardNumber = "4242 4242 4242 4242" }, "card_number must be 12 to 19 digits"},
		{"short card", func(r *legacy.PlaceRequest) { r.CardNumber = "42424242424" }, "card_number must be 12 to 19 digits"},
		{"long card", func(r *legacy.PlaceRequest) { r.CardNumber = "42424242424242424242" }, "card_number must be 12 to 19 digits"},
		{"card failing Luhn", func(r *legacy.PlaceRequest) { r.CardNumber = "4242424242424241" }, "card_number is not a valid card number"},
		{"12-digit Luhn card", func(r *legacy.PlaceRequest) { r.CardNumber = "000000000000" }, ""},
		{"declined test card", func(r *legacy.PlaceRequest) { r.CardNumber = "4000000000000002" }, ""},
		{"missing city", func(r *legacy.PlaceRequest) { r.DeliverTo.City = "  " }, "deliver_to.city"},
		{"long line1", func(r *legacy.PlaceRequest) { r.DeliverTo.Line1 = strings.Repeat("é", 201) }, "deliver_to.line1"},
		{"control character", func(r *legacy.PlaceRequest) { r.DeliverTo.Name = "Ada\x00" }, "deliver_to.name"},
		{"C1 control character", func(r *legacy.PlaceRequest) { r.DeliverTo.Name = "A\u0085da" }, "deliver_to.name"},
		{"invalid UTF-8", func(r *legacy.PlaceRequest) { r.DeliverTo.PostalCode = "N\xff1" }, "deliver_to.postal_code"},
		{"lower-case country", func(r *legacy.PlaceRequest) { r.DeliverTo.Country = "gb" }, "deliver_to.country"},
		{"three-letter country", func(r *legacy.PlaceRequest) { r.DeliverTo.Country = "GBR" }, "deliver_to.country"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.change(&r)
			_, err := r.Normalize()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Normalize() = %v, want no error", err)
				}
				return
			}
			if !fail.Is(err, fail.Invalid) || !strings.Contains(fail.MessageOf(err), tt.want) {
				t.Fatalf("Normalize() = %v, want an invalid error about %q", err, tt.want)
			}
			if strings.Contains(err.Error(), r.CardNumber) {
				t.Errorf("error %q repeats the card number", err)
			}
		})
	}
}

func TestNormalizeMergesLinesAndTrims(t *testing.T) {
	r := validRequest()
	r.Lines = []legacy.LineRequest{{ProductID: "p-1", Qty: 1}, {ProductID: "p-2", Qty: 2}, {ProductID: "p-1", Qty: 3}}
	r.DeliverTo.City = "  London "
	got, err := r.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := []legacy.LineRequest{{ProductID: "p-1", Qty: 4}, {ProductID: "p-2", Qty: 2}}
	if len(got.Lines) != 2 || got.Lines[0] != want[0] || got.Lines[1] != want[1] {
		t.Errorf("lines = %v, want %v", got.Lines, want)
	}
	if got.DeliverTo.City != "London" {
		t.Errorf("city = %q, want it trimmed", got.DeliverTo.City)
	}
}

// TestRenameRule holds PUT /profile to the users service's name rule and
// its exact messages.
func TestRenameRule(t *testing.T) {
	const (
		length  = "name must be 1 to 100 characters"
		control = "name must not contain control characters"
	)
	tests := []struct {
		name, in, want, err string
	}{
		{"plain", "Ada Lovelace", "Ada Lovelace", ""},
		{"trimmed", "  Ada \t\n", "Ada", ""},
		{"100 runes", strings.Repeat("é", 100), strings.Repeat("é", 100), ""},
		{"101 runes", strings.Repeat("é", 101), "", length},
		{"empty", "", "", length},
		{"only spaces", "   ", "", length},
		{"invalid UTF-8", "Ada\xff", "", length},
		{"NUL", "A\x00da", "", control},
		{"tab inside", "A\tda", "", control},
		{"DEL", "Ada\x7f", "", control},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, store, acc := newService(t)
			got, err := svc.Rename(context.Background(), ada, tt.in)
			if tt.err != "" {
				if !fail.Is(err, fail.Invalid) || fail.MessageOf(err) != tt.err {
					t.Fatalf("Rename(%q) = %v, want invalid: %q", tt.in, err, tt.err)
				}
				// A refused name changes nothing, and enrols no one.
				if _, err := store.Customer(context.Background(), ada.ID); !fail.Is(err, fail.NotFound) || acc.calls.Load() != 0 {
					t.Errorf("after a refused name: customer %v, %d account calls; want none stored, none asked", err, acc.calls.Load())
				}
				return
			}
			if err != nil || got.Name != tt.want {
				t.Fatalf("Rename(%q) = %+v, %v; want name %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestProfileEnrolsOnTheFirstVisitOnly: the first visit copies the account
// from users with the caller's token; from then on the monolith answers from
// its own row.
func TestProfileEnrolsOnTheFirstVisitOnly(t *testing.T) {
	svc, _, acc := newService(t)
	ctx := context.Background()
	want := legacy.Customer{ID: "u-1", Name: "Ada", Email: "ada@example.com"}
	for range 3 {
		got, err := svc.Profile(ctx, ada)
		if err != nil || got != want {
			t.Fatalf("Profile = %+v, %v; want %+v", got, err, want)
		}
	}
	if n := acc.calls.Load(); n != 1 {
		t.Errorf("users asked %d times, want once", n)
	}
	if _, ok := acc.tokens.Load("tok-ada"); !ok {
		t.Error("users was not shown the caller's token")
	}
	renamed, err := svc.Rename(ctx, ada, "Ada Lovelace")
	if err != nil || renamed.Name != "Ada Lovelace" {
		t.Fatalf("Rename = %+v, %v", renamed, err)
	}
	if got, err := svc.Profile(ctx, ada); err != nil || got.Name != "Ada Lovelace" || acc.calls.Load() != 1 {
		t.Errorf("Profile after Rename = %+v, %v (%d account calls); want the new name from the monolith's row", got, err, acc.calls.Load())
	}
}

func TestRenameOnTheFirstVisitEnrols(t *testing.T) {
	svc, _, acc := newService(t)
	got, err := svc.Rename(context.Background(), ada, "Countess")
	want := legacy.Customer{ID: "u-1", Name: "Countess", Email: "ada@example.com"}
	if err != nil || got != want || acc.calls.Load() != 1 {
		t.Errorf("Rename on a first visit = %+v, %v (%d account calls); want %+v after one", got, err, acc.calls.Load(), want)
	}
}

func TestConcurrentFirstVisitsDoNotFail(t *testing.T) {
	svc, store, _ := newService(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := svc.Profile(context.Background(), ada); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent first visit failed: %v", err)
	}
	if st, err := store.Stats(context.Background()); err != nil || st.Customers != 1 {
		t.Errorf("Stats = %+v, %v; want one customer", st, err)
	}
}

func TestEnrolmentFailuresStoreNothing(t *testing.T) {
	svc, store, acc := newService(t)
	ctx := context.Background()
	acc.down = true
	if _, err := svc.Profile(ctx, ada); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Profile with users down = %v, want unavailable", err)
	}
	acc.down = false
	if _, err := svc.Profile(ctx, legacy.Caller{ID: "gone", Token: "tok"}); !fail.Is(err, fail.NotFound) {
		t.Errorf("Profile of a user users does not know = %v, want not found", err)
	}
	if st, err := store.Stats(ctx); err != nil || st.Customers != 0 {
		t.Errorf("Stats = %+v, %v; want no customer stored", st, err)
	}
}

func TestPlaceConfirmsAndPricesFromTheCatalog(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	o, err := svc.Place(ctx, "u-1", validRequest())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := uuid.Parse(o.No); err != nil || id.Version() != 7 {
		t.Errorf("order no %q is not a UUIDv7", o.No)
	}
	if o.Status != legacy.Confirmed || o.TotalCents != 2*500+1250 || o.Currency != "USD" || o.CardLast4 != "4242" || o.CustomerID != "u-1" {
		t.Errorf("order = %+v, want CONFIRMED, 2250 USD, card 4242, customer u-1", o)
	}
	want := []legacy.Line{{ProductID: "p-1", Qty: 2, UnitPriceCents: 500}, {ProductID: "p-2", Qty: 1, UnitPriceCents: 1250}}
	if len(o.Lines) != 2 || o.Lines[0] != want[0] || o.Lines[1] != want[1] {
		t.Errorf("lines = %+v, want %+v", o.Lines, want)
	}
	second, err := svc.Place(ctx, "u-1", validRequest())
	if err != nil {
		t.Fatal(err)
	}

	list, err := svc.Orders(ctx, "u-1")
	if err != nil || len(list) != 2 || list[0].No != second.No || list[1].No != o.No {
		t.Errorf("Orders = %d orders, %v; want both, newest first", len(list), err)
	}
	if got, err := svc.Order(ctx, "u-1", o.No); err != nil || got.No != o.No || got.TotalCents != o.TotalCents {
		t.Errorf("Order = %+v, %v; want the order", got, err)
	}
	for _, tt := range []struct{ who, no string }{
		{"u-2", o.No}, // another customer's
		{"u-1", uuid.Must(uuid.NewV7()).String()}, // none such
		{"u-1", strings.Repeat("x", 65)},          // longer than any order no
	} {
		if _, err := svc.Order(ctx, tt.who, tt.no); !fail.Is(err, fail.NotFound) {
			t.Errorf("Order(%s, %.20s) = %v, want not found", tt.who, tt.no, err)
		}
	}
	if list, err := svc.Orders(ctx, "u-2"); err != nil || len(list) != 0 {
		t.Errorf("Orders of another customer = %v, %v; want none", list, err)
	}
}

func TestPlaceRefusalsStoreNothing(t *testing.T) {
	svc, store, _ := newService(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		product string
		kind    fail.Kind
		detail  string
	}{
		{"unknown product", "p-9", fail.Invalid, `unknown product "p-9"`},
		{"catalog down", "broken", fail.Unavailable, "catalog unavailable"},
		{"two currencies", "p-eur", fail.Invalid, "one currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			r.Lines = append(r.Lines, legacy.LineRequest{ProductID: tt.product, Qty: 1})
			_, err := svc.Place(ctx, "u-1", r)
			if !fail.Is(err, tt.kind) || !strings.Contains(fail.MessageOf(err), tt.detail) {
				t.Errorf("Place = %v, want %s: %q", err, tt.kind, tt.detail)
			}
		})
	}
	bad := validRequest()
	bad.CardNumber = "4242424242424241"
	if _, err := svc.Place(ctx, "u-1", bad); !fail.Is(err, fail.Invalid) {
		t.Errorf("Place with a bad card = %v, want invalid", err)
	}
	if st, err := store.Stats(ctx); err != nil || st.Orders != 0 {
		t.Errorf("Stats = %+v, %v; want no order stored", st, err)
	}
}

// wantMoved fails the test unless err says the route moved to service.
func wantMoved(t *testing.T, what string, err error, service string) {
	t.Helper()
	var m *legacy.Moved
	if !errors.As(err, &m) || m.Service != service || err.Error() != "this route's data moved to the "+service+" service" {
		t.Errorf("%s = %v, want moved to %s", what, err, service)
	}
}

func TestHandedOverDomainsAreGone(t *testing.T) {
	svc, store, _ := newService(t)
	ctx := context.Background()
	if _, err := svc.Profile(ctx, ada); err != nil {
		t.Fatal(err)
	}
	order, err := svc.Place(ctx, ada.ID, validRequest())
	if err != nil {
		t.Fatal(err)
	}

	if _, err := svc.HandOver(ctx, legacy.DomainProfiles, "users"); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Profile(ctx, ada)
	wantMoved(t, "Profile", err, "users")
	_, err = svc.Rename(ctx, ada, "Ada Lovelace")
	wantMoved(t, "Rename", err, "users")
	_, err = svc.Profile(ctx, legacy.Caller{ID: "u-new", Token: "tok"})
	wantMoved(t, "Profile of a new customer", err, "users")
	if _, err := svc.Orders(ctx, ada.ID); err != nil {
		t.Errorf("Orders with orders still here: %v", err)
	}

	if _, err := svc.HandOver(ctx, legacy.DomainOrders, "orders"); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Orders(ctx, ada.ID)
	wantMoved(t, "Orders", err, "orders")
	_, err = svc.Order(ctx, ada.ID, order.No)
	wantMoved(t, "Order", err, "orders")
	_, err = svc.Place(ctx, ada.ID, validRequest())
	wantMoved(t, "Place", err, "orders")
	// Gone comes before any rule: a bad request to a moved route is gone too.
	_, err = svc.Place(ctx, ada.ID, legacy.PlaceRequest{})
	wantMoved(t, "Place of a bad request", err, "orders")

	st, err := store.Stats(ctx)
	if err != nil || st.Customers != 1 || st.Orders != 1 || len(st.Handovers) != 2 {
		t.Errorf("Stats = %+v, %v; want 1 customer, 1 order, 2 handovers: nothing written after", st, err)
	}
	if c, err := store.Customer(ctx, ada.ID); err != nil || c.Name != "Ada" {
		t.Errorf("customer = %+v, %v; want it unchanged", c, err)
	}
	// The export goes on, for the facade's last catch-up.
	if e, err := svc.ExportOrders(ctx, 0, 0); err != nil || len(e.Items) != 1 {
		t.Errorf("ExportOrders after the handover = %+v, %v; want the one order", e, err)
	}
}

// TestAHandoverByAnotherInstanceIsSeen: an instance that served a domain
// learns of a handover recorded through another instance on its next
// request.
func TestAHandoverByAnotherInstanceIsSeen(t *testing.T) {
	svc, store, acc := newService(t)
	other := legacy.NewService(store, acc, catalog{})
	ctx := context.Background()
	if _, err := svc.Orders(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.HandOver(ctx, legacy.DomainOrders, "orders"); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Orders(ctx, ada.ID)
	wantMoved(t, "Orders on the other instance", err, "orders")
}

func TestHandOver(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	first, err := svc.HandOver(ctx, legacy.DomainProfiles, "users")
	if err != nil || first.Domain != legacy.DomainProfiles || first.Service != "users" || first.HandedAt.IsZero() {
		t.Fatalf("HandOver = %+v, %v", first, err)
	}
	again, err := svc.HandOver(ctx, legacy.DomainProfiles, "users")
	if err != nil || again != first {
		t.Errorf("HandOver again = %+v, %v; want the first record %+v", again, err, first)
	}
	if _, err := svc.HandOver(ctx, legacy.DomainProfiles, "orders"); !fail.Is(err, fail.Conflict) {
		t.Errorf("HandOver to another service = %v, want conflict", err)
	}
	for _, tt := range []struct{ domain, service string }{
		{"payments", "users"},
		{"", "users"},
		{legacy.DomainOrders, ""},
		{legacy.DomainOrders, "Orders"},
		{legacy.DomainOrders, "orders service"},
		{legacy.DomainOrders, strings.Repeat("o", 65)},
	} {
		if _, err := svc.HandOver(ctx, tt.domain, tt.service); !fail.Is(err, fail.Invalid) {
			t.Errorf("HandOver(%q, %q) = %v, want invalid", tt.domain, tt.service, err)
		}
	}
	list, err := svc.Handovers(ctx)
	if err != nil || len(list) != 1 || list[0] != first {
		t.Errorf("Handovers = %+v, %v; want only the first", list, err)
	}
}

func TestExportBounds(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := context.Background()
	if _, err := svc.Profile(ctx, ada); err != nil {
		t.Fatal(err)
	}
	e, err := svc.ExportProfiles(ctx, 0, 0)
	if err != nil || len(e.Items) != 1 || e.Next != e.Items[0].Seq || e.Items[0].Item.ID != ada.ID {
		t.Fatalf("ExportProfiles = %+v, %v; want Ada, next her seq", e, err)
	}
	if empty, err := svc.ExportProfiles(ctx, e.Next, 10); err != nil || len(empty.Items) != 0 || empty.Next != e.Next {
		t.Errorf("ExportProfiles after the last = %+v, %v; want none, next unchanged", empty, err)
	}
	for _, tt := range []struct {
		after int64
		limit int
	}{{-1, 10}, {0, -1}, {0, 1001}} {
		if _, err := svc.ExportOrders(ctx, tt.after, tt.limit); !fail.Is(err, fail.Invalid) {
			t.Errorf("ExportOrders(%d, %d) = %v, want invalid", tt.after, tt.limit, err)
		}
	}
}
