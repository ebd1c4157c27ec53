package inventoryhttp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/inventory/inventoryhttp"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/web"
)

var (
	admin    = &auth.Principal{Subject: "admin-1", Role: auth.RoleAdmin}
	customer = &auth.Principal{Subject: "user-1", Role: auth.RoleCustomer}
)

// server is the inventory's real routes over a real SQLite store, with
// every exchange checked against the published OpenAPI document.
type server struct {
	mux http.Handler
	doc *contract.Doc
}

func newServer(t *testing.T) *server {
	t.Helper()
	return &server{mux: routes(t), doc: loadContract(t)}
}

// routes is the inventory's mux as the shop builds it: the service's routes
// over a real, migrated SQLite store, and the dead-letter admin routes of a
// real inbox over the same database.
func routes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := newDB(t)
	mux := inventoryhttp.Routes(inventory.NewService(inventorydb.New(db)))
	inbox.Mount(mux, inbox.New(db, "inventory", nil))
	return mux
}

// newDB is a real SQLite database with the inventory's and the messaging
// (outbox, inbox, dead letters) migrations applied.
func newDB(t *testing.T) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatalf("opening database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx, inventorydb.Migrations); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating messaging tables: %v", err)
	}
	return db
}

// loadContract loads and validates the published document.
func loadContract(t *testing.T) *contract.Doc {
	t.Helper()
	doc, err := contract.Load(inventoryhttp.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// do sends a request as principal p (nil for anonymous) with a JSON body
// (empty for none) and checks the exchange against the contract.
func (s *server) do(t *testing.T, p *auth.Principal, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return s.send(t, p, req)
}

// send serves req as principal p and fails the test if the exchange is not
// one the OpenAPI document allows: an undocumented route or status, a body
// that does not fit its schema, or a request the document forbids that was
// not refused.
func (s *server) send(t *testing.T, p *auth.Principal, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("reading the request body: %v", err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if p != nil {
		// The principal stands for a token the middleware verified; the
		// document only sees that one was sent.
		req = req.WithContext(auth.WithPrincipal(req.Context(), *p))
		req.Header.Set("Authorization", "Bearer verified-by-the-middleware")
	}
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	if err := s.doc.Check(req, body, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("%v\nbody: %s", err, rec.Body)
	}
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	return v
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

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status: got %d, want %d; body %s", rec.Code, want, rec.Body)
	}
	if want >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("content type: got %q, want application/problem+json", ct)
		}
		if p := decode[problem](t, rec); p.Status != want || p.Detail == "" {
			t.Errorf("problem: got %+v, want status %d and a detail", p, want)
		}
	}
}

func wantDetail(t *testing.T, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	if got := decode[problem](t, rec).Detail; got != want {
		t.Errorf("detail: got %q, want %q", got, want)
	}
}

func (s *server) stock(t *testing.T, id string, n int64) {
	t.Helper()
	wantStatus(t, s.do(t, admin, "PUT", "/api/v1/inventory/"+id, fmt.Sprintf(`{"available":%d}`, n)), http.StatusOK)
}

