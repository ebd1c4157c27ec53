package legacyhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/legacy/legacydb"
	"github.com/microshop/microshop/internal/legacy/legacyhttp"
)

var (
	ada     = &auth.Principal{Subject: "u-ada", Role: auth.RoleCustomer}
	bob     = &auth.Principal{Subject: "u-bob", Role: auth.RoleCustomer}
	admin   = &auth.Principal{Subject: "u-admin", Role: auth.RoleAdmin}
	gateway = &auth.Principal{Subject: "gateway", Role: auth.RoleService}
	orders  = &auth.Principal{Subject: "orders", Role: auth.RoleService}
)

// shop is the legacy routes over a fresh database, every exchange checked
// against the document.
type shop struct {
	srv   contracttest.Server
	store *legacydb.Store
	acc   *accounts
}

func newShop(t testing.TB) *shop {
	t.Helper()
	acc := &accounts{}
	mux, store := routesWith(t, acc)
	return &shop{srv: contracttest.Server{Handler: mux, Doc: contracttest.Load(t, legacyhttp.OpenAPI)}, store: store, acc: acc}
}

func (s *shop) do(t *testing.T, p *auth.Principal, method, target, body string) contracttest.Response {
	t.Helper()
	return s.srv.Call(t, p, method, target, body)
}

// counts are the monolith's figures, straight from its store.
func (s *shop) counts(t testing.TB) (customers, orders int) {
	t.Helper()
	st, err := s.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Customers, st.Orders
}

const order = `{"lines":[{"product_id":"p-1","qty":2},{"product_id":"p-2","qty":1}],"card_number":"4242424242424242",
	"deliver_to":{"name":"Ada","line1":"1 Main St","city":"London","postal_code":"N1","country":"GB"}}`

// orderWith is the order with one field of it replaced by a raw JSON value.
func orderWith(t *testing.T, field, value string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(order), &m); err != nil {
		t.Fatal(err)
	}
	m[field] = json.RawMessage(value)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPublicRoutesNeedAUserToken(t *testing.T) {
	s := newShop(t)
	for _, route := range []string{"GET /profile", "PUT /profile", "GET /orders", "POST /orders", "GET /orders/x", "GET /admin/stats"} {
		method, path, _ := strings.Cut(route, " ")
		body := ""
		if method != "GET" {
			body = "{}"
		}
		for _, who := range []*auth.Principal{nil, gateway} {
			contracttest.WantProblem(t, s.do(t, who, method, path, body), http.StatusUnauthorized, "")
		}
	}
	if c, o := s.counts(t); c != 0 || o != 0 {
		t.Errorf("customers=%d orders=%d after refused requests, want 0 and 0", c, o)
	}
}

func TestProfile(t *testing.T) {
	s := newShop(t)
	res := s.do(t, ada, "GET", "/profile", "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET /profile: %d %s", res.Status, res.Raw)
	}
	if k := contracttest.Keys(res.Body); !slices.Equal(k, []string{"customer_id", "email", "name"}) {
		t.Errorf("profile keys = %v", k)
	}
	if res.Body["customer_id"] != "u-ada" || res.Body["name"] != "Ada u-ada" || res.Body["email"] != "u-ada@example.com" {
		t.Errorf("profile = %v, want Ada's account as users has it", res.Body)
	}

	res = s.do(t, ada, "PUT", "/profile", `{"name":"  Ada Lovelace "}`)
	if res.Status != http.StatusOK || res.Body["name"] != "Ada Lovelace" {
		t.Fatalf("PUT /profile: %d %s; want 200 with the trimmed name", res.Status, res.Raw)
	}
	if res := s.do(t, ada, "GET", "/profile", ""); res.Body["name"] != "Ada Lovelace" {
		t.Errorf("GET /profile after the rename: %s", res.Raw)
	}
	// An admin is its own customer here, with no power over others.
	if res := s.do(t, admin, "GET", "/profile", ""); res.Status != http.StatusOK || res.Body["customer_id"] != "u-admin" {
		t.Errorf("GET /profile as admin: %d %s; want the admin's own profile", res.Status, res.Raw)
	}
}

