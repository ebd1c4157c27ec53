package inventoryhttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/inventory/inventoryhttp"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

var (
	admin    = &auth.Principal{Subject: "admin-1", Role: auth.RoleAdmin}
	customer = &auth.Principal{Subject: "user-1", Role: auth.RoleCustomer}
)

// server is the inventory's real routes over a real SQLite store, with
// every exchange checked against the published OpenAPI document.
type server struct{ contracttest.Server }

func newServer(t *testing.T) *server {
	t.Helper()
	return &server{service.Server(t)}
}

// routes is the inventory's mux as the shop builds it: the service's routes
// over a real SQLite store with the inventory's and the messaging (outbox,
// inbox, dead letters) migrations applied, and the dead-letter admin routes
// of a real inbox over the same database.
func routes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "inventory", inventorydb.Migrations)
	mux := inventoryhttp.Routes(inventory.NewService(inventorydb.New(db)))
	inbox.Mount(mux, inbox.New(db, "inventory", nil))
	resilience.Mount(mux, resilience.NewEdges("inventory", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("inventory"))
	return mux
}

type problem struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

type level struct {
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
}

type book struct {
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Supplied  int64  `json:"supplied"`
}

type item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

type reservation struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Items   []item `json:"items"`
}

type page[T any] struct {
	Items []T     `json:"items"`
	Next  *string `json:"next"`
}

func wantDetail(t *testing.T, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	if got := contracttest.Decode[problem](t, rec).Detail; got != want {
		t.Errorf("detail: got %q, want %q", got, want)
	}
}

func (s *server) stock(t *testing.T, id string, n int64) {
	t.Helper()
	contracttest.WantStatus(t, s.Do(t, admin, "PUT", "/api/v1/inventory/"+id, fmt.Sprintf(`{"available":%d}`, n)), http.StatusOK)
}

// book reads a product's full stock through the admin listing.
func (s *server) book(t *testing.T, id string) book {
	t.Helper()
	rec := s.Do(t, admin, "GET", "/api/v1/inventory?limit=1000", "")
	contracttest.WantStatus(t, rec, http.StatusOK)
	for _, b := range contracttest.Decode[page[book]](t, rec).Items {
		if b.ProductID == id {
			if b.Available+b.Reserved+b.Sold != b.Supplied {
				t.Errorf("invariant broken: %+v", b)
			}
			return b
		}
	}
	t.Fatalf("no stock listed for %s", id)
	return book{}
}

func TestGetStock(t *testing.T) {
	s := newServer(t)
	contracttest.WantStatus(t, s.Do(t, nil, "GET", "/api/v1/inventory/p1", ""), http.StatusNotFound)
	contracttest.WantStatus(t, s.Do(t, nil, "GET", "/api/v1/inventory/"+strings.Repeat("p", 101), ""), http.StatusUnprocessableEntity)
	s.stock(t, "p1", 7)
	rec := s.Do(t, nil, "GET", "/api/v1/inventory/p1", "")
	contracttest.WantStatus(t, rec, http.StatusOK)
	if got, want := contracttest.Decode[map[string]any](t, rec), map[string]any{"product_id": "p1", "available": 7.0, "reserved": 0.0}; !reflect.DeepEqual(got, want) {
		t.Errorf("stock level: got %v, want exactly %v", got, want)
	}
}

