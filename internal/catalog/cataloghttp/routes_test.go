package cataloghttp_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdb"
	"github.com/microshop/microshop/internal/catalog/cataloghttp"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

var (
	admin    = &auth.Principal{Subject: "admin-1", Role: auth.RoleAdmin}
	customer = &auth.Principal{Subject: "user-1", Role: auth.RoleCustomer}
)

// server is the catalog's real routes over a real SQLite store, with every
// exchange checked against the published OpenAPI document.
type server struct{ contracttest.Server }

func newServer(t *testing.T) *server {
	t.Helper()
	return &server{service.Server(t)}
}

// routes is the catalog's mux as the shop builds it: the service's routes
// over a real SQLite store with the catalog's and the messaging (outbox,
// inbox, dead letters) migrations applied, and the dead-letter admin routes
// of a real inbox over the same database.
func routes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "catalog", catalogdb.Migrations)
	mux := cataloghttp.Routes(catalog.NewService(catalogdb.New(db)))
	inbox.Mount(mux, inbox.New(db, "catalog", nil))
	resilience.Mount(mux, resilience.NewEdges("catalog", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("catalog"))
	return mux
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

const mugBody = `{"sku":"MUG-1","name":"Mug","description":"A mug.","category":"Kitchen","price_cents":1299,"currency":"USD"}`

func (s *server) create(t *testing.T, body string) productV2 {
	t.Helper()
	rec := s.Do(t, admin, "POST", "/api/v1/products", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /api/v1/products: got %d %s, want 201", rec.Code, rec.Body)
	}
	return contracttest.Decode[productV2](t, rec)
}

func TestCreateAndRead(t *testing.T) {
	s := newServer(t)
	rec := s.Do(t, admin, "POST", "/api/v1/products", mugBody)
	contracttest.WantStatus(t, rec, http.StatusCreated)
	created := contracttest.Decode[productV2](t, rec)
	want := productV2{ID: created.ID, SKU: "MUG-1", Name: "Mug", PriceCents: 1299, Currency: "USD", Description: "A mug.", Category: "Kitchen"}
	if created != want || created.ID == "" {
		t.Errorf("created: got %+v, want %+v with an id", created, want)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/v1/products/"+created.ID {
		t.Errorf("Location: got %q, want /api/v1/products/%s", loc, created.ID)
	}

	// v1 has exactly the five v1 fields; v2 adds description and category.
	v1 := s.Do(t, nil, "GET", "/api/v1/products/"+created.ID, "")
	contracttest.WantStatus(t, v1, http.StatusOK)
	if got, wantKeys := keys(t, v1), []string{"currency", "id", "name", "price_cents", "sku"}; !slices.Equal(got, wantKeys) {
		t.Errorf("v1 fields: got %v, want %v", got, wantKeys)
	}
	v2 := s.Do(t, nil, "GET", "/api/v2/products/"+created.ID, "")
	contracttest.WantStatus(t, v2, http.StatusOK)
	if got := contracttest.Decode[productV2](t, v2); got != want {
		t.Errorf("v2: got %+v, want %+v", got, want)
	}
	if got, wantKeys := keys(t, v2), []string{"category", "currency", "description", "id", "name", "price_cents", "sku"}; !slices.Equal(got, wantKeys) {
		t.Errorf("v2 fields: got %v, want %v", got, wantKeys)
	}
}

func keys(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	m := contracttest.Decode[map[string]any](t, rec)
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
		contracttest.WantStatus(t, s.Do(t, nil, "GET", path, ""), http.StatusNotFound)
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
			contracttest.WantStatus(t, s.Send(t, tt.who, req), tt.want)
			// Nothing was added.
			list := contracttest.Decode[struct{ Items []productV2 }](t, s.Do(t, nil, "GET", "/api/v1/products", ""))
			if len(list.Items) != 0 {
				t.Errorf("products after a refused create: got %d, want 0", len(list.Items))
			}
		})
	}
}