func TestRenameRefusals(t *testing.T) {
	s := newShop(t)
	tests := []struct {
		name   string
		body   string
		status int
		detail string
	}{
		{"empty name", `{"name":"   "}`, http.StatusUnprocessableEntity, "name must be 1 to 100 characters"},
		{"long name", `{"name":"` + strings.Repeat("é", 101) + `"}`, http.StatusUnprocessableEntity, "name must be 1 to 100 characters"},
		{"control character", `{"name":"Ada\u0007"}`, http.StatusUnprocessableEntity, "name must not contain control characters"},
		{"unknown field", `{"name":"Ada","role":"admin"}`, http.StatusBadRequest, "unknown field"},
		{"not JSON", `name=Ada`, http.StatusBadRequest, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			contracttest.WantProblem(t, s.do(t, ada, "PUT", "/profile", tt.body), tt.status, tt.detail)
		})
	}
	req, _ := http.NewRequest("PUT", "/profile", strings.NewReader(`{"name":"Ada"}`))
	req.Header.Set("Content-Type", "text/plain")
	contracttest.WantProblem(t, s.srv.Exchange(t, ada, req), http.StatusUnsupportedMediaType, "application/json")
	if c, _ := s.counts(t); c != 0 {
		t.Errorf("customers = %d after refused renames, want 0: bad input enrols no one", c)
	}
}

func TestProfileWithUsersDownIs503(t *testing.T) {
	s := newShop(t)
	s.acc.down = true
	res := s.do(t, ada, "GET", "/profile", "")
	contracttest.WantProblem(t, res, http.StatusServiceUnavailable, "users unavailable")
	if res.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestPlaceAndReadOrders(t *testing.T) {
	s := newShop(t)
	res := s.do(t, ada, "POST", "/orders", order)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", res.Status, res.Raw)
	}
	no, _ := res.Body["order_no"].(string)
	if loc := res.Header.Get("Location"); no == "" || loc != "/orders/"+no {
		t.Errorf("Location = %q, want /orders/%s", loc, no)
	}
	if k := contracttest.Keys(res.Body); !slices.Equal(k, []string{"currency", "lines", "order_no", "placed_at", "status", "total_cents"}) {
		t.Errorf("order keys = %v: the card, customer and address stay out of the old API's order", k)
	}
	if res.Body["status"] != "CONFIRMED" || res.Body["total_cents"] != float64(2250) || res.Body["currency"] != "USD" {
		t.Errorf("order = %s, want CONFIRMED 2250 USD", res.Raw)
	}
	if strings.Contains(res.Raw, "4242424242424242") {
		t.Error("the answer repeats the card number")
	}
	placed, _ := res.Body["placed_at"].(string)
	if !strings.HasSuffix(placed, "Z") {
		t.Errorf("placed_at = %q, want RFC 3339 in UTC", placed)
	}

	res = s.do(t, ada, "GET", "/orders/"+no, "")
	if res.Status != http.StatusOK || res.Body["order_no"] != no {
		t.Errorf("GET /orders/%s: %d %s", no, res.Status, res.Raw)
	}
	contracttest.WantProblem(t, s.do(t, bob, "GET", "/orders/"+no, ""), http.StatusNotFound, "order not found")
	contracttest.WantProblem(t, s.do(t, admin, "GET", "/orders/"+no, ""), http.StatusNotFound, "order not found")
	contracttest.WantProblem(t, s.do(t, ada, "GET", "/orders/nope", ""), http.StatusNotFound, "order not found")

	second := s.do(t, ada, "POST", "/orders", order)
	res = s.do(t, ada, "GET", "/orders", "")
	list, _ := res.Body["orders"].([]any)
	if res.Status != http.StatusOK || len(list) != 2 || list[0].(map[string]any)["order_no"] != second.Body["order_no"] {
		t.Errorf("GET /orders: %d %s; want both, newest first", res.Status, res.Raw)
	}
	if res := s.do(t, bob, "GET", "/orders", ""); strings.TrimSpace(res.Raw) != `{"orders":[]}` {
		t.Errorf("GET /orders of a customer with none: %s, want {\"orders\":[]}", res.Raw)
	}
}

