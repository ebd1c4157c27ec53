// Package inventoryhttp is the inventory service's HTTP API: public stock
// levels, admin restocking and listings, and the internal reservation calls
// of the checkout saga.
package inventoryhttp

import (
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/inventory"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Routes maps the inventory service's whole HTTP surface. Paths under
// /internal/v1/ are for the orders service's saga orchestrator only: the
// gateway never routes them, and each is idempotent by order id.
func Routes(svc *inventory.Service) *http.ServeMux {
	h := &handlers{svc: svc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/inventory", h.listStock)
	// The literal path is more specific than {product_id}, so ServeMux
	// sends it here and never to getStock; a test holds it to that.
	mux.HandleFunc("GET /api/v1/inventory/reservations", h.listReservations)
	mux.HandleFunc("GET /api/v1/inventory/{product_id}", h.getStock)
	mux.HandleFunc("PUT /api/v1/inventory/{product_id}", h.setStock)
	mux.HandleFunc("POST /internal/v1/reservations", h.reserve)
	mux.HandleFunc("POST /internal/v1/reservations/{order_id}/commit", h.commit)
	mux.HandleFunc("POST /internal/v1/reservations/{order_id}/release", h.release)
	mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
