package host_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/web"
)

func TestInternalPath(t *testing.T) {
	tests := map[string]bool{
		"/internal/v1/charges":      true,
		"/internal":                 true,
		"/v1/services/orders":       true,
		"/v1/instances/x":           true,
		"/./internal/v1/cards":      true,
		"/api/../internal/v1/cards": true,
		"//internal/v1/cards":       true,
		"/api/v1/orders":            false,
		"/api/v1/internal/x":        false,
		"/v10/x":                    false,
		"/internalize":              false,
		"/healthz":                  false,
		"/.well-known/jwks.json":    false,
		"/api/v1/admin/keys/rotate": false,
		"/api/v1/registry/services": false,
		"/openapi.yaml":             false,
		"":                          false,
	}
	for p, want := range tests {
		if got := host.InternalPath(p); got != want {
			t.Errorf("InternalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestServiceOnlyGuardsInternalPaths serves a public and an internal route
// behind host's middleware with both kinds of token checked, and sends each
// kind of credential to each.
func TestServiceOnlyGuardsInternalPaths(t *testing.T) {
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	_, serviceKey, _ := ed25519.GenerateKey(rand.Reader)
	users := auth.NewSigner(userKey, time.Hour)
	svc := &host.Service{
		Name:     "payments",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   http.NewServeMux(),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("payments"),
		Verifier: auth.NewVerifier(users),
		Services: auth.NewServiceVerifier(serviceKey.Public().(ed25519.PublicKey), []string{"orders", "payments"}),
	}
	whoami := func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.PrincipalFrom(r.Context())
		web.JSON(w, http.StatusOK, map[string]string{"subject": p.Subject, "role": p.Role, "authorization": r.Header.Get("Authorization")})
	}
	svc.Routes.HandleFunc("POST /internal/v1/charges", whoami)
	svc.Routes.HandleFunc("GET /api/v1/payments", whoami)
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	userToken, _, _ := users.Sign("user-1", auth.RoleAdmin)
	serviceToken, _ := auth.NewServiceSigner("orders", serviceKey).Token()
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	strangerToken, _ := auth.NewServiceSigner("orders", strangerKey).Token()
	unknownService, _ := auth.NewServiceSigner("evil", serviceKey).Token()

	tests := []struct {
		name, method, path, authorization string
		want                              int
		wantSubject                       string
	}{
		{"internal, no credentials", "POST", "/internal/v1/charges", "", http.StatusUnauthorized, ""},
		{"internal, a user's token (an admin's)", "POST", "/internal/v1/charges", "Bearer " + userToken, http.StatusUnauthorized, ""},
		{"internal, a service token from another key", "POST", "/internal/v1/charges", "Bearer " + strangerToken, http.StatusUnauthorized, ""},
		{"internal, a service the shop does not have", "POST", "/internal/v1/charges", "Bearer " + unknownService, http.StatusUnauthorized, ""},
		{"internal, not a bearer credential", "POST", "/internal/v1/charges", "Basic b3JkZXJzOng=", http.StatusUnauthorized, ""},
		{"internal, garbage", "POST", "/internal/v1/charges", "Bearer x.y.z", http.StatusUnauthorized, ""},
		{"internal, a service token", "POST", "/internal/v1/charges", "Bearer " + serviceToken, http.StatusOK, "orders"},
		{"public, a service token", "GET", "/api/v1/payments", "Bearer " + serviceToken, http.StatusUnauthorized, ""},
		{"public, a user's token", "GET", "/api/v1/payments", "Bearer " + userToken, http.StatusOK, "user-1"},
		{"public, anonymous", "GET", "/api/v1/payments", "", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("a refusal of Content-Type %q, want a problem", ct)
				}
				return
			}
			var seen map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatal(err)
			}
			if seen["subject"] != tt.wantSubject {
				t.Errorf("the handler saw principal %q, want %q", seen["subject"], tt.wantSubject)
			}
			if tt.path == "/internal/v1/charges" && (seen["role"] != auth.RoleService || seen["authorization"] != "") {
				t.Errorf("the internal handler saw role %q and Authorization %q, want the service role and no header", seen["role"], seen["authorization"])
			}
		})
	}
}

func TestServiceOnlyWithoutAVerifierGuardsNothing(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /internal/v1/charges", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	rec := httptest.NewRecorder()
	host.ServiceOnly(nil)(mux).ServeHTTP(rec, httptest.NewRequest("POST", "/internal/v1/charges", nil))
	if rec.Code != http.StatusNoContent {
		t.Errorf("status = %d, want 204: a service's own route tests run without the guard", rec.Code)
	}
}