func TestPlaceRefusalsStoreNothing(t *testing.T) {
	s := newShop(t)
	tests := []struct {
		name   string
		body   string
		status int
		detail string
	}{
		{"no lines", orderWith(t, "lines", `[]`), http.StatusUnprocessableEntity, "1 to 50 lines"},
		{"qty too big", orderWith(t, "lines", `[{"product_id":"p-1","qty":1001}]`), http.StatusUnprocessableEntity, "qty must be 1 to 1000"},
		{"bad card", orderWith(t, "card_number", `"4242424242424241"`), http.StatusUnprocessableEntity, "card_number is not a valid card number"},
		{"short card", orderWith(t, "card_number", `"4242"`), http.StatusUnprocessableEntity, "card_number must be 12 to 19 digits"},
		{"no city", orderWith(t, "deliver_to", `{"name":"Ada","line1":"1 Main","city":"","postal_code":"N1","country":"GB"}`), http.StatusUnprocessableEntity, "deliver_to.city"},
		{"unknown product", orderWith(t, "lines", `[{"product_id":"p-9","qty":1}]`), http.StatusUnprocessableEntity, `unknown product "p-9"`},
		{"two currencies", orderWith(t, "lines", `[{"product_id":"p-1","qty":1},{"product_id":"p-eur","qty":1}]`), http.StatusUnprocessableEntity, "one currency"},
		{"catalog down", orderWith(t, "lines", `[{"product_id":"broken","qty":1}]`), http.StatusServiceUnavailable, "catalog unavailable"},
		{"a total sent along", orderWith(t, "total_cents", `1`), http.StatusBadRequest, "unknown field"},
		{"a status sent along", orderWith(t, "status", `"SHIPPED"`), http.StatusBadRequest, "unknown field"},
		{"huge qty", orderWith(t, "lines", `[{"product_id":"p-1","qty":1e30}]`), http.StatusBadRequest, "qty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.do(t, ada, "POST", "/orders", tt.body)
			contracttest.WantProblem(t, res, tt.status, tt.detail)
			if strings.Contains(res.Raw, "424242424242424") {
				t.Error("the problem repeats the card number")
			}
		})
	}
	if _, o := s.counts(t); o != 0 {
		t.Errorf("orders = %d after refused orders, want 0", o)
	}
}

func TestStatsAreForAdmins(t *testing.T) {
	s := newShop(t)
	s.do(t, ada, "GET", "/profile", "")
	s.do(t, ada, "POST", "/orders", order)
	contracttest.WantProblem(t, s.do(t, ada, "GET", "/admin/stats", ""), http.StatusForbidden, "admin only")
	res := s.do(t, admin, "GET", "/admin/stats", "")
	if res.Status != http.StatusOK || res.Body["customers"] != float64(1) || res.Body["orders"] != float64(1) {
		t.Fatalf("GET /admin/stats: %d %s; want 1 customer, 1 order", res.Status, res.Raw)
	}
	if hs, ok := res.Body["handovers"].([]any); !ok || len(hs) != 0 {
		t.Errorf("handovers = %v, want []", res.Body["handovers"])
	}
}

func TestInternalRoutesAreTheGatewaysOnly(t *testing.T) {
	s := newShop(t)
	routes := []struct{ method, path, body string }{
		{"GET", "/internal/v1/export/profiles", ""},
		{"GET", "/internal/v1/export/orders", ""},
		{"GET", "/internal/v1/handovers", ""},
		{"POST", "/internal/v1/handovers", `{"domain":"profiles","service":"users"}`},
	}
	for _, r := range routes {
		contracttest.WantProblem(t, s.do(t, orders, r.method, r.path, r.body), http.StatusForbidden, "only the gateway")
		for _, who := range []*auth.Principal{nil, ada, admin} {
			contracttest.WantProblem(t, s.do(t, who, r.method, r.path, r.body), http.StatusUnauthorized, "service token")
		}
	}
	if res := s.do(t, gateway, "GET", "/internal/v1/handovers", ""); strings.TrimSpace(res.Raw) != `{"handovers":[]}` {
		t.Errorf("handovers after refused calls: %s, want none", res.Raw)
	}
}

func TestExportPages(t *testing.T) {
	s := newShop(t)
	var nos []string
	for i := range 5 {
		who := &auth.Principal{Subject: fmt.Sprintf("u-%d", i), Role: auth.RoleCustomer}
		s.do(t, who, "GET", "/profile", "")
		nos = append(nos, s.do(t, who, "POST", "/orders", order).Body["order_no"].(string))
	}

	var got []string
	after := float64(0)
	for {
		res := s.do(t, gateway, "GET", fmt.Sprintf("/internal/v1/export/orders?after=%d&limit=2", int64(after)), "")
		if res.Status != http.StatusOK {
			t.Fatalf("export: %d %s", res.Status, res.Raw)
		}
		items := contracttest.Items(t, res)
		if len(items) == 0 {
			if res.Body["next"] != after {
				t.Errorf("next of an empty page = %v, want %v", res.Body["next"], after)
			}
			break
		}
		for _, it := range items {
			o := it.(map[string]any)
			if k := contracttest.Keys(o); !slices.Equal(k, []string{"currency", "customer_id", "deliver_to", "lines", "order_no", "placed_at", "seq", "status", "total_cents"}) {
				t.Fatalf("exported order keys = %v", k)
			}
			got = append(got, o["order_no"].(string))
		}
		last := items[len(items)-1].(map[string]any)["seq"].(float64)
		if res.Body["next"] != last {
			t.Errorf("next = %v, want the last item's seq %v", res.Body["next"], last)
		}
		after = last
	}
	if !slices.Equal(got, nos) {
		t.Errorf("exported %v, want %v", got, nos)
	}

	res := s.do(t, gateway, "GET", "/internal/v1/export/profiles", "")
	items := contracttest.Items(t, res)
	if len(items) != 5 || !slices.Equal(contracttest.Keys(items[0]), []string{"customer_id", "email", "name", "seq"}) {
		t.Errorf("exported profiles: %s", res.Raw)
	}
	for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1001", "limit="} {
		contracttest.WantProblem(t, s.do(t, gateway, "GET", "/internal/v1/export/profiles?"+q, ""), http.StatusUnprocessableEntity, "must be a whole number")
	}
}

