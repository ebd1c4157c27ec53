// Package userhttp is the users service's HTTP API.
package userhttp

import (
	"context"
	_ "embed"
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/users"
)

// OpenAPI is the service's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// KeyRing is the signing key ring whose public keys the service publishes
// and which an admin rotates; *auth.Signer is one.
type KeyRing interface {
	JWKS() auth.JWKS
	Rotate(ctx context.Context) (auth.KeyRingState, error)
}

// Routes maps the users service's whole HTTP surface.
func Routes(svc *users.Service, keys KeyRing) *http.ServeMux {
	h := &handlers{svc: svc, keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/users", h.register)
	mux.HandleFunc("POST /api/v1/auth/login", h.login)
	mux.HandleFunc("GET /api/v1/users/me", h.me)
	mux.HandleFunc("GET /api/v1/users/{id}", h.getV1)
	mux.HandleFunc("GET /api/v2/users/{id}", h.getV2)
	mux.HandleFunc("GET /api/users/{id}", h.getNegotiated)
	mux.HandleFunc("GET /.well-known/jwks.json", h.jwks)
	mux.HandleFunc("POST /api/v1/admin/keys/rotate", h.rotate)
	mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
