package userhttp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
	"github.com/microshop/microshop/internal/users/userhttp"
)

// contractRoutes is the users service's mux as the shop builds it, over a
// real SQLite store: its routes, the dead-letter routes of its inbox, and
// the resilience and fault routes every service has.
func contractRoutes(t *testing.T) *http.ServeMux {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "users", userdb.Migrations)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	mux := userhttp.Routes(users.NewService(userdb.New(db), signer), signer)
	inbox.Mount(mux, inbox.New(db, "users", nil))
	resilience.Mount(mux, resilience.NewEdges("users", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("users"))
	return mux
}

var service = contracttest.Service{
	Name:    "users",
	OpenAPI: userhttp.OpenAPI,
	Routes:  contractRoutes,
	Surface: []string{
		"GET /api/v1/admin/dlq",
		"POST /api/v1/admin/dlq/{id}/replay",
		"GET /api/v1/admin/resilience",
		"GET /api/v1/admin/faults",
		"PUT /api/v1/admin/faults",
		"POST /api/v1/users",
		"POST /api/v1/auth/login",
		"GET /api/v1/users/me",
		"GET /api/v1/users/{id}",
		"PATCH /api/v1/users/{id}",
		"GET /api/v2/users/{id}",
		"GET /api/users/{id}",
		"GET /.well-known/jwks.json",
		"POST /api/v1/admin/keys/rotate",
		"POST /internal/v1/import/profiles",
		"GET /openapi.yaml",
		"GET /healthz",
		"GET /ready",
		"GET /metrics",
	},
	Public:     []string{"/.well-known/jwks.json"},
	Authorized: contracttest.Get{Role: auth.RoleCustomer, Path: "/.well-known/jwks.json"},
	Closed:     []string{"Registration", "Credentials", "Rename", "ProfileImport", "LegacyProfile", "FaultSettings"},
}

// TestOpenAPIDescribesExactlyTheRoutes keeps the document and the routes
// in step: every route is documented and nothing else is, the internal
// import is tagged internal, and every error is a problem.
func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) { service.CheckDocumented(t) }

// TestServedAsTheShopServesIt checks, against the document, what the shop's
// middleware adds: the ops endpoints, and 401 for a bad token on every route.
func TestServedAsTheShopServesIt(t *testing.T) { service.CheckHosted(t) }

// TestDeadLetterRoutes checks the dead-letter admin routes as served.
func TestDeadLetterRoutes(t *testing.T) { service.CheckDeadLetters(t) }
