package shippinghttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/sqldb"
)

var (
	owner    = &auth.Principal{Subject: "user-1", Role: auth.RoleCustomer}
	stranger = &auth.Principal{Subject: "user-2", Role: auth.RoleCustomer}
	admin    = &auth.Principal{Subject: "admin-1", Role: auth.RoleAdmin}
)

const home = `{"name":"Ada Lovelace","line1":"12 St James's Square","city":"London","postal_code":"SW1Y 4JH","country":"GB"}`

// newRoutes is the shipping mux as the shop builds it: the service's routes
// over a real, migrated SQLite store, and the dead-letter admin routes of a
// real inbox over the same database.
func newRoutes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := newDB(t)
	mux := shippinghttp.Routes(shipping.NewService(shipmentdb.New(db)))
	inbox.Mount(mux, inbox.New(db, "shipping", nil))
	return mux
}

// newDB is a real SQLite database with the shipping and the messaging
// (outbox, inbox, dead letters) migrations applied.
func newDB(t *testing.T) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "shipping.db"))
	if err != nil {
		t.Fatalf("opening db: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx, shipmentdb.Migrations); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating messaging tables: %v", err)
	}
	return db
}

type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// do sends one request through the real routes, as p when p is not nil,
// with a JSON body (none when empty).
func do(t *testing.T, routes http.Handler, p *auth.Principal, method, target, body string) response {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return send(t, routes, p, r, body)
}

// send serves r, which carries body, as p when p is not nil, and fails the
// test if the exchange is not one the OpenAPI document allows: an
// undocumented route or status, a body that does not fit its schema, or a
// request the document forbids that was not refused.
func send(t *testing.T, routes http.Handler, p *auth.Principal, r *http.Request, body string) response {
	t.Helper()
	if p != nil {
		// The principal stands for a token the middleware verified; the
		// document only sees that one was sent.
		r.Header.Set("Authorization", "Bearer verified-by-the-middleware")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(auth.WithPrincipal(r.Context(), *p))
		}
		routes.ServeHTTP(w, r)
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if err := loadContract(t).Check(r, []byte(body), w.Code, w.Header(), w.Body.Bytes()); err != nil {
		t.Errorf("%v\nbody: %s", err, w.Body)
	}
	res := response{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if strings.Contains(w.Header().Get("Content-Type"), "json") {
		if err := json.Unmarshal(w.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", r.Method, r.URL, w.Body.String(), err)
		}
	}
	return res
}

func scheduleBody(order, user, address string) string {
	return `{"order_id":"` + order + `","user_id":"` + user + `","address":` + address + `}`
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func items(t *testing.T, res response) []any {
	t.Helper()
	it, ok := res.body["items"].([]any)
	if !ok {
		t.Fatalf("body %s has no items array", res.raw)
	}
	return it
}

func wantProblem(t *testing.T, res response, status int, detail string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.raw)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	if got, _ := res.body["detail"].(string); !strings.Contains(got, detail) {
		t.Errorf("detail = %q, want it to contain %q", got, detail)
	}
}

func TestGetShipmentOfOrder(t *testing.T) {
	routes := newRoutes(t)
	created := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	if created.status != http.StatusCreated {
		t.Fatalf("schedule: status = %d, want 201; body %s", created.status, created.raw)
	}
	tests := []struct {
		name      string
		who       *auth.Principal
		order     string
		wantItems int
		wantKeys  []string
	}{
		{"owner", owner, "order-1", 1, []string{"id", "order_id", "status"}},
		{"other user", stranger, "order-1", 0, nil},
		{"admin", admin, "order-1", 1, []string{"id", "order_id", "status", "user_id"}},
		{"owner, unshipped order", owner, "order-2", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, routes, tt.who, "GET", "/api/v1/shipments?order_id="+tt.order, "")
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.raw)
			}
			got := items(t, res)
			if len(got) != tt.wantItems {
				t.Fatalf("items = %v, want %d", got, tt.wantItems)
			}
			if tt.wantItems == 0 {
				return
			}
			if k := keys(got[0]); !slices.Equal(k, tt.wantKeys) {
				t.Errorf("item keys = %v, want %v", k, tt.wantKeys)
			}
			if item := got[0].(map[string]any); item["id"] != created.body["id"] || item["status"] != "SCHEDULED" {
				t.Errorf("item = %v, want shipment %v SCHEDULED", item, created.body["id"])
			}
		})
	}
	wantProblem(t, do(t, routes, nil, "GET", "/api/v1/shipments?order_id=order-1", ""), http.StatusUnauthorized, "authentication required")
}

