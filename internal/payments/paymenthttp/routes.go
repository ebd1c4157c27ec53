// Package paymenthttp is the payments service's HTTP API: the public read of
// payments, the internal exchange of a card for a token, the internal
// charge and refund calls of the checkout saga, and the admin switch of the
// simulated provider's mode.
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

// MountProvider adds to mux the admin routes that read and switch the
// simulated card provider's mode, to inject faults into charges. The shop
// mounts them on Routes' mux when payments charges through simprovider; a
// real provider has no such switch.
func MountProvider(mux *http.ServeMux, p ProviderModes) {
	h := &providerHandlers{p: p}
	mux.HandleFunc("GET /api/v1/admin/provider", h.get)
	mux.HandleFunc("PUT /api/v1/admin/provider", h.put)
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