// book reads a product's full stock through the admin listing.
func (s *server) book(t *testing.T, id string) book {
	t.Helper()
	rec := s.do(t, admin, "GET", "/api/v1/inventory?limit=1000", "")
	wantStatus(t, rec, http.StatusOK)
	for _, b := range decode[page[book]](t, rec).Items {
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
	wantStatus(t, s.do(t, nil, "GET", "/api/v1/inventory/p1", ""), http.StatusNotFound)
	wantStatus(t, s.do(t, nil, "GET", "/api/v1/inventory/"+strings.Repeat("p", 101), ""), http.StatusUnprocessableEntity)
	s.stock(t, "p1", 7)
	rec := s.do(t, nil, "GET", "/api/v1/inventory/p1", "")
	wantStatus(t, rec, http.StatusOK)
	if got, want := decode[map[string]any](t, rec), map[string]any{"product_id": "p1", "available": 7.0, "reserved": 0.0}; !reflect.DeepEqual(got, want) {
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
			wantStatus(t, s.send(t, tt.who, req), tt.want)
			wantStatus(t, s.do(t, nil, "GET", "/api/v1/inventory/p1", ""), http.StatusNotFound)
		})
	}

	rec := s.do(t, admin, "PUT", "/api/v1/inventory/p1", `{"available":12}`)
	wantStatus(t, rec, http.StatusOK)
	if got, want := decode[level](t, rec), (level{ProductID: "p1", Available: 12}); got != want {
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
			wantStatus(t, s.do(t, nil, "GET", path, ""), http.StatusUnauthorized)
			wantStatus(t, s.do(t, customer, "GET", path, ""), http.StatusForbidden)
			wantStatus(t, s.do(t, admin, "GET", path, ""), http.StatusOK)
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
	wantStatus(t, s.do(t, customer, "GET", "/api/v1/inventory/reservations", ""), http.StatusForbidden)
	rec := s.do(t, admin, "GET", "/api/v1/inventory/reservations", "")
	wantStatus(t, rec, http.StatusOK)
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
	rec := s.do(t, admin, "PUT", "/api/v1/inventory/reservations", `{"available":5}`)
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	wantDetail(t, rec, `product_id may not be "reservations", the name of the reservations listing`)
	rec = s.do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"reservations","quantity":1}]}`)
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	wantDetail(t, rec, `items[0]: product_id may not be "reservations", the name of the reservations listing`)

	// Nothing was recorded: p1 is the only stock, and o1 may still reserve.
	stock := decode[page[book]](t, s.do(t, admin, "GET", "/api/v1/inventory", ""))
	if len(stock.Items) != 1 || stock.Items[0].ProductID != "p1" {
		t.Errorf("stock after the refusals: got %+v, want p1 alone", stock.Items)
	}
	wantStatus(t, s.do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}]}`), http.StatusCreated)
	// Only the exact word is taken: ids are case-sensitive, and this one
	// is reachable.
	s.stock(t, "Reservations", 3)
	wantStatus(t, s.do(t, nil, "GET", "/api/v1/inventory/Reservations", ""), http.StatusOK)
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
				wantStatus(t, s.do(t, admin, "GET", path+sep+q, ""), http.StatusUnprocessableEntity)
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
		rec := s.do(t, admin, "GET", target, "")
		wantStatus(t, rec, http.StatusOK)
		p := decode[page[book]](t, rec)
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
	rec := s.do(t, nil, "POST", "/internal/v1/reservations", body)
	wantStatus(t, rec, http.StatusCreated)
	want := reservation{OrderID: "o1", Status: "RESERVED", Items: []item{{"p1", 3}, {"p2", 3}}}
	if got := decode[reservation](t, rec); !reflect.DeepEqual(got, want) {
		t.Errorf("reserve: got %+v, want %+v", got, want)
	}
	first := rec.Body.String()

	repeat := s.do(t, nil, "POST", "/internal/v1/reservations", body)
	wantStatus(t, repeat, http.StatusOK)
	if repeat.Body.String() != first {
		t.Errorf("repeated reserve: got %s, want the first answer %s", repeat.Body, first)
	}
	if got, want := s.book(t, "p2"), (book{ProductID: "p2", Available: 2, Reserved: 3, Supplied: 5}); got != want {
		t.Errorf("after reserve and repeat: got %+v, want %+v", got, want)
	}
	lvl := decode[level](t, s.do(t, nil, "GET", "/api/v1/inventory/p2", ""))
	if lvl != (level{ProductID: "p2", Available: 2, Reserved: 3}) {
		t.Errorf("public level: got %+v, want 2 available, 3 reserved", lvl)
	}

	for range 2 {
		rec = s.do(t, nil, "POST", "/internal/v1/reservations/o1/commit", "")
		wantStatus(t, rec, http.StatusOK)
		want.Status = "COMMITTED"
		if got := decode[reservation](t, rec); !reflect.DeepEqual(got, want) {
			t.Errorf("commit: got %+v, want %+v", got, want)
		}
	}
	if got, want := s.book(t, "p2"), (book{ProductID: "p2", Available: 2, Sold: 3, Supplied: 5}); got != want {
		t.Errorf("after commit and repeat: got %+v, want %+v", got, want)
	}
	rec = s.do(t, nil, "POST", "/internal/v1/reservations/o1/release", "")
	wantStatus(t, rec, http.StatusConflict)
	wantDetail(t, rec, "reservation was committed")

	// A second order is released, twice, and then refused a reserve.
	wantStatus(t, s.do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o2","items":[{"product_id":"p1","quantity":4}]}`), http.StatusCreated)
	for range 2 {
		rec = s.do(t, nil, "POST", "/internal/v1/reservations/o2/release", "")
		wantStatus(t, rec, http.StatusOK)
		if got := decode[reservation](t, rec); got.Status != "RELEASED" || len(got.Items) != 1 {
			t.Errorf("release: got %+v, want RELEASED with its item", got)
		}
	}
	if got, want := s.book(t, "p1"), (book{ProductID: "p1", Available: 7, Sold: 3, Supplied: 10}); got != want {
		t.Errorf("after release: got %+v, want %+v", got, want)
	}
	rec = s.do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o2","items":[{"product_id":"p1","quantity":4}]}`)
	wantStatus(t, rec, http.StatusConflict)
	wantDetail(t, rec, "reservation was released")
	rec = s.do(t, nil, "POST", "/internal/v1/reservations/o2/commit", "")
	wantStatus(t, rec, http.StatusConflict)

	wantStatus(t, s.do(t, nil, "POST", "/internal/v1/reservations/nobody/commit", ""), http.StatusNotFound)

	// The admin listing shows each order's reservation.
	list := decode[page[reservation]](t, s.do(t, admin, "GET", "/api/v1/inventory/reservations", ""))
	if len(list.Items) != 2 || list.Items[0].Status != "COMMITTED" || list.Items[1].Status != "RELEASED" {
		t.Errorf("reservations: got %+v, want o1 COMMITTED and o2 RELEASED", list.Items)
	}
	one := decode[page[reservation]](t, s.do(t, admin, "GET", "/api/v1/inventory/reservations?order_id=o1", ""))
	if len(one.Items) != 1 || !reflect.DeepEqual(one.Items[0], want) || one.Next == nil || *one.Next != "" {
		t.Errorf("reservation of o1: got %+v, want just %+v", one, want)
	}
	none := decode[page[reservation]](t, s.do(t, admin, "GET", "/api/v1/inventory/reservations?order_id=o9", ""))
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
		rec := s.do(t, nil, "POST", "/internal/v1/reservations", body)
		wantStatus(t, rec, http.StatusConflict)
		wantDetail(t, rec, "insufficient stock for product p2")
	}
	if got, want := s.book(t, "p1"), (book{ProductID: "p1", Available: 10, Supplied: 10}); got != want {
		t.Errorf("all or nothing: p1 got %+v, want %+v", got, want)
	}
	rec := s.do(t, nil, "POST", "/internal/v1/reservations/o1/release", "")
	wantStatus(t, rec, http.StatusOK)
	if got := decode[reservation](t, rec); got.Status != "REJECTED" {
		t.Errorf("release of a rejected reservation: got %+v, want it answered as REJECTED", got)
	}
	wantStatus(t, s.do(t, nil, "POST", "/internal/v1/reservations/o1/commit", ""), http.StatusConflict)
}

