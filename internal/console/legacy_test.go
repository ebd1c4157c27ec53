package console

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// addresses resolves service names to fixed addresses, as the registry
// would; a name it does not know has no instance up.
type addresses map[string]string

func (a addresses) Resolve(_ context.Context, service string) (string, error) {
	if addr, ok := a[service]; ok {
		return addr, nil
	}
	return "", fail.New(fail.Unavailable, "no instance of %s is up", service)
}

func (addresses) Forget(string) {}

// consoleWith serves a console whose Ask reaches services through a real
// upstream client, as the gateway wires it, with real token verification in
// front. It returns the console's address and tokens for an admin and a
// customer.
func consoleWith(t *testing.T, services addresses) (base, admin, customer string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	views := upstream.New("gateway", services)
	mux := http.NewServeMux()
	New(Config{
		Collector: NewCollector(),
		Ask: func(ctx context.Context, service, path, token string, out any) error {
			return views.Do(ctx, upstream.Call{Service: service, Method: http.MethodGet, Path: path, Token: token, Out: out})
		},
		Topology: NewTopology(Nodes),
	}).Mount(mux)
	srv := httptest.NewServer(auth.Authenticate(auth.NewVerifier(signer))(mux))
	t.Cleanup(srv.Close)
	sign := func(subject, role string) string {
		tok, _, err := signer.Sign(subject, role)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	return srv.URL, sign("admin-1", auth.RoleAdmin), sign("ada", auth.RoleCustomer)
}

// legacyFake stands in for the monolith's admin API: it answers its figures
// to the admin's token only, and counts the requests it got.
func legacyFake(t *testing.T, adminToken string, calls *atomic.Int32) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodGet || r.URL.Path != "/admin/stats" {
			web.WriteProblem(w, r, http.StatusNotFound, "no such route")
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			web.WriteProblem(w, r, http.StatusForbidden, "admin only")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// Something the console does not show: it must not pass it on.
		_, _ = io.WriteString(w, `{"customers":12,"orders":30,"handovers":[{"domain":"profiles","service":"users","handed_at":"2026-11-26T07:00:00Z"}],"dsn":"file:legacy.db"}`)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func get(t *testing.T, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, body
}

func TestTheConsoleAsksTheMonolithForItsFiguresAsTheAdmin(t *testing.T) {
	services := addresses{}
	base, admin, _ := consoleWith(t, services)
	var calls atomic.Int32
	services[legacyService] = legacyFake(t, admin, &calls)

	status, h, body := get(t, base+"/api/v1/console/legacy", admin)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/console/legacy = %d %s %s, want 200 JSON", status, h.Get("Content-Type"), body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	want := map[string]any{
		"customers": float64(12),
		"orders":    float64(30),
		"handovers": []any{map[string]any{"domain": "profiles", "service": "users", "handed_at": "2026-11-26T07:00:00Z"}},
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("figures = %s, want %s (the monolith's figures, and nothing else it said)", g, w)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the monolith was asked %d times, want 1", n)
	}
}

func TestTheMonolithsFiguresAreForAdminsOnly(t *testing.T) {
	services := addresses{}
	base, admin, customer := consoleWith(t, services)
	var calls atomic.Int32
	services[legacyService] = legacyFake(t, admin, &calls)

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a customer", customer, http.StatusForbidden},
		{"a token that is no token", "not-a-token", http.StatusUnauthorized},
	} {
		status, h, body := get(t, base+"/api/v1/console/legacy", tc.token)
		if status != tc.want || h.Get("Content-Type") != web.ProblemContentType {
			t.Errorf("%s: GET /api/v1/console/legacy = %d %s %s, want %d problem details", tc.name, status, h.Get("Content-Type"), body, tc.want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the monolith was asked %d times for callers who are not admins, want 0", n)
	}
}

func TestTheMonolithUnreachableIsA503(t *testing.T) {
	var calls atomic.Int32
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		web.WriteProblem(w, r, http.StatusInternalServerError, "database is locked at /var/lib/legacy.db")
	}))
	t.Cleanup(refusing.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()

	for _, tc := range []struct {
		name     string
		services addresses
	}{
		{"not registered", addresses{}},
		{"registered, but its port closed", addresses{legacyService: closedAddr}},
		{"answering an error", addresses{legacyService: strings.TrimPrefix(refusing.URL, "http://")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, admin, _ := consoleWith(t, tc.services)
			status, h, body := get(t, base+"/api/v1/console/legacy", admin)
			if status != http.StatusServiceUnavailable || h.Get("Content-Type") != web.ProblemContentType {
				t.Fatalf("GET /api/v1/console/legacy = %d %s %s, want 503 problem details", status, h.Get("Content-Type"), body)
			}
			var p web.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			if p.Detail != "the legacy monolith cannot be reached for its figures" {
				t.Errorf("detail = %q, want the console's own words, none of the monolith's", p.Detail)
			}
		})
	}
	if calls.Load() == 0 {
		t.Error("the monolith that answers errors was never asked")
	}
}

func TestAConsoleThatCannotAskServicesAnswers503ForTheMonolith(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	mux := http.NewServeMux()
	New(Config{Collector: NewCollector(), Topology: NewTopology(Nodes)}).Mount(mux)
	srv := httptest.NewServer(auth.Authenticate(auth.NewVerifier(signer))(mux))
	t.Cleanup(srv.Close)
	admin, _, err := signer.Sign("admin-1", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := get(t, srv.URL+"/api/v1/console/legacy", admin); status != http.StatusServiceUnavailable {
		t.Errorf("GET /api/v1/console/legacy with no Ask = %d %s, want 503", status, body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
