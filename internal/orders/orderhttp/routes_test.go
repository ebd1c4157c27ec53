package orderhttp_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// routes is the orders service's mux as the shop builds it, over a real
// SQLite store with every migration applied. The catalog and the card vault
// are not reached by the checks below, which place no order.
func routes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "orders", orderdb.Migrations)
	store := orderdb.New(db)
	svc := orders.NewService(store, nil, nil, orders.ModeOrchestration, func() {})
	rebuild := func(ctx context.Context) (int, error) {
		return store.RebuildViews(ctx, func(context.Context, event.Event) error { return nil })
	}
	mux := orderhttp.Routes(svc, orderhttp.Deps{History: store.History, Rebuild: rebuild})
	inbox.Mount(mux, inbox.New(db, "orders", nil))
	resilience.Mount(mux, resilience.NewEdges("orders", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("orders"))
	return mux
}

var service = contracttest.Service{
	Name:    "orders",
	OpenAPI: orderhttp.OpenAPI,
	Routes:  routes,
	Surface: []string{
		"GET /api/v1/admin/dlq",
		"POST /api/v1/admin/dlq/{id}/replay",
		"GET /api/v1/admin/resilience",
		"GET /api/v1/admin/faults",
		"PUT /api/v1/admin/faults",
		"POST /api/v1/orders",
		"GET /api/v1/orders",
		"GET /api/v1/orders/{id}",
		"GET /api/v1/orders/{id}/saga",
		"GET /api/v1/users/{id}/orders",
		"GET /api/v1/admin/orders",
		"GET /api/v2/orders",
		"GET /api/v2/orders/{id}",
		"GET /api/v2/admin/orders",
		"POST /api/v1/admin/read-model/rebuild",
		"GET /api/v1/admin/settings",
		"PUT /api/v1/admin/settings",
		"POST /internal/v1/import/orders",
		"GET /openapi.yaml",
		"GET /healthz",
		"GET /ready",
		"GET /metrics",
	},
	Authorized: contracttest.Get{Role: auth.RoleCustomer, Path: "/api/v1/orders"},
	Closed:     []string{"Checkout", "SettingsUpdate", "FaultSettings", "OrderImport", "LegacyOrder", "LegacyItem"},
}

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes
// in step: every route is documented and nothing else is.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) { service.CheckDocumented(t) }

// TestServedAsTheShopServesIt checks, against the document, what the shop's
// middleware adds: the ops endpoints, and 401 for a bad token on every route.
func TestServedAsTheShopServesIt(t *testing.T) { service.CheckHosted(t) }

// TestDeadLetterRoutes checks the dead-letter admin routes as served.
func TestDeadLetterRoutes(t *testing.T) { service.CheckDeadLetters(t) }