func TestCreateTakenSKU(t *testing.T) {
	s := newServer(t)
	first := s.create(t, mugBody)
	rec := s.Do(t, admin, "POST", "/api/v1/products", strings.Replace(mugBody, `"Mug"`, `"Other"`, 1))
	contracttest.WantStatus(t, rec, http.StatusConflict)
	if got := contracttest.Decode[productV2](t, s.Do(t, nil, "GET", "/api/v2/products/"+first.ID, "")); got != first {
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
			rec := s.Do(t, tt.who, "PATCH", tt.path, tt.body)
			contracttest.WantStatus(t, rec, tt.want)
			if tt.want == http.StatusOK {
				want := p
				want.PriceCents = tt.price
				if got := contracttest.Decode[productV2](t, rec); got != want {
					t.Errorf("answer: got %+v, want %+v", got, want)
				}
			}
			got := contracttest.Decode[productV2](t, s.Do(t, nil, "GET", "/api/v2/products/"+p.ID, ""))
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
		rec := s.Do(t, nil, "GET", target, "")
		contracttest.WantStatus(t, rec, http.StatusOK)
		p := contracttest.Decode[page](t, rec)
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
	all := contracttest.Decode[page](t, s.Do(t, nil, "GET", "/api/v1/products", ""))
	if len(all.Items) != 3 || all.Next == nil || *all.Next != "" {
		t.Errorf("default page: got %d items and next %v, want 3 and empty", len(all.Items), all.Next)
	}
}

func TestListEmptyIsAnArray(t *testing.T) {
	s := newServer(t)
	rec := s.Do(t, nil, "GET", "/api/v1/products", "")
	contracttest.WantStatus(t, rec, http.StatusOK)
	if body := strings.TrimSpace(rec.Body.String()); body != `{"items":[],"next":""}` {
		t.Errorf("empty listing: got %s, want {\"items\":[],\"next\":\"\"}", body)
	}
}

func TestListBadLimits(t *testing.T) {
	s := newServer(t)
	for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=", "limit=1.5", "after=" + strings.Repeat("x", 129)} {
		t.Run(q, func(t *testing.T) {
			contracttest.WantStatus(t, s.Do(t, nil, "GET", "/api/v1/products?"+q, ""), http.StatusUnprocessableEntity)
		})
	}
}

// service is the catalog as the contract checks see it. Its surface is
// routes.go, the dead-letter admin routes inbox.Mount adds, the fault routes
// fault.Mount adds, and the ops endpoints host adds to every service.
var service = contracttest.Service{
	Name:    "catalog",
	OpenAPI: cataloghttp.OpenAPI,
	Routes:  routes,
	Surface: []string{
		"GET /api/v1/admin/dlq",
		"GET /api/v1/admin/resilience",
		"POST /api/v1/admin/dlq/{id}/replay",
		"GET /api/v1/admin/faults",
		"PUT /api/v1/admin/faults",
		"GET /api/v1/products",
		"POST /api/v1/products",
		"GET /api/v1/products/{id}",
		"PATCH /api/v1/products/{id}",
		"GET /api/v2/products/{id}",
		"GET /openapi.yaml",
		"GET /healthz",
		"GET /ready",
		"GET /metrics",
	},
	Public:     []string{"/api/v1/products"},
	Authorized: contracttest.Get{Role: auth.RoleAdmin, Path: "/api/v1/products"},
	Closed:     []string{"NewProduct", "PriceChange", "FaultSettings"},
}

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes
// in step: every route is documented and nothing else is.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) { service.CheckDocumented(t) }

// TestServedAsTheShopServesIt checks, against the document, what only the
// shop's middleware adds, and the document served as embedded.
func TestServedAsTheShopServesIt(t *testing.T) { service.CheckHosted(t) }

// TestDeadLetterRoutes checks the dead-letter admin routes the shop mounts
// on the catalog's mux.
func TestDeadLetterRoutes(t *testing.T) { service.CheckDeadLetters(t) }
