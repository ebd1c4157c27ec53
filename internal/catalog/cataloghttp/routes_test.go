package cataloghttp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdb"
	"github.com/microshop/microshop/internal/catalog/cataloghttp"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/web"
)

var (
	admin    = &auth.Principal{Subject: "admin-1", Role: auth.RoleAdmin}
	customer = &auth.Principal{Subject: "user-1", Role: auth.RoleCustomer}
)

// server is the catalog's real routes over a real SQLite store, with every
// exchange checked against the published OpenAPI document.
type server struct {
	mux http.Handler
	doc *contract.Doc
}

func newServer(t *testing.T) *server {
	t.Helper()
	return &server{mux: routes(t), doc: loadContract(t)}
}

// routes is the catalog's mux as the shop builds it: the service's routes
// over a real, migrated SQLite store, and the dead-letter admin routes of a
// real inbox over the same database.
func routes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := newDB(t)
	mux := cataloghttp.Routes(catalog.NewService(catalogdb.New(db)))
	inbox.Mount(mux, inbox.New(db, "catalog", nil))
	return mux
}

// newDB is a real SQLite database with the catalog's and the messaging
// (outbox, inbox, dead letters) migrations applied.
func newDB(t *testing.T) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatalf("opening database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx, catalogdb.Migrations); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating the outbox: %v", err)
	}
	return db
}

// loadContract loads and validates the published document.
func loadContract(t *testing.T) *contract.Doc {
	t.Helper()
	doc, err := contract.Load(cataloghttp.OpenAPI)
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

type productV2 struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	Description string `json:"description"`
	Category    string `json:"category"`
}

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

const mugBody = `{"sku":"MUG-1","name":"Mug","description":"A mug.","category":"Kitchen","price_cents":1299,"currency":"USD"}`