// TestHandoverMakesRoutesGone hands both domains over through the internal
// API: the handover is idempotent, a second service is a conflict, and the
// domain's public routes answer 410 naming the service, writing nothing.
func TestHandoverMakesRoutesGone(t *testing.T) {
	s := newShop(t)
	s.do(t, ada, "GET", "/profile", "")
	no := s.do(t, ada, "POST", "/orders", order).Body["order_no"].(string)

	first := s.do(t, gateway, "POST", "/internal/v1/handovers", `{"domain":"profiles","service":"users"}`)
	if first.Status != http.StatusOK || first.Body["domain"] != "profiles" || first.Body["service"] != "users" {
		t.Fatalf("handover: %d %s", first.Status, first.Raw)
	}
	if again := s.do(t, gateway, "POST", "/internal/v1/handovers", `{"domain":"profiles","service":"users"}`); again.Status != http.StatusOK || again.Raw != first.Raw {
		t.Errorf("handover again: %d %s, want the first answer %s", again.Status, again.Raw, first.Raw)
	}
	contracttest.WantProblem(t, s.do(t, gateway, "POST", "/internal/v1/handovers", `{"domain":"profiles","service":"orders"}`), http.StatusConflict, "users")
	contracttest.WantProblem(t, s.do(t, gateway, "POST", "/internal/v1/handovers", `{"domain":"payments","service":"payments"}`), http.StatusUnprocessableEntity, "domain must be one of")
	contracttest.WantProblem(t, s.do(t, gateway, "POST", "/internal/v1/handovers", `{"domain":"orders"}`), http.StatusUnprocessableEntity, "service must be")

	wantGone := func(res contracttest.Response, service string) {
		t.Helper()
		contracttest.WantProblem(t, res, http.StatusGone, "this route's data moved to the "+service+" service")
		if res.Body["moved_to"] != service {
			t.Errorf("moved_to = %v, want %q", res.Body["moved_to"], service)
		}
	}
	wantGone(s.do(t, ada, "GET", "/profile", ""), "users")
	wantGone(s.do(t, ada, "PUT", "/profile", `{"name":"Ada Lovelace"}`), "users")
	wantGone(s.do(t, ada, "PUT", "/profile", `not even JSON`), "users")
	wantGone(s.do(t, bob, "GET", "/profile", ""), "users") // no enrolment either
	if res := s.do(t, ada, "GET", "/orders", ""); res.Status != http.StatusOK {
		t.Errorf("GET /orders with orders still here: %d %s", res.Status, res.Raw)
	}

	if res := s.do(t, gateway, "POST", "/internal/v1/handovers", `{"domain":"orders","service":"orders"}`); res.Status != http.StatusOK {
		t.Fatalf("handover of orders: %d %s", res.Status, res.Raw)
	}
	wantGone(s.do(t, ada, "GET", "/orders", ""), "orders")
	wantGone(s.do(t, ada, "GET", "/orders/"+no, ""), "orders")
	wantGone(s.do(t, ada, "POST", "/orders", order), "orders")
	wantGone(s.do(t, ada, "POST", "/orders", `{}`), "orders")
	// Without a token the route is still refused as such first.
	contracttest.WantProblem(t, s.do(t, nil, "GET", "/orders", ""), http.StatusUnauthorized, "")

	if c, o := s.counts(t); c != 1 || o != 1 {
		t.Errorf("customers=%d orders=%d, want 1 and 1: nothing written after the handovers", c, o)
	}
	res := s.do(t, admin, "GET", "/admin/stats", "")
	if hs, _ := res.Body["handovers"].([]any); len(hs) != 2 {
		t.Errorf("stats handovers = %v, want both", res.Body["handovers"])
	}
	res = s.do(t, gateway, "GET", "/internal/v1/handovers", "")
	if hs, _ := res.Body["handovers"].([]any); len(hs) != 2 {
		t.Errorf("internal handovers = %s, want both", res.Raw)
	}
	// The export still answers, for the facade's last catch-up.
	if res := s.do(t, gateway, "GET", "/internal/v1/export/orders", ""); len(contracttest.Items(t, res)) != 1 {
		t.Errorf("export after the handover: %s, want the one order", res.Raw)
	}
}
