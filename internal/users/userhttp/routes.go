// Package userhttp is the users service's HTTP API: sign-up, login,
// accounts and their names, the public keys that verify tokens, and the
// internal import of the legacy monolith's profiles.
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

// Routes maps the users service's whole HTTP surface. Paths under
// /internal/v1/ are for the gateway's strangler-fig facade only, never
// routed to clients.
func Routes(svc *users.Service, keys KeyRing) *http.ServeMux {
	h := &handlers{svc: svc, keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/users", h.register)
	mux.HandleFunc("POST /api/v1/auth/login", h.login)
	mux.HandleFunc("GET /api/v1/users/me", h.me)
	mux.HandleFunc("GET /api/v1/users/{id}", h.getV1)
	mux.HandleFunc("PATCH /api/v1/users/{id}", h.rename)
	mux.HandleFunc("GET /api/v2/users/{id}", h.getV2)
	mux.HandleFunc("GET /api/users/{id}", h.getNegotiated)
	mux.HandleFunc("GET /.well-known/jwks.json", h.jwks)
	mux.HandleFunc("POST /api/v1/admin/keys/rotate", h.rotate)
	mux.HandleFunc("POST /internal/v1/import/profiles", h.importProfiles)
	mux.HandleFunc("GET /openapi.yaml", serveOpenAPI)
	return mux
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
