// Package legacyhttp is the legacy monolith's HTTP API: the old shop's
// unversioned public routes, its figures for the console, and the internal
// routes through which the gateway's strangler-fig facade copies its data
// out and hands its domains over.
package legacyhttp

import (
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/legacy"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Routes maps the legacy service's whole HTTP surface.
func Routes(svc *legacy.Service) *http.ServeMux {
	h := &handlers{svc: svc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /profile", h.profile)
	mux.HandleFunc("PUT /profile", h.rename)
	mux.HandleFunc("GET /orders", h.listOrders)
	mux.HandleFunc("GET /orders/{order_no}", h.getOrder)
	mux.HandleFunc("POST /orders", h.placeOrder)
	mux.HandleFunc("GET /admin/stats", h.stats)
	mux.HandleFunc("GET /internal/v1/export/profiles", h.exportProfiles)
	mux.HandleFunc("GET /internal/v1/export/orders", h.exportOrders)
	mux.HandleFunc("GET /internal/v1/handovers", h.handovers)
	mux.HandleFunc("POST /internal/v1/handovers", h.handOver)
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
	return mux
}
