package shippinghttp_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
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
	resilience.Mount(mux, resilience.NewEdges("shipping", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("shipping"))
	return mux
}

// newDB is a real SQLite database with the shipping and the messaging
// (outbox, inbox, dead letters) migrations applied.
func newDB(t *testing.T) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessaging(t, "shipping", shipmentdb.Migrations)
}

// server serves routes and checks every exchange against the document.
func server(t *testing.T, routes http.Handler) contracttest.Server {
	t.Helper()
	return contracttest.Server{Handler: routes, Doc: contracttest.Load(t, shippinghttp.OpenAPI)}
}

// do sends one request through the real routes, as p when p is not nil,
// with a JSON body (none when empty), checked against the document.
func do(t *testing.T, routes http.Handler, p *auth.Principal, method, target, body string) contracttest.Response {
	t.Helper()
	return server(t, routes).Call(t, p, method, target, body)
}

func scheduleBody(order, user, address string) string {
	return `{"order_id":"` + order + `","user_id":"` + user + `","address":` + address + `}`
}

func TestGetShipmentOfOrder(t *testing.T) {
	routes := newRoutes(t)
	created := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	if created.Status != http.StatusCreated {
		t.Fatalf("schedule: status = %d, want 201; body %s", created.Status, created.Raw)
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
			if res.Status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.Status, res.Raw)
			}
			got := contracttest.Items(t, res)
			if len(got) != tt.wantItems {
				t.Fatalf("items = %v, want %d", got, tt.wantItems)
			}
			if tt.wantItems == 0 {
				return
			}
			if k := contracttest.Keys(got[0]); !slices.Equal(k, tt.wantKeys) {
				t.Errorf("item keys = %v, want %v", k, tt.wantKeys)
			}
			if item := got[0].(map[string]any); item["id"] != created.Body["id"] || item["status"] != "SCHEDULED" {
				t.Errorf("item = %v, want shipment %v SCHEDULED", item, created.Body["id"])
			}
		})
	}
	contracttest.WantProblem(t, do(t, routes, nil, "GET", "/api/v1/shipments?order_id=order-1", ""), http.StatusUnauthorized, "authentication required")
}

func TestListShipments(t *testing.T) {
	routes := newRoutes(t)
	for i, user := range []string{"user-1", "user-2", "user-1"} {
		res := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-"+string(rune('a'+i)), user, home))
		if res.Status != http.StatusCreated {
			t.Fatalf("schedule %d: %d %s", i, res.Status, res.Raw)
		}
	}
	first := do(t, routes, owner, "GET", "/api/v1/shipments?limit=1", "")
	if got := contracttest.Items(t, first); len(got) != 1 || got[0].(map[string]any)["order_id"] != "order-a" || first.Body["next"] == "" {
		t.Fatalf("first page = %s, want order-a and a next cursor", first.Raw)
	}
	second := do(t, routes, owner, "GET", "/api/v1/shipments?limit=1&after="+first.Body["next"].(string), "")
	if got := contracttest.Items(t, second); len(got) != 1 || got[0].(map[string]any)["order_id"] != "order-c" || second.Body["next"] != "" {
		t.Errorf("second page = %s, want order-c and no next", second.Raw)
	}
	all := do(t, routes, admin, "GET", "/api/v1/shipments", "")
	if got := contracttest.Items(t, all); len(got) != 3 {
		t.Errorf("admin listing = %d items, want 3", len(got))
	} else if k := contracttest.Keys(got[0]); !slices.Equal(k, []string{"id", "order_id", "status", "user_id"}) {
		t.Errorf("admin item keys = %v", k)
	}
	for _, limit := range []string{"0", "1001", "x"} {
		contracttest.WantProblem(t, do(t, routes, owner, "GET", "/api/v1/shipments?limit="+limit, ""), http.StatusUnprocessableEntity, "limit")
	}
	contracttest.WantProblem(t, do(t, routes, nil, "GET", "/api/v1/shipments", ""), http.StatusUnauthorized, "")
}

func TestSchedule(t *testing.T) {
	routes := newRoutes(t)
	first := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	if first.Status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", first.Status, first.Raw)
	}
	if k := contracttest.Keys(first.Body); !slices.Equal(k, []string{"address", "id", "order_id", "status", "user_id"}) {
		t.Errorf("shipment keys = %v", k)
	}
	if k := contracttest.Keys(first.Body["address"]); !slices.Equal(k, []string{"city", "country", "line1", "name", "postal_code"}) {
		t.Errorf("address keys = %v", k)
	}
	again := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	if again.Status != http.StatusOK || again.Body["id"] != first.Body["id"] {
		t.Errorf("repeat: %d id %v, want 200 and id %v", again.Status, again.Body["id"], first.Body["id"])
	}

	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		scheduleBody("order-2", "user-1", strings.Replace(home, `"GB"`, `"gb"`, 1))), http.StatusUnprocessableEntity, "address.country")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		scheduleBody("order-2", "user-1", strings.Replace(home, `"London"`, `"   "`, 1))), http.StatusUnprocessableEntity, "address.city")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		`{"order_id":"order-2","user_id":"user-1"}`), http.StatusUnprocessableEntity, "address.name")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		scheduleBody("order-2", "user-1", strings.Replace(home, `}`, `,"line2":"flat 3"}`, 1))), http.StatusBadRequest, "unknown field")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments",
		`{"order_id":"order-2","user_id":"user-1","status":"SCHEDULED","address":`+home+`}`), http.StatusBadRequest, "unknown field")
	if got := contracttest.Items(t, do(t, routes, admin, "GET", "/api/v1/shipments?order_id=order-2", "")); len(got) != 0 {
		t.Errorf("order-2 shipments after refused requests = %v, want none", got)
	}
}

func TestCancel(t *testing.T) {
	routes := newRoutes(t)
	scheduled := do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home))
	for i := range 2 {
		res := do(t, routes, nil, "POST", "/internal/v1/shipments/order-1/cancel", "")
		if res.Status != http.StatusOK || res.Body["status"] != "CANCELLED" || res.Body["id"] != scheduled.Body["id"] {
			t.Errorf("cancel %d: %d %v, want 200 CANCELLED %v", i+1, res.Status, res.Body, scheduled.Body["id"])
		}
	}
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-1", "user-1", home)),
		http.StatusConflict, "shipment was cancelled")

	// A cancel that overtakes its schedule leaves a tombstone that refuses it.
	tomb := do(t, routes, nil, "POST", "/internal/v1/shipments/order-2/cancel", "")
	if tomb.Status != http.StatusOK || tomb.Body["status"] != "CANCELLED" || tomb.Body["address"] != nil {
		t.Errorf("cancel of an unknown order = %d %v, want 200 CANCELLED with no address", tomb.Status, tomb.Raw)
	}
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/shipments", scheduleBody("order-2", "user-1", home)),
		http.StatusConflict, "shipment was cancelled")
	// The owner never sees the tombstone: it is no one's.
	if got := contracttest.Items(t, do(t, routes, owner, "GET", "/api/v1/shipments?order_id=order-2", "")); len(got) != 0 {
		t.Errorf("owner sees %v for a tombstone, want nothing", got)
	}
}
