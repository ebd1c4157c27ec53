// Package paymenthttp is the payments service's HTTP API: the public read of
// payments, the internal exchange of a card for a token, and the internal
// charge and refund calls of the checkout saga.
package paymenthttp

import (
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/payments"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Routes maps the payments service's whole HTTP surface. Paths under
// /internal/v1/ are for the orders service's saga, never for the gateway.
func Routes(svc *payments.Service) *http.ServeMux {
	h := &handlers{svc: svc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/payments", h.list)
	mux.HandleFunc("POST /internal/v1/cards", h.tokenize)
	mux.HandleFunc("POST /internal/v1/charges", h.charge)
	mux.HandleFunc("POST /internal/v1/charges/{order_id}/refund", h.refund)
	mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