func TestListShipments(t *testing.T) {
	routes := newRoutes(t)
	for i, user := range []string{"user-1", "user-2", "user-1"} {
		res := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-"+string(rune('a'+i)), user, home))
		if res.status != http.StatusCreated {
			t.Fatalf("schedule %d: %d %s", i, res.status, res.raw)
		}
	}
	first := do(t, routes, owner, "GET", "/api/v1/shipments?limit=1", "")
	if got := items(t, first); len(got) != 1 || got[0].(map[string]any)["order_id"] != "order-a" || first.body["next"] == "" {
		t.Fatalf("first page = %s, want order-a and a next cursor", first.raw)
	}
	second := do(t, routes, owner, "GET", "/api/v1/shipments?limit=1&after="+first.body["next"].(string), "")
	if got := items(t, second); len(got) != 1 || got[0].(map[string]any)["order_id"] != "order-c" || second.body["next"] != "" {
		t.Errorf("second page = %s, want order-c and no next", second.raw)
	}
	all := do(t, routes, admin, "GET", "/api/v1/shipments", "")
	if got := items(t, all); len(got) != 3 {
		t.Errorf("admin listing = %d items, want 3", len(got))
	} else if k := keys(got[0]); !slices.Equal(k, []string{"id", "order_id", "status", "user_id"}) {
		t.Errorf("admin item keys = %v", k)
	}
	for _, limit := range []string{"0", "1001", "x"} {
		wantProblem(t, do(t, routes, owner, "GET", "/api/v1/shipments?limit="+limit, ""), http.StatusUnprocessableEntity, "limit")
	}
	wantProblem(t, do(t, routes, nil, "GET", "/api/v1/shipments", ""), http.StatusUnauthorized, "")
}

func TestSchedule(t *testing.T) {
	routes := newRoutes(t)
	first := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	if first.status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", first.status, first.raw)
	}
	if k := keys(first.body); !slices.Equal(k, []string{"address", "id", "order_id", "status", "user_id"}) {
		t.Errorf("shipment keys = %v", k)
	}
	if k := keys(first.body["address"]); !slices.Equal(k, []string{"city", "country", "line1", "name", "postal_code"}) {
		t.Errorf("address keys = %v", k)
	}
	again := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	if again.status != http.StatusOK || again.body["id"] != first.body["id"] {
		t.Errorf("repeat: %d id %v, want 200 and id %v", again.status, again.body["id"], first.body["id"])
	}

	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		scheduleBody("order-2", "user-1", strings.Replace(home, `"GB"`, `"gb"`, 1))), http.StatusUnprocessableEntity, "address.country")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		scheduleBody("order-2", "user-1", strings.Replace(home, `"London"`, `"   "`, 1))), http.StatusUnprocessableEntity, "address.city")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		`{"order_id":"order-2","user_id":"user-1"}`), http.StatusUnprocessableEntity, "address.name")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		scheduleBody("order-2", "user-1", strings.Replace(home, `}`, `,"line2":"flat 3"}`, 1))), http.StatusBadRequest, "unknown field")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		`{"order_id":"order-2","user_id":"user-1","status":"SCHEDULED","address":`+home+`}`), http.StatusBadRequest, "unknown field")
	if got := items(t, do(t, routes, admin, "GET", "/api/v1/shipments?order_id=order-2", "")); len(got) != 0 {
		t.Errorf("order-2 shipments after refused requests = %v, want none", got)
	}
}

func TestCancel(t *testing.T) {
	routes := newRoutes(t)
	scheduled := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	for i := range 2 {
		res := do(t, routes, nil, "POST", "/internal/v1/shipments/order-1/cancel", "")
		if res.status != http.StatusOK || res.body["status"] != "CANCELLED" || res.body["id"] != scheduled.body["id"] {
			t.Errorf("cancel %d: %d %v, want 200 CANCELLED %v", i+1, res.status, res.body, scheduled.body["id"])
		}
	}
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home)),
		http.StatusConflict, "shipment was cancelled")

	// A cancel that overtakes its schedule leaves a tombstone that refuses it.
	tomb := do(t, routes, nil, "POST", "/internal/v1/shipments/order-2/cancel", "")
	if tomb.status != http.StatusOK || tomb.body["status"] != "CANCELLED" || tomb.body["address"] != nil {
		t.Errorf("cancel of an unknown order = %d %v, want 200 CANCELLED with no address", tomb.status, tomb.raw)
	}
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-2", "user-1", home)),
		http.StatusConflict, "shipment was cancelled")
	// The owner never sees the tombstone: it is no one's.
	if got := items(t, do(t, routes, owner, "GET", "/api/v1/shipments?order_id=order-2", "")); len(got) != 0 {
		t.Errorf("owner sees %v for a tombstone, want nothing", got)
	}
}

func TestOpenAPIIsServed(t *testing.T) {
	res := do(t, newRoutes(t), nil, "GET", "/openapi.yaml", "")
	if res.status != http.StatusOK || res.raw != string(shippinghttp.OpenAPI) || len(shippinghttp.OpenAPI) == 0 {
		t.Fatalf("GET /openapi.yaml = %d with %d bytes, want 200 and the embedded document", res.status, len(res.raw))
	}
}
