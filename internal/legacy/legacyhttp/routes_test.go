package legacyhttp_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/legacy/legacydb"
	"github.com/microshop/microshop/internal/legacy/legacyhttp"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// accounts is a fake of the users service's accounts: every user is Ada,
// unless users is down.
type accounts struct{ down bool }

func (a *accounts) Account(_ context.Context, userID, _ string) (legacy.Account, error) {
	if a.down {
		return legacy.Account{}, fail.New(fail.Unavailable, "users unavailable")
	}
	return legacy.Account{Name: "Ada " + userID, Email: userID + "@example.com"}, nil
}

// catalog is a fake of the catalog: two products in USD, one in EUR,
// "broken" that cannot be priced, and no other.
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
		return legacy.Product{}, fail.New(fail.Unavailable, "catalog unavailable")
	}
	return legacy.Product{}, fail.New(fail.Invalid, "unknown product %q", id)
}

// routesWith is the legacy mux as the shop builds it, over a real SQLite
// store with the migrations applied: the service's routes, and the
// resilience and fault admin routes every data-owning service gets.
func routesWith(t testing.TB, acc legacy.Accounts) (*http.ServeMux, *legacydb.Store) {
	t.Helper()
	store := legacydb.New(sqldbtest.Open(t, "legacy", legacydb.Migrations))
	mux := legacyhttp.Routes(legacy.NewService(store, acc, catalog{}))
	resilience.Mount(mux, resilience.NewEdges("legacy", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("legacy"))
	return mux, store
}

func routes(t *testing.T) *http.ServeMux {
	t.Helper()
	mux, _ := routesWith(t, &accounts{})
	return mux
}

var service = contracttest.Service{
	Name:    "legacy",
	OpenAPI: legacyhttp.OpenAPI,
	Routes:  routes,
	Surface: []string{
		"GET /profile",
		"PUT /profile",
		"GET /orders",
		"POST /orders",
		"GET /orders/{order_no}",
		"GET /admin/stats",
		"GET /api/v1/admin/resilience",
		"GET /api/v1/admin/faults",
		"PUT /api/v1/admin/faults",
		"GET /internal/v1/export/profiles",
		"GET /internal/v1/export/orders",
		"GET /internal/v1/handovers",
		"POST /internal/v1/handovers",
		"GET /openapi.yaml",
		"GET /healthz",
		"GET /ready",
		"GET /metrics",
	},
	Authorized: contracttest.Get{Role: auth.RoleCustomer, Path: "/orders"},
	Closed:     []string{"Rename", "PlaceOrder", "LineRequest", "Address", "HandoverRequest", "FaultSettings"},
}

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes
// in step: every route is documented and nothing else is.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) { service.CheckDocumented(t) }

// TestServedAsTheShopServesIt checks, against the document, what the shop's
// middleware adds: the ops endpoints, and 401 for a bad token on every route.
func TestServedAsTheShopServesIt(t *testing.T) { service.CheckHosted(t) }