func (s *server) create(t *testing.T, body string) productV2 {
	t.Helper()
	rec := s.do(t, admin, "POST", "/api/v1/products", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /api/v1/products: got %d %s, want 201", rec.Code, rec.Body)
	}
	return decode[productV2](t, rec)
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

func TestCreateAndRead(t *testing.T) {
	s := newServer(t)
	rec := s.do(t, admin, "POST", "/api/v1/products", mugBody)
	wantStatus(t, rec, http.StatusCreated)
	created := decode[productV2](t, rec)
	want := productV2{ID: created.ID, SKU: "MUG-1", Name: "Mug", PriceCents: 1299, Currency: "USD", Description: "A mug.", Category: "Kitchen"}
	if created != want || created.ID == "" {
		t.Errorf("created: got %+v, want %+v with an id", created, want)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/v1/products/"+created.ID {
		t.Errorf("Location: got %q, want /api/v1/products/%s", loc, created.ID)
	}

	// v1 has exactly the five v1 fields; v2 adds description and category.
	v1 := s.do(t, nil, "GET", "/api/v1/products/"+created.ID, "")
	wantStatus(t, v1, http.StatusOK)
	if got, wantKeys := keys(t, v1), []string{"currency", "id", "name", "price_cents", "sku"}; !slices.Equal(got, wantKeys) {
		t.Errorf("v1 fields: got %v, want %v", got, wantKeys)
	}
	v2 := s.do(t, nil, "GET", "/api/v2/products/"+created.ID, "")
	wantStatus(t, v2, http.StatusOK)
	if got := decode[productV2](t, v2); got != want {
		t.Errorf("v2: got %+v, want %+v", got, want)
	}
	if got, wantKeys := keys(t, v2), []string{"category", "currency", "description", "id", "name", "price_cents", "sku"}; !slices.Equal(got, wantKeys) {
		t.Errorf("v2 fields: got %v, want %v", got, wantKeys)
	}
}

func keys(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	m := decode[map[string]any](t, rec)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestCurrencyDefaultsToUSD(t *testing.T) {
	s := newServer(t)
	p := s.create(t, `{"sku":"MUG-2","name":"Mug","category":"Kitchen","price_cents":500}`)
	if p.Currency != "USD" || p.Description != "" {
		t.Errorf("got currency %q description %q, want USD and empty", p.Currency, p.Description)
	}
}

func TestGetUnknown(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{"/api/v1/products/nope", "/api/v2/products/nope"} {
		wantStatus(t, s.do(t, nil, "GET", path, ""), http.StatusNotFound)
	}
}

func TestCreateRefusals(t *testing.T) {
	tests := []struct {
		name        string
		who         *auth.Principal
		contentType string
		body        string
		want        int
	}{
		{"anonymous", nil, "application/json", mugBody, http.StatusUnauthorized},
		{"customer", customer, "application/json", mugBody, http.StatusForbidden},
		{"unknown field", admin, "application/json", `{"sku":"X","name":"Mug","category":"K","price_cents":1,"colour":"red"}`, http.StatusBadRequest},
		{"malformed JSON", admin, "application/json", `{"sku":`, http.StatusBadRequest},
		{"price as string", admin, "application/json", `{"sku":"X","name":"Mug","category":"K","price_cents":"1"}`, http.StatusBadRequest},
		{"two values", admin, "application/json", mugBody + mugBody, http.StatusBadRequest},
		{"not JSON", admin, "text/plain", mugBody, http.StatusUnsupportedMediaType},
		{"too large", admin, "application/json", `{"sku":"X","name":"` + strings.Repeat("a", 1<<20) + `"}`, http.StatusRequestEntityTooLarge},
		{"lowercase sku", admin, "application/json", `{"sku":"mug","name":"Mug","category":"K","price_cents":1}`, http.StatusUnprocessableEntity},
		{"zero price", admin, "application/json", `{"sku":"X","name":"Mug","category":"K","price_cents":0}`, http.StatusUnprocessableEntity},
		{"missing name", admin, "application/json", `{"sku":"X","category":"K","price_cents":1}`, http.StatusUnprocessableEntity},
		{"euro", admin, "application/json", `{"sku":"X","name":"Mug","category":"K","price_cents":1,"currency":"EUR"}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			req := httptest.NewRequest("POST", "/api/v1/products", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			wantStatus(t, s.send(t, tt.who, req), tt.want)
			// Nothing was added.
			list := decode[struct{ Items []productV2 }](t, s.do(t, nil, "GET", "/api/v1/products", ""))
			if len(list.Items) != 0 {
				t.Errorf("products after a refused create: got %d, want 0", len(list.Items))
			}
		})
	}
}

func TestCreateTakenSKU(t *testing.T) {
	s := newServer(t)
	first := s.create(t, mugBody)
	rec := s.do(t, admin, "POST", "/api/v1/products", strings.Replace(mugBody, `"Mug"`, `"Other"`, 1))
	wantStatus(t, rec, http.StatusConflict)
	if got := decode[productV2](t, s.do(t, nil, "GET", "/api/v2/products/"+first.ID, "")); got != first {
		t.Errorf("after the conflict: got %+v, want %+v", got, first)
	}
}

func TestChangePrice(t *testing.T) {
	s := newServer(t)
	p := s.create(t, mugBody)
	path := "/api/v1/products/" + p.ID
	tests := []struct {
		name  string
		who   *auth.Principal
		path  string
		body  string
		want  int
		price int64 // the price afterwards
	}{
		{"anonymous", nil, path, `{"price_cents":1}`, http.StatusUnauthorized, 1299},
		{"customer", customer, path, `{"price_cents":1}`, http.StatusForbidden, 1299},
		{"missing price", admin, path, `{}`, http.StatusUnprocessableEntity, 1299},
		{"zero price", admin, path, `{"price_cents":0}`, http.StatusUnprocessableEntity, 1299},
		{"too high", admin, path, `{"price_cents":100000001}`, http.StatusUnprocessableEntity, 1299},
		{"fractional", admin, path, `{"price_cents":12.5}`, http.StatusBadRequest, 1299},
		{"other field", admin, path, `{"price_cents":1,"name":"x"}`, http.StatusBadRequest, 1299},
		{"unknown product", admin, "/api/v1/products/nope", `{"price_cents":1}`, http.StatusNotFound, 1299},
		{"changed", admin, path, `{"price_cents":2500}`, http.StatusOK, 2500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := s.do(t, tt.who, "PATCH", tt.path, tt.body)
			wantStatus(t, rec, tt.want)
			if tt.want == http.StatusOK {
				want := p
				want.PriceCents = tt.price
				if got := decode[productV2](t, rec); got != want {
					t.Errorf("answer: got %+v, want %+v", got, want)
				}
			}
			got := decode[productV2](t, s.do(t, nil, "GET", "/api/v2/products/"+p.ID, ""))
			if got.PriceCents != tt.price {
				t.Errorf("price afterwards: got %d, want %d", got.PriceCents, tt.price)
			}
		})
	}
}

func TestListPages(t *testing.T) {
	s := newServer(t)
	var want []string
	for _, sku := range []string{"A", "B", "C"} {
		want = append(want, s.create(t, strings.Replace(mugBody, "MUG-1", sku, 1)).ID)
	}
	type page struct {
		Items []map[string]any `json:"items"`
		Next  *string          `json:"next"`
	}
	var got []string
	target, pages := "/api/v1/products?limit=2", 0
	for {
		rec := s.do(t, nil, "GET", target, "")
		wantStatus(t, rec, http.StatusOK)
		p := decode[page](t, rec)
		pages++
		if p.Next == nil {
			t.Fatalf("page %d has no next field: %s", pages, rec.Body)
		}
		for _, item := range p.Items {
			if len(item) != 5 {
				t.Errorf("list item: got fields %v, want the five v1 fields", item)
			}
			got = append(got, item["id"].(string))
		}
		if *p.Next == "" {
			break
		}
		target = "/api/v1/products?limit=2&after=" + *p.Next
	}
	if !slices.Equal(got, want) || pages != 2 {
		t.Errorf("listing: got %v in %d pages, want %v in 2", got, pages, want)
	}
	// Without a limit the default page holds them all.
	all := decode[page](t, s.do(t, nil, "GET", "/api/v1/products", ""))
	if len(all.Items) != 3 || all.Next == nil || *all.Next != "" {
		t.Errorf("default page: got %d items and next %v, want 3 and empty", len(all.Items), all.Next)
	}
}

func TestListEmptyIsAnArray(t *testing.T) {
	s := newServer(t)
	rec := s.do(t, nil, "GET", "/api/v1/products", "")
	wantStatus(t, rec, http.StatusOK)
	if body := strings.TrimSpace(rec.Body.String()); body != `{"items":[],"next":""}` {
		t.Errorf("empty listing: got %s, want {\"items\":[],\"next\":\"\"}", body)
	}
}

func TestListBadLimits(t *testing.T) {
	s := newServer(t)
	for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=", "limit=1.5", "after=" + strings.Repeat("x", 129)} {
		t.Run(q, func(t *testing.T) {
			wantStatus(t, s.do(t, nil, "GET", "/api/v1/products?"+q, ""), http.StatusUnprocessableEntity)
		})
	}
}

func TestOpenAPI(t *testing.T) {
	s := newServer(t)
	rec := s.do(t, nil, "GET", "/openapi.yaml", "")
	wantStatus(t, rec, http.StatusOK)
	if !bytes.Equal(rec.Body.Bytes(), cataloghttp.OpenAPI) {
		t.Error("GET /openapi.yaml did not serve the embedded document")
	}
}

// surface is the catalog's whole surface as the shop serves it: routes.go,
// the dead-letter admin routes inbox.Mount adds, and the ops endpoints host
// adds to every service.
var surface = []string{
	"GET /api/v1/admin/dlq",
	"POST /api/v1/admin/dlq/{id}/replay",
	"GET /api/v1/products",
	"POST /api/v1/products",
	"GET /api/v1/products/{id}",
	"PATCH /api/v1/products/{id}",
	"GET /api/v2/products/{id}",
	"GET /openapi.yaml",
	"GET /healthz",
	"GET /ready",
	"GET /metrics",
}

// hosted serves mux as the shop does: behind host's middleware, which
// verifies tokens with tokens, and with its ops endpoints, which mux holds
// once Handler is called.
func hosted(mux *http.ServeMux, tokens *auth.Signer) *host.Service {
	return &host.Service{
		Name:     "catalog",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   mux,
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("catalog"),
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

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes
// in step: every route is documented and nothing else is.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) {
	loadContract(t) // the document is valid
	doc, err := openapi3.NewLoader().LoadFromData(cataloghttp.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version: got %q, want 3.0.3", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	want := slices.Clone(surface)
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("documented operations:\n got %v\nwant %v", documented, want)
	}
	// Every route answers something other than the mux's own 404/405.
	mux := routes(t)
	hosted(mux, newSigner(t)).Handler()
	for _, route := range surface {
		method, path, _ := strings.Cut(route, " ")
		req := httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "x"), nil)
		if _, pattern := mux.Handler(req); pattern != route {
			t.Errorf("%s: routed to pattern %q, want %q", route, pattern, route)
		}
	}
	for _, name := range []string{"NewProduct", "PriceChange"} {
		if ap := doc.Components.Schemas[name].Value.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("schema %s: additionalProperties must be false", name)
		}
	}
}

// TestServedAsTheShopServesIt checks, against the document, what only the
// shop's middleware adds: health, readiness and metrics, and the 401 that a
// bad Authorization header gets on every route, public ones included.
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

	for _, path := range []string{"/healthz", "/ready", "/metrics", "/openapi.yaml", "/api/v1/products"} {
		wantCode(send("GET", path, ""), path, http.StatusOK)
	}
	admin, _, err := tokens.Sign("admin-1", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(send("GET", "/api/v1/products", "Bearer "+admin), "a valid token", http.StatusOK)
	for _, route := range surface {
		method, path, _ := strings.Cut(route, " ")
		for _, bad := range []string{"Bearer not-a-token", "Basic YTpi"} {
			rec := send(method, strings.ReplaceAll(path, "{id}", "x"), bad)
			wantStatus(t, rec, http.StatusUnauthorized)
		}
	}

	h.Health.Add("db", func(context.Context) error { return errors.New("disk on fire") })
	wantCode(send("GET", "/healthz", ""), "/healthz with a check down", http.StatusServiceUnavailable)
	h.Health.SetReady(false)
	wantCode(send("GET", "/ready", ""), "/ready while draining", http.StatusServiceUnavailable)
}

// TestDeadLetterRoutes checks the dead-letter admin routes the shop mounts
// on the catalog's mux, through host's middleware with real tokens and
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