func TestSetStock(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name        string
		who         *auth.Principal
		contentType string
		body        string
		want        int
	}{
		{"anonymous", nil, "application/json", `{"available":5}`, http.StatusUnauthorized},
		{"customer", customer, "application/json", `{"available":5}`, http.StatusForbidden},
		{"unknown field", admin, "application/json", `{"available":5,"reserved":1}`, http.StatusBadRequest},
		{"not a number", admin, "application/json", `{"available":"5"}`, http.StatusBadRequest},
		{"not JSON", admin, "text/plain", `{"available":5}`, http.StatusUnsupportedMediaType},
		{"missing", admin, "application/json", `{}`, http.StatusUnprocessableEntity},
		{"negative", admin, "application/json", `{"available":-1}`, http.StatusUnprocessableEntity},
		{"too many", admin, "application/json", `{"available":1000000001}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("PUT", "/api/v1/inventory/p1", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			contracttest.WantStatus(t, s.Send(t, tt.who, req), tt.want)
			contracttest.WantStatus(t, s.Do(t, nil, "GET", "/api/v1/inventory/p1", ""), http.StatusNotFound)
		})
	}

	rec := s.Do(t, admin, "PUT", "/api/v1/inventory/p1", `{"available":12}`)
	contracttest.WantStatus(t, rec, http.StatusOK)
	if got, want := contracttest.Decode[level](t, rec), (level{ProductID: "p1", Available: 12}); got != want {
		t.Errorf("PUT answer: got %+v, want %+v", got, want)
	}
	s.stock(t, "p1", 0)
	if got, want := s.book(t, "p1"), (book{ProductID: "p1"}); got != want {
		t.Errorf("after setting 0: got %+v, want %+v", got, want)
	}
}

func TestAdminListingsNeedAdmin(t *testing.T) {
	s := newServer(t)
	s.stock(t, "p1", 1)
	for _, path := range []string{"/api/v1/inventory", "/api/v1/inventory/reservations", "/api/v1/inventory/reservations?order_id=o1"} {
		t.Run(path, func(t *testing.T) {
			contracttest.WantStatus(t, s.Do(t, nil, "GET", path, ""), http.StatusUnauthorized)
			contracttest.WantStatus(t, s.Do(t, customer, "GET", path, ""), http.StatusForbidden)
			contracttest.WantStatus(t, s.Do(t, admin, "GET", path, ""), http.StatusOK)
		})
	}
}

// TestReservationsPathIsNotAProduct checks that ServeMux sends the literal
// reservations path to the listing, not to the stock of a product called
// "reservations".
func TestReservationsPathIsNotAProduct(t *testing.T) {
	mux := inventoryhttp.Routes(nil)
	req := httptest.NewRequest("GET", "/api/v1/inventory/reservations", nil)
	if _, pattern := mux.Handler(req); pattern != "GET /api/v1/inventory/reservations" {
		t.Errorf("GET /api/v1/inventory/reservations: routed to %q, want the reservations listing", pattern)
	}
	s := newServer(t)
	// The listing answers a customer 403; the public stock route would have said 404.
	contracttest.WantStatus(t, s.Do(t, customer, "GET", "/api/v1/inventory/reservations", ""), http.StatusForbidden)
	rec := s.Do(t, admin, "GET", "/api/v1/inventory/reservations", "")
	contracttest.WantStatus(t, rec, http.StatusOK)
	if body := strings.TrimSpace(rec.Body.String()); body != `{"items":[],"next":""}` {
		t.Errorf("empty listing: got %s, want {\"items\":[],\"next\":\"\"}", body)
	}
}

// TestReservationsIsNoProductID checks that no stock can be set, or
// reserved, for a product called "reservations": PUT on that path reaches
// the stock route, but GET on it is the reservations listing, so such stock
// could be set and never read.
func TestReservationsIsNoProductID(t *testing.T) {
	s := newServer(t)
	s.stock(t, "p1", 5)
	rec := s.Do(t, admin, "PUT", "/api/v1/inventory/reservations", `{"available":5}`)
	contracttest.WantStatus(t, rec, http.StatusUnprocessableEntity)
	wantDetail(t, rec, `product_id may not be "reservations", the name of the reservations listing`)
	rec = s.Do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"reservations","quantity":1}]}`)
	contracttest.WantStatus(t, rec, http.StatusUnprocessableEntity)
	wantDetail(t, rec, `items[0]: product_id may not be "reservations", the name of the reservations listing`)

	// Nothing was recorded: p1 is the only stock, and o1 may still reserve.
	stock := contracttest.Decode[page[book]](t, s.Do(t, admin, "GET", "/api/v1/inventory", ""))
	if len(stock.Items) != 1 || stock.Items[0].ProductID != "p1" {
		t.Errorf("stock after the refusals: got %+v, want p1 alone", stock.Items)
	}
	contracttest.WantStatus(t, s.Do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}]}`), http.StatusCreated)
	// Only the exact word is taken: ids are case-sensitive, and this one
	// is reachable.
	s.stock(t, "Reservations", 3)
	contracttest.WantStatus(t, s.Do(t, nil, "GET", "/api/v1/inventory/Reservations", ""), http.StatusOK)
}

func TestListBadLimits(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{"/api/v1/inventory", "/api/v1/inventory/reservations", "/api/v1/inventory/reservations?order_id=o1&"} {
		for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=", "after=" + strings.Repeat("a", 101)} {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = ""
			}
			t.Run(path+sep+q, func(t *testing.T) {
				contracttest.WantStatus(t, s.Do(t, admin, "GET", path+sep+q, ""), http.StatusUnprocessableEntity)
			})
		}
	}
}

func TestListStockPages(t *testing.T) {
	s := newServer(t)
	for _, id := range []string{"p1", "p2", "p3"} {
		s.stock(t, id, 4)
	}
	var got []string
	target, pages := "/api/v1/inventory?limit=2", 0
	for {
		rec := s.Do(t, admin, "GET", target, "")
		contracttest.WantStatus(t, rec, http.StatusOK)
		p := contracttest.Decode[page[book]](t, rec)
		pages++
		if p.Next == nil {
			t.Fatalf("page without next: %s", rec.Body)
		}
		for _, b := range p.Items {
			if b != (book{ProductID: b.ProductID, Available: 4, Supplied: 4}) {
				t.Errorf("listed stock: got %+v, want 4 available and supplied", b)
			}
			got = append(got, b.ProductID)
		}
		if *p.Next == "" {
			break
		}
		target = "/api/v1/inventory?limit=2&after=" + *p.Next
	}
	if want := []string{"p1", "p2", "p3"}; !slices.Equal(got, want) || pages != 2 {
		t.Errorf("listing: got %v in %d pages, want %v in 2", got, pages, want)
	}
}

func TestReserveCommitRelease(t *testing.T) {
	s := newServer(t)
	s.stock(t, "p1", 10)
	s.stock(t, "p2", 5)

	// Internal calls need no principal; lines for one product are merged.
	body := `{"order_id":"o1","items":[{"product_id":"p2","quantity":2},{"product_id":"p1","quantity":3},{"product_id":"p2","quantity":1}]}`
	rec := s.Do(t, nil, "POST", "/internal/v1/reservations", body)
	contracttest.WantStatus(t, rec, http.StatusCreated)
	want := reservation{OrderID: "o1", Status: "RESERVED", Items: []item{{"p1", 3}, {"p2", 3}}}
	if got := contracttest.Decode[reservation](t, rec); !reflect.DeepEqual(got, want) {
		t.Errorf("reserve: got %+v, want %+v", got, want)
	}
	first := rec.Body.String()

	repeat := s.Do(t, nil, "POST", "/internal/v1/reservations", body)
	contracttest.WantStatus(t, repeat, http.StatusOK)
	if repeat.Body.String() != first {
		t.Errorf("repeated reserve: got %s, want the first answer %s", repeat.Body, first)
	}
	if got, want := s.book(t, "p2"), (book{ProductID: "p2", Available: 2, Reserved: 3, Supplied: 5}); got != want {
		t.Errorf("after reserve and repeat: got %+v, want %+v", got, want)
	}
	lvl := contracttest.Decode[level](t, s.Do(t, nil, "GET", "/api/v1/inventory/p2", ""))
	if lvl != (level{ProductID: "p2", Available: 2, Reserved: 3}) {
		t.Errorf("public level: got %+v, want 2 available, 3 reserved", lvl)
	}

	for range 2 {
		rec = s.Do(t, nil, "POST", "/internal/v1/reservations/o1/commit", "")
		contracttest.WantStatus(t, rec, http.StatusOK)
		want.Status = "COMMITTED"
		if got := contracttest.Decode[reservation](t, rec); !reflect.DeepEqual(got, want) {
			t.Errorf("commit: got %+v, want %+v", got, want)
		}
	}
	if got, want := s.book(t, "p2"), (book{ProductID: "p2", Available: 2, Sold: 3, Supplied: 5}); got != want {
		t.Errorf("after commit and repeat: got %+v, want %+v", got, want)
	}
	rec = s.Do(t, nil, "POST", "/internal/v1/reservations/o1/release", "")
	contracttest.WantStatus(t, rec, http.StatusConflict)
	wantDetail(t, rec, "reservation was committed")

	// A second order is released, twice, and then refused a reserve.
	contracttest.WantStatus(t, s.Do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o2","items":[{"product_id":"p1","quantity":4}]}`), http.StatusCreated)
	for range 2 {
		rec = s.Do(t, nil, "POST", "/internal/v1/reservations/o2/release", "")
		contracttest.WantStatus(t, rec, http.StatusOK)
		if got := contracttest.Decode[reservation](t, rec); got.Status != "RELEASED" || len(got.Items) != 1 {
			t.Errorf("release: got %+v, want RELEASED with its item", got)
		}
	}
	if got, want := s.book(t, "p1"), (book{ProductID: "p1", Available: 7, Sold: 3, Supplied: 10}); got != want {
		t.Errorf("after release: got %+v, want %+v", got, want)
	}
	rec = s.Do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o2","items":[{"product_id":"p1","quantity":4}]}`)
	contracttest.WantStatus(t, rec, http.StatusConflict)
	wantDetail(t, rec, "reservation was released")
	rec = s.Do(t, nil, "POST", "/internal/v1/reservations/o2/commit", "")
	contracttest.WantStatus(t, rec, http.StatusConflict)

	contracttest.WantStatus(t, s.Do(t, nil, "POST", "/internal/v1/reservations/nobody/commit", ""), http.StatusNotFound)

	// The admin listing shows each order's reservation.
	list := contracttest.Decode[page[reservation]](t, s.Do(t, admin, "GET", "/api/v1/inventory/reservations", ""))
	if len(list.Items) != 2 || list.Items[0].Status != "COMMITTED" || list.Items[1].Status != "RELEASED" {
		t.Errorf("reservations: got %+v, want o1 COMMITTED and o2 RELEASED", list.Items)
	}
	one := contracttest.Decode[page[reservation]](t, s.Do(t, admin, "GET", "/api/v1/inventory/reservations?order_id=o1", ""))
	if len(one.Items) != 1 || !reflect.DeepEqual(one.Items[0], want) || one.Next == nil || *one.Next != "" {
		t.Errorf("reservation of o1: got %+v, want just %+v", one, want)
	}
	none := contracttest.Decode[page[reservation]](t, s.Do(t, admin, "GET", "/api/v1/inventory/reservations?order_id=o9", ""))
	if none.Items == nil || len(none.Items) != 0 {
		t.Errorf("reservation of an unknown order: got %+v, want an empty items array", none)
	}
}

