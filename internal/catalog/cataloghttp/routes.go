// Package cataloghttp is the catalog service's HTTP API.
package cataloghttp

import (
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/catalog"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Routes maps the catalog service's whole HTTP surface. Reading is open to
// anyone; adding and repricing products needs an admin.
func Routes(svc *catalog.Service) *http.ServeMux {
	h := &handlers{svc: svc}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/products", h.list)
	mux.HandleFunc("GET /api/v1/products/{id}", h.getV1)
	mux.HandleFunc("GET /api/v2/products/{id}", h.getV2)
	mux.HandleFunc("POST /api/v1/products", h.create)
	mux.HandleFunc("PATCH /api/v1/products/{id}", h.changePrice)
	mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
