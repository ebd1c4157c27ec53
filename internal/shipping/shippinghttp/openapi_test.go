package shippinghttp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/web"
)

// surface is the shipping service's whole surface as the shop serves it:
// routes.go, the dead-letter admin routes inbox.Mount adds, and the ops
// endpoints host adds to every service.
var surface = []string{
	"GET /api/v1/admin/dlq",
	"POST /api/v1/admin/dlq/{id}/replay",
	"GET /api/v1/shipments",
	"POST /internal/v1/shipments",
	"POST /internal/v1/shipments/{order_id}/cancel",
	"GET /openapi.yaml",
	"GET /healthz",
	"GET /ready",
	"GET /metrics",
}

// published is the document the package embeds, loaded and validated once.
var published = sync.OnceValues(func() (*contract.Doc, error) { return contract.Load(shippinghttp.OpenAPI) })

func loadContract(t *testing.T) *contract.Doc {
	t.Helper()
	doc, err := published()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// examplePath fills a route's path parameters.
var examplePath = strings.NewReplacer("{order_id}", "x", "{id}", "x")

// hosted serves mux as the shop does: behind host's middleware, which
// verifies tokens with tokens, and with its ops endpoints, which mux holds
// once Handler is called.
func hosted(mux *http.ServeMux, tokens *auth.Signer) *host.Service {
	return &host.Service{
		Name:     "shipping",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   mux,
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("shipping"),
		Verifier: auth.NewVerifier(tokens),
	}
}

func newSigner(t *testing.T) *auth.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(key, time.Hour)
}

// TestOpenAPIDescribesTheRoutes checks that the document is valid OpenAPI
// 3.0.3, that it describes exactly the routes, each as its own pattern,
// that internal routes are tagged so, and that every error is a problem.
func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	loadContract(t) // the document is valid
	doc, err := openapi3.NewLoader().LoadFromData(shippinghttp.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}

	mux := newRoutes(t)
	hosted(mux, newSigner(t)).Handler()
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			want := method + " " + path
			documented = append(documented, want)
			_, got := mux.Handler(httptest.NewRequest(method, examplePath.Replace(path), nil))
			if got != want {
				t.Errorf("documented %s is served by route %q, want %q", want, got, want)
			}
			internal := strings.HasPrefix(path, "/internal/")
			if tagged := len(op.Tags) == 1 && op.Tags[0] == "internal"; tagged != internal {
				t.Errorf("%s tags = %v; internal routes, and only they, are tagged internal", want, op.Tags)
			}
			for code, ref := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				if code == "503" && (path == "/healthz" || path == "/ready") {
					continue // health and readiness answer with their own body
				}
				mt := ref.Value.Content.Get("application/problem+json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
					t.Errorf("%s %s is not an application/problem+json Problem", want, code)
				}
			}
		}
	}
	// A route added to routes.go must be documented, and listed here.
	want := slices.Clone(surface)
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("documented operations:\n got %v\nwant %v", documented, want)
	}
	problem := doc.Components.Schemas["Problem"]
	for _, field := range []string{"type", "title", "status", "detail", "instance", "request_id"} {
		if problem == nil || problem.Value.Properties[field] == nil {
			t.Errorf("Problem schema lacks %q", field)
		}
	}
}

// TestServedAsTheShopServesIt checks, against the document, what only the
// shop's middleware adds: health, readiness and metrics, and the 401 that a
// bad Authorization header gets on every route, internal ones included.
func TestServedAsTheShopServesIt(t *testing.T) {
	tokens := newSigner(t)
	h := hosted(newRoutes(t), tokens)
	h.Health.SetReady(true)
	handler := h.Handler()
	get := func(path, authorization string, want int) response {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		res := send(t, handler, nil, r, "")
		if res.status != want {
			t.Errorf("GET %s: got %d, want %d; body %s", path, res.status, want, res.raw)
		}
		return res
	}

	for _, path := range []string{"/healthz", "/ready", "/metrics", "/openapi.yaml"} {
		get(path, "", http.StatusOK)
	}
	customer, _, err := tokens.Sign("user-1", auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	get("/api/v1/shipments", "Bearer "+customer, http.StatusOK)
	for _, route := range surface {
		method, path, _ := strings.Cut(route, " ")
		for _, bad := range []string{"Bearer not-a-token", "Basic YTpi"} {
			r := httptest.NewRequest(method, examplePath.Replace(path), nil)
			r.Header.Set("Authorization", bad)
			wantProblem(t, send(t, handler, nil, r, ""), http.StatusUnauthorized, "")
		}
	}

	h.Health.Add("db", func(context.Context) error { return errors.New("disk on fire") })
	get("/healthz", "", http.StatusServiceUnavailable)
	h.Health.SetReady(false)
	get("/ready", "", http.StatusServiceUnavailable)
}

// TestDeadLetterRoutes checks the dead-letter admin routes the shop mounts
// on the shipping mux, through host's middleware with real tokens and
// against the document: an admin lists an empty page, a customer is
// refused, and replaying a letter that does not exist is a 404.
func TestDeadLetterRoutes(t *testing.T) {
	tokens := newSigner(t)
	handler := hosted(newRoutes(t), tokens).Handler()
	bearer := func(subject, role string) string {
		t.Helper()
		token, _, err := tokens.Sign(subject, role)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + token
	}
	asAdmin, asCustomer := bearer("admin-1", auth.RoleAdmin), bearer("user-1", auth.RoleCustomer)
	call := func(method, path, authorization string) response {
		t.Helper()
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Authorization", authorization)
		return send(t, handler, nil, r, "")
	}

	list := call("GET", "/api/v1/admin/dlq", asAdmin)
	if list.status != http.StatusOK || strings.TrimSpace(list.raw) != `{"items":[],"next":""}` {
		t.Errorf("GET /api/v1/admin/dlq as admin = %d %s, want 200 {\"items\":[],\"next\":\"\"}", list.status, list.raw)
	}
	wantProblem(t, call("GET", "/api/v1/admin/dlq", asCustomer), http.StatusForbidden, "")
	wantProblem(t, call("POST", "/api/v1/admin/dlq/no-such-letter/replay", asAdmin), http.StatusNotFound, "")
}