func TestReserveRejected(t *testing.T) {
	s := newServer(t)
	s.stock(t, "p1", 10)
	s.stock(t, "p2", 1)
	body := `{"order_id":"o1","items":[{"product_id":"p1","quantity":3},{"product_id":"p2","quantity":2}]}`
	for range 2 { // the refusal is recorded and answered again
		rec := s.Do(t, nil, "POST", "/internal/v1/reservations", body)
		contracttest.WantStatus(t, rec, http.StatusConflict)
		wantDetail(t, rec, "insufficient stock for product p2")
	}
	if got, want := s.book(t, "p1"), (book{ProductID: "p1", Available: 10, Supplied: 10}); got != want {
		t.Errorf("all or nothing: p1 got %+v, want %+v", got, want)
	}
	rec := s.Do(t, nil, "POST", "/internal/v1/reservations/o1/release", "")
	contracttest.WantStatus(t, rec, http.StatusOK)
	if got := contracttest.Decode[reservation](t, rec); got.Status != "REJECTED" {
		t.Errorf("release of a rejected reservation: got %+v, want it answered as REJECTED", got)
	}
	contracttest.WantStatus(t, s.Do(t, nil, "POST", "/internal/v1/reservations/o1/commit", ""), http.StatusConflict)
}

func TestReleaseUnknownLeavesTombstone(t *testing.T) {
	s := newServer(t)
	s.stock(t, "p1", 10)
	rec := s.Do(t, nil, "POST", "/internal/v1/reservations/o1/release", "")
	contracttest.WantStatus(t, rec, http.StatusOK)
	if got, want := contracttest.Decode[reservation](t, rec), (reservation{OrderID: "o1", Status: "RELEASED", Items: []item{}}); !reflect.DeepEqual(got, want) {
		t.Errorf("release of an unknown order: got %+v, want %+v", got, want)
	}
	rec = s.Do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}]}`)
	contracttest.WantStatus(t, rec, http.StatusConflict)
	if got := s.book(t, "p1"); got.Available != 10 || got.Reserved != 0 {
		t.Errorf("late reserve held stock: got %+v", got)
	}
}

func TestReserveRefusesBadInput(t *testing.T) {
	fiftyOne := make([]string, 51)
	for i := range fiftyOne {
		fiftyOne[i] = fmt.Sprintf(`{"product_id":"p%d","quantity":1}`, i)
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		want        int
	}{
		{"unknown field", "application/json", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}],"user":"u"}`, http.StatusBadRequest},
		{"unknown item field", "application/json", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1,"price":3}]}`, http.StatusBadRequest},
		{"fractional quantity", "application/json", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1.5}]}`, http.StatusBadRequest},
		{"malformed", "application/json", `{"order_id":`, http.StatusBadRequest},
		{"not JSON", "text/plain", `{}`, http.StatusUnsupportedMediaType},
		{"no order", "application/json", `{"items":[{"product_id":"p1","quantity":1}]}`, http.StatusUnprocessableEntity},
		{"bad order id", "application/json", `{"order_id":"o 1","items":[{"product_id":"p1","quantity":1}]}`, http.StatusUnprocessableEntity},
		{"no items", "application/json", `{"order_id":"o1","items":[]}`, http.StatusUnprocessableEntity},
		{"items missing", "application/json", `{"order_id":"o1"}`, http.StatusUnprocessableEntity},
		{"quantity 0", "application/json", `{"order_id":"o1","items":[{"product_id":"p1","quantity":0}]}`, http.StatusUnprocessableEntity},
		{"quantity 1001", "application/json", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1001}]}`, http.StatusUnprocessableEntity},
		{"merged over 1000", "application/json", `{"order_id":"o1","items":[{"product_id":"p1","quantity":600},{"product_id":"p1","quantity":600}]}`, http.StatusUnprocessableEntity},
		{"no product", "application/json", `{"order_id":"o1","items":[{"quantity":1}]}`, http.StatusUnprocessableEntity},
		{"51 lines", "application/json", `{"order_id":"o1","items":[` + strings.Join(fiftyOne, ",") + `]}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			s.stock(t, "p1", 2000)
			req := httptest.NewRequest("POST", "/internal/v1/reservations", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			contracttest.WantStatus(t, s.Send(t, nil, req), tt.want)
			// Nothing was recorded, so a valid reserve for the order still succeeds.
			if got := s.book(t, "p1"); got.Reserved != 0 {
				t.Errorf("refused input reserved stock: %+v", got)
			}
			contracttest.WantStatus(t, s.Do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}]}`), http.StatusCreated)
		})
	}
}

func TestCommitReleaseRefuseBadOrderID(t *testing.T) {
	s := newServer(t)
	long := strings.Repeat("o", 101)
	for _, op := range []string{"commit", "release"} {
		contracttest.WantStatus(t, s.Do(t, nil, "POST", "/internal/v1/reservations/"+long+"/"+op, ""), http.StatusUnprocessableEntity)
	}
	none := contracttest.Decode[page[reservation]](t, s.Do(t, admin, "GET", "/api/v1/inventory/reservations", ""))
	if len(none.Items) != 0 {
		t.Errorf("a refused release recorded a tombstone: %+v", none.Items)
	}
}

// service is the inventory as the contract checks see it. Its surface is
// routes.go, the dead-letter admin routes inbox.Mount adds, the fault routes
// fault.Mount adds, and the ops endpoints host adds to every service.
var service = contracttest.Service{
	Name:    "inventory",
	OpenAPI: inventoryhttp.OpenAPI,
	Routes:  routes,
	Surface: []string{
		"GET /api/v1/admin/dlq",
		"GET /api/v1/admin/resilience",
		"POST /api/v1/admin/dlq/{id}/replay",
		"GET /api/v1/admin/faults",
		"PUT /api/v1/admin/faults",
		"GET /api/v1/inventory",
		"GET /api/v1/inventory/reservations",
		"GET /api/v1/inventory/{product_id}",
		"PUT /api/v1/inventory/{product_id}",
		"POST /internal/v1/reservations",
		"POST /internal/v1/reservations/{order_id}/commit",
		"POST /internal/v1/reservations/{order_id}/release",
		"GET /openapi.yaml",
		"GET /healthz",
		"GET /ready",
		"GET /metrics",
	},
	Authorized: contracttest.Get{Role: auth.RoleAdmin, Path: "/api/v1/inventory"},
	Closed:     []string{"StockChange", "ReserveRequest", "ItemRequest", "FaultSettings"},
}

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes in
// step: every route is documented, nothing else is, and exactly the
// internal ones are tagged "internal".
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) { service.CheckDocumented(t) }

// TestServedAsTheShopServesIt checks, against the document, what only the
// shop's middleware adds, and the document served as embedded.
func TestServedAsTheShopServesIt(t *testing.T) { service.CheckHosted(t) }

// TestDeadLetterRoutes checks the dead-letter admin routes the shop mounts
// on the inventory's mux.
func TestDeadLetterRoutes(t *testing.T) { service.CheckDeadLetters(t) }
