// Package shippinghttp is the shipping service's HTTP API: the public read of
// shipments, and the internal schedule and cancel calls of the checkout saga.
package shippinghttp

import (
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/shipping"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Routes maps the shipping service's whole HTTP surface. Paths under
// /internal/v1/ are for the orders service's saga, never for the gateway.
func Routes(svc *shipping.Service) *http.ServeMux {
	h := &handlers{svc: svc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/shipments", h.list)
	mux.HandleFunc("POST /internal/v1/shipments", h.schedule)
	mux.HandleFunc("POST /internal/v1/shipments/{order_id}/cancel", h.cancel)
	mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