func TestReleaseUnknownLeavesTombstone(t *testing.T) {
	s := newServer(t)
	s.stock(t, "p1", 10)
	rec := s.do(t, nil, "POST", "/internal/v1/reservations/o1/release", "")
	wantStatus(t, rec, http.StatusOK)
	if got, want := decode[reservation](t, rec), (reservation{OrderID: "o1", Status: "RELEASED", Items: []item{}}); !reflect.DeepEqual(got, want) {
		t.Errorf("release of an unknown order: got %+v, want %+v", got, want)
	}
	rec = s.do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}]}`)
	wantStatus(t, rec, http.StatusConflict)
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
			wantStatus(t, s.send(t, nil, req), tt.want)
			// Nothing was recorded, so a valid reserve for the order still succeeds.
			if got := s.book(t, "p1"); got.Reserved != 0 {
				t.Errorf("refused input reserved stock: %+v", got)
			}
			wantStatus(t, s.do(t, nil, "POST", "/internal/v1/reservations", `{"order_id":"o1","items":[{"product_id":"p1","quantity":1}]}`), http.StatusCreated)
		})
	}
}

func TestCommitReleaseRefuseBadOrderID(t *testing.T) {
	s := newServer(t)
	long := strings.Repeat("o", 101)
	for _, op := range []string{"commit", "release"} {
		wantStatus(t, s.do(t, nil, "POST", "/internal/v1/reservations/"+long+"/"+op, ""), http.StatusUnprocessableEntity)
	}
	none := decode[page[reservation]](t, s.do(t, admin, "GET", "/api/v1/inventory/reservations", ""))
	if len(none.Items) != 0 {
		t.Errorf("a refused release recorded a tombstone: %+v", none.Items)
	}
}

func TestOpenAPI(t *testing.T) {
	s := newServer(t)
	rec := s.do(t, nil, "GET", "/openapi.yaml", "")
	wantStatus(t, rec, http.StatusOK)
	if !bytes.Equal(rec.Body.Bytes(), inventoryhttp.OpenAPI) {
		t.Error("GET /openapi.yaml did not serve the embedded document")
	}
}

// surface is the inventory's whole surface as the shop serves it: routes.go,
// the dead-letter admin routes inbox.Mount adds, and the ops endpoints host
// adds to every service.
var surface = []string{
	"GET /api/v1/admin/dlq",
	"POST /api/v1/admin/dlq/{id}/replay",
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
}

// examplePath fills a route's path parameters.
var examplePath = strings.NewReplacer("{product_id}", "p1", "{order_id}", "o1", "{id}", "x")

// hosted serves mux as the shop does: behind host's middleware, which
// verifies tokens with tokens, and with its ops endpoints, which mux holds
// once Handler is called.
func hosted(mux *http.ServeMux, tokens *auth.Signer) *host.Service {
	return &host.Service{
		Name:     "inventory",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   mux,
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("inventory"),
		Verifier: auth.NewVerifier(tokens),
	}
}

func newSigner(t *testing.T) *auth.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(key, time.Hour)
}

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes in
// step: every route is documented, nothing else is, and exactly the
// internal ones are tagged "internal".
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) {
	loadContract(t) // the document is valid
	doc, err := openapi3.NewLoader().LoadFromData(inventoryhttp.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version: got %q, want 3.0.3", doc.OpenAPI)
	}
	var documented []string
	for path, pathItem := range doc.Paths.Map() {
		for method, op := range pathItem.Operations() {
			route := method + " " + path
			documented = append(documented, route)
			internal := strings.HasPrefix(path, "/internal/")
			if slices.Contains(op.Tags, "internal") != internal {
				t.Errorf("%s: tags %v, want the internal tag exactly when the path is internal", route, op.Tags)
			}
		}
	}
	want := slices.Clone(surface)
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("documented operations:\n got %v\nwant %v", documented, want)
	}
	mux := routes(t)
	hosted(mux, newSigner(t)).Handler()
	for _, route := range surface {
		method, path, _ := strings.Cut(route, " ")
		if _, pattern := mux.Handler(httptest.NewRequest(method, examplePath.Replace(path), nil)); pattern != route {
			t.Errorf("%s: routed to pattern %q, want %q", route, pattern, route)
		}
	}
	for _, name := range []string{"StockChange", "ReserveRequest", "ItemRequest"} {
		if ap := doc.Components.Schemas[name].Value.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("schema %s: additionalProperties must be false", name)
		}
	}
}

// TestServedAsTheShopServesIt checks, against the document, what only the
// shop's middleware adds: health, readiness and metrics, and the 401 that a
// bad Authorization header gets on every route, public and internal ones
// included.
func TestServedAsTheShopServesIt(t *testing.T) {
	tokens := newSigner(t)
	h := hosted(routes(t), tokens)
	h.Health.SetReady(true)
	s := &server{mux: h.Handler(), doc: loadContract(t)}
	send := func(method, path, authorization string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		return s.send(t, nil, req)
	}
	wantCode := func(rec *httptest.ResponseRecorder, route string, want int) {
		t.Helper()
		if rec.Code != want {
			t.Errorf("%s: got %d, want %d; body %s", route, rec.Code, want, rec.Body)
		}
	}

	for _, path := range []string{"/healthz", "/ready", "/metrics", "/openapi.yaml"} {
		wantCode(send("GET", path, ""), path, http.StatusOK)
	}
	admin, _, err := tokens.Sign("admin-1", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(send("GET", "/api/v1/inventory", "Bearer "+admin), "a valid token", http.StatusOK)
	for _, route := range surface {
		method, path, _ := strings.Cut(route, " ")
		for _, bad := range []string{"Bearer not-a-token", "Basic YTpi"} {
			wantStatus(t, send(method, examplePath.Replace(path), bad), http.StatusUnauthorized)
		}
	}

	h.Health.Add("db", func(context.Context) error { return errors.New("disk on fire") })
	wantCode(send("GET", "/healthz", ""), "/healthz with a check down", http.StatusServiceUnavailable)
	h.Health.SetReady(false)
	wantCode(send("GET", "/ready", ""), "/ready while draining", http.StatusServiceUnavailable)
}

// TestDeadLetterRoutes checks the dead-letter admin routes the shop mounts
// on the inventory's mux, through host's middleware with real tokens and
// against the document: an admin lists an empty page, a customer is
// refused, and replaying a letter that does not exist is a 404.
func TestDeadLetterRoutes(t *testing.T) {
	tokens := newSigner(t)
	s := &server{mux: hosted(routes(t), tokens).Handler(), doc: loadContract(t)}
	bearer := func(subject, role string) string {
		t.Helper()
		token, _, err := tokens.Sign(subject, role)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + token
	}
	asAdmin, asCustomer := bearer("admin-1", auth.RoleAdmin), bearer("user-1", auth.RoleCustomer)
	send := func(method, path, authorization string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", authorization)
		return s.send(t, nil, req)
	}

	rec := send("GET", "/api/v1/admin/dlq", asAdmin)
	wantStatus(t, rec, http.StatusOK)
	if body := strings.TrimSpace(rec.Body.String()); body != `{"items":[],"next":""}` {
		t.Errorf("empty dead-letter listing: got %s, want {\"items\":[],\"next\":\"\"}", body)
	}
	wantStatus(t, send("GET", "/api/v1/admin/dlq", asCustomer), http.StatusForbidden)
	wantStatus(t, send("POST", "/api/v1/admin/dlq/no-such-letter/replay", asAdmin), http.StatusNotFound)
}
