// Package orderhttp is the orders service's HTTP API: checkout, the
// listings (v1 of the orders placed here, v2 of every order), the admin
// settings and read-model rebuild, and the internal import of the legacy
// monolith's orders.
package orderhttp

import (
	"context"
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/orders"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Deps are what the routes need besides the service.
type Deps struct {
	// History reads an order's saga history.
	History func(ctx context.Context, orderID string) ([]orders.StepRecord, error)
	// Rebuild drops the read model and rebuilds it from the event log,
	// returning how many events it applied.
	Rebuild func(ctx context.Context) (int, error)
}

// Routes maps the orders service's whole HTTP surface. Paths under
// /internal/v1/ are for the gateway's strangler-fig facade only, never
// routed to clients.
func Routes(svc *orders.Service, deps Deps) *http.ServeMux {
	h := &handlers{svc: svc, deps: deps}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/orders", h.place)
	mux.HandleFunc("GET /api/v1/orders", h.listMine)
	mux.HandleFunc("GET /api/v1/orders/{id}", h.get)
	mux.HandleFunc("GET /api/v1/orders/{id}/saga", h.saga)
	mux.HandleFunc("GET /api/v1/users/{id}/orders", h.listUser)
	mux.HandleFunc("GET /api/v1/admin/orders", h.listAll)
	// v2 shows every order, those imported from the legacy monolith too,
	// with its origin; v1 never shows an imported one.
	mux.HandleFunc("GET /api/v2/orders", h.listMineV2)
	mux.HandleFunc("GET /api/v2/orders/{id}", h.getV2)
	mux.HandleFunc("GET /api/v2/admin/orders", h.listAllV2)
	mux.HandleFunc("GET /api/v1/admin/settings", h.settings)
	mux.HandleFunc("PUT /api/v1/admin/settings", h.updateSettings)
	mux.HandleFunc("POST /api/v1/admin/read-model/rebuild", h.rebuild)
	mux.HandleFunc("POST /internal/v1/import/orders", h.importOrders)
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
	return mux
}
