package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// echo is what a fake service answers: who it is and what reached it.
type echo struct {
	Service string              `json:"service"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Header  map[string][]string `json:"header"`
}

// resolver maps service names to the fake services and records Forget.
type resolver struct {
	mu        sync.Mutex
	addrs     map[string]string
	forgotten []string
}

func (r *resolver) Resolve(_ context.Context, service string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr, ok := r.addrs[service]
	if !ok {
		return "", fail.New(fail.Unavailable, "no healthy instance of %s", service)
	}
	return addr, nil
}

func (r *resolver) Forget(service string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgotten = append(r.forgotten, service)
}

// shop is a gateway in front of one echoing fake per service.
type shop struct {
	url      string
	resolver *resolver
	signer   *auth.Signer
	client   *http.Client // follows no redirects, so each answer is the gateway's own

	mu       sync.Mutex
	reached  []echo   // every request any service received
	internal []string // every request a service's internal endpoints received
	audited  []string
}

func newShop(t *testing.T) *shop {
	t.Helper()
	s := &shop{resolver: &resolver{addrs: map[string]string{}}}
	fake := func(name string) *httptest.Server {
		// Each fake has internal endpoints on a ServeMux, as the real services do.
		mux := http.NewServeMux()
		mux.HandleFunc("/internal/", func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.internal = append(s.internal, name+" "+r.Method+" "+r.URL.Path)
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		})
		// And dead letters: one each, named after the service.
		mux.HandleFunc("GET /api/v1/admin/dlq", func(w http.ResponseWriter, r *http.Request) {
			web.JSON(w, http.StatusOK, map[string]any{"items": []map[string]any{
				{"id": name + "-dl", "created_at": "2026-01-01T00:00:0" + strconv.Itoa(len(name)%10) + "Z", "auth": r.Header.Get("Authorization")},
			}})
		})
		mux.HandleFunc("POST /api/v1/admin/dlq/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
			web.JSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "replayed_by": name})
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			e := echo{Service: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header}
			s.mu.Lock()
			s.reached = append(s.reached, e)
			s.mu.Unlock()
			web.JSON(w, http.StatusOK, e)
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv
	}
	services := []string{"users", "catalog", "inventory", "orders", "payments", "shipping", "legacy"}
	for _, name := range services {
		s.resolver.addrs[name] = strings.TrimPrefix(fake(name).URL, "http://")
	}
	registry := fake("registry")

	proxy, err := gateway.NewProxy(s.resolver, registry.URL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.signer = auth.NewSigner(key, time.Hour)
	auditor := func(_ context.Context, token string) (audit.Report, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.audited = append(s.audited, token)
		return audit.Report{OK: true, Checks: []audit.Check{{Name: "fake", OK: true}}}, nil
	}
	gw := &host.Service{
		Name:     "gateway",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   gateway.Routes(proxy, auditor, upstream.New("gateway", s.resolver)),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("gateway"),
		Verifier: auth.NewVerifier(s.signer),
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	s.url = srv.URL
	s.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return s
}

func (s *shop) token(t *testing.T, role string) string {
	t.Helper()
	tok, _, err := s.signer.Sign("user-1", role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *shop) do(t *testing.T, method, path string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func (s *shop) echoed(t *testing.T, method, path string, header map[string]string) echo {
	t.Helper()
	resp, b := s.do(t, method, path, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %d %s, want 200 from a service", method, path, resp.StatusCode, b)
	}
	var e echo
	if err := json.Unmarshal(b, &e); err != nil || e.Service == "" {
		t.Fatalf("%s %s answered %s, not a service's echo", method, path, b)
	}
	return e
}

func wantProblem(t *testing.T, resp *http.Response, body []byte, status int) web.Problem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d %s, want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != web.ProblemContentType {
		t.Errorf("Content-Type = %q, want %q", ct, web.ProblemContentType)
	}
	var p web.Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Status != status {
		t.Errorf("problem %s: %v", body, err)
	}
	return p
}

// concrete turns a ServeMux pattern into a path it matches.
func concrete(pattern string) string {
	p := strings.ReplaceAll(pattern, "{id}", "u1")
	if strings.HasSuffix(p, "/") {
		p += "x"
	}
	return p
}

func TestEveryRouteReachesItsService(t *testing.T) {
	s := newShop(t)
	for _, rt := range gateway.Table {
		for _, path := range []string{concrete(rt.Pattern), concrete(rt.Pattern) + "?limit=5&after=x"} {
			t.Run(rt.Pattern+" "+path, func(t *testing.T) {
				e := s.echoed(t, "GET", path, nil)
				if e.Service != rt.Service {
					t.Errorf("GET %s reached %s, want %s", path, e.Service, rt.Service)
				}
				wantPath, wantQuery, _ := strings.Cut(path, "?")
				if e.Path != wantPath || e.Query != wantQuery {
					t.Errorf("service saw %s?%s, want %s?%s unchanged", e.Path, e.Query, wantPath, wantQuery)
				}
			})
		}
	}
}

// TestConcurrentAnswersComeThroughWhole sends requests of many sizes at
// once, each echoed back in a body of up to about 100 KiB (several of the
// proxy's pooled 32 KiB copy buffers): every answer is its own request's,
// byte for byte, so no buffer is lent to two responses at a time.
func TestConcurrentAnswersComeThroughWhole(t *testing.T) {
	s := newShop(t)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				size := (w*20 + i) * 331 % (100 << 10)
				query := "w=" + strconv.Itoa(w) + "&i=" + strconv.Itoa(i) + "&pad=" + strings.Repeat(string(rune('a'+(w+i)%26)), size)
				// Not s.echoed: it stops the test, which only the test's own
				// goroutine may do.
				resp, err := s.client.Get(s.url + "/api/v1/products?" + query)
				if err != nil {
					t.Errorf("worker %d, request %d: %v", w, i, err)
					return
				}
				var e echo
				err = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || e.Query != query {
					t.Errorf("worker %d, request %d: status %d, %v; the answer echoed %d bytes of query, not its own %d",
						w, i, resp.StatusCode, err, len(e.Query), len(query))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestTheRouteTableSendsPathsToTheirOwners(t *testing.T) {
	s := newShop(t)
	tests := []struct{ method, path, service string }{
		{"POST", "/api/v1/users", "users"},
		{"POST", "/api/v1/auth/login", "users"},
		{"GET", "/api/v1/users/me", "users"},
		{"GET", "/api/v1/users/u1", "users"},
		{"GET", "/api/v1/users/u1/orders", "orders"},
		{"GET", "/api/v2/users/u1", "users"},
		{"GET", "/api/users/u1", "users"},
		{"GET", "/.well-known/jwks.json", "users"},
		{"GET", "/api/v1/products", "catalog"},
		{"POST", "/api/v1/products", "catalog"},
		{"GET", "/api/v2/products/p1", "catalog"},
		{"PUT", "/api/v1/inventory/p1", "inventory"},
		{"GET", "/api/v1/inventory/reservations", "inventory"},
		{"POST", "/api/v1/orders", "orders"},
		{"GET", "/api/v1/orders/o1", "orders"},
		{"GET", "/api/v1/admin/orders", "orders"},
		{"PUT", "/api/v1/admin/settings", "orders"},
		{"GET", "/api/v1/payments", "payments"},
		{"GET", "/api/v1/shipments", "shipping"},
		{"GET", "/api/v1/registry/services", "registry"},
	}
	for _, tc := range tests {
		e := s.echoed(t, tc.method, tc.path, nil)
		if e.Service != tc.service || e.Method != tc.method {
			t.Errorf("%s %s reached %s %s, want %s %s", tc.method, tc.path, e.Service, e.Method, tc.service, tc.method)
		}
	}
}

func TestIdentityHeadersNeverReachAService(t *testing.T) {
	s := newShop(t)
	forged := map[string]string{
		"X-User-Id":            "admin-1",
		"X-User-Role":          "admin",
		"X-Forwarded-User":     "admin",
		"X-Remote-User":        "admin",
		"X-Authenticated-User": "admin",
		"X-Service-Name":       "orders",
		"Authorization":        "Bearer " + s.token(t, auth.RoleCustomer),
	}
	for _, path := range []string{"/api/v1/orders", "/api/v1/users/me", "/api/v1/registry/services", "/api/docs/payments"} {
		e := s.echoed(t, "GET", path, forged)
		for name := range forged {
			if name == "Authorization" {
				continue
			}
			if v, ok := e.Header[name]; ok {
				t.Errorf("GET %s: %s reached %s with %s: %q", path, e.Service, e.Service, name, v)
			}
		}
		// The token itself travels on: each service checks it again.
		if got := e.Header["Authorization"]; len(got) != 1 || got[0] != forged["Authorization"] {
			t.Errorf("GET %s: Authorization = %q, want the caller's token passed on", path, got)
		}
	}
	resp, body := s.do(t, "GET", "/api/v1/orders", map[string]string{"Authorization": "Bearer forged"})
	wantProblem(t, resp, body, http.StatusUnauthorized)
}

func TestInternalPathsAreNotRouted(t *testing.T) {
	s := newShop(t)
	for _, path := range []string{"/internal/v1/payments", "/internal/v1/reservations/o1/commit", "/internal/", "/nothing/here"} {
		for _, method := range []string{"GET", "POST", "PUT"} {
			resp, body := s.do(t, method, path, nil)
			wantProblem(t, resp, body, http.StatusNotFound)
		}
	}

	// Dot segments, plain or escaped, must not lead a request from a public
	// route to a service's internal endpoints either.
	for _, path := range []string{
		"/api/v1/orders/../../internal/v1/payments",
		"/api/v1/orders/%2e%2e/%2e%2e/internal/v1/payments",
		"/api/v1/payments/..%2f..%2finternal/v1/payments",
		"/api/v1/users/%2E%2E/%2E%2E/%2E%2E/internal/v1/users",
	} {
		for _, method := range []string{"GET", "POST"} {
			resp, body := s.do(t, method, path, nil)
			if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 {
				resp, body = s.do(t, method, loc, nil)
			}
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s = %d %s, want 404: dot segments are refused at the gateway", method, path, resp.StatusCode, body)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.internal) != 0 {
		t.Errorf("internal endpoints reached through the gateway: %q", s.internal)
	}
}

func TestAnUnavailableServiceIs503Problem(t *testing.T) {
	s := newShop(t)
	delete(s.resolver.addrs, "inventory")
	resp, body := s.do(t, "GET", "/api/v1/inventory/p1", nil)
	p := wantProblem(t, resp, body, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "inventory") {
		t.Errorf("detail %q does not name the service", p.Detail)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	// An instance that the registry still lists but that is gone: 503, and
	// the gateway forgets it so the next request resolves afresh.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.resolver.addrs["shipping"] = ln.Addr().String()
	_ = ln.Close()
	resp, body = s.do(t, "GET", "/api/v1/shipments", nil)
	p = wantProblem(t, resp, body, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "shipping") || strings.Contains(p.Detail, "127.0.0.1") {
		t.Errorf("detail %q, want it to name shipping and hide the address", p.Detail)
	}
	if !slices.Contains(s.resolver.forgotten, "shipping") {
		t.Errorf("forgotten = %v, want shipping", s.resolver.forgotten)
	}
}

func TestDocsListsEveryDocument(t *testing.T) {
	s := newShop(t)
	resp, body := s.do(t, "GET", "/api/docs", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/docs = %d %s", resp.StatusCode, body)
	}
	var index struct {
		Documents []struct {
			Service string `json:"service"`
			URL     string `json:"url"`
		} `json:"documents"`
	}
	if err := json.Unmarshal(body, &index); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, d := range index.Documents {
		listed = append(listed, d.Service)
		if d.URL != "/api/docs/"+d.Service {
			t.Errorf("%s document at %q, want /api/docs/%s", d.Service, d.URL, d.Service)
		}
	}
	want := []string{"users", "catalog", "inventory", "orders", "payments", "shipping", "legacy", "registry", "gateway"}
	if !slices.Equal(listed, append(want, "events")) || !slices.Equal(gateway.Documented, want) {
		t.Errorf("documents = %v (Documented %v), want %v and events", listed, gateway.Documented, want)
	}
	for _, d := range index.Documents {
		resp, body := s.do(t, "GET", d.URL, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s", d.URL, resp.StatusCode, body)
			continue
		}
		if d.Service == "gateway" {
			if string(body) != string(gateway.OpenAPI) {
				t.Errorf("GET %s is not the gateway's own document", d.URL)
			}
			continue
		}
		if d.Service == "events" {
			if string(body) != string(event.AsyncAPI) || resp.Header.Get("Content-Type") != "application/yaml" {
				t.Errorf("GET %s is not the events' AsyncAPI document as YAML", d.URL)
			}
			continue
		}
		var e echo
		if err := json.Unmarshal(body, &e); err != nil || e.Service != d.Service || e.Path != "/openapi.yaml" {
			t.Errorf("GET %s reached %+v, want %s's /openapi.yaml", d.URL, e, d.Service)
		}
	}
	resp, body = s.do(t, "GET", "/api/docs/console", nil)
	wantProblem(t, resp, body, http.StatusNotFound)
}

func TestAuditIsForAdminsOnly(t *testing.T) {
	s := newShop(t)
	resp, body := s.do(t, "GET", "/api/v1/admin/audit", nil)
	wantProblem(t, resp, body, http.StatusUnauthorized)
	resp, body = s.do(t, "GET", "/api/v1/admin/audit", map[string]string{"Authorization": "Bearer " + s.token(t, auth.RoleCustomer)})
	wantProblem(t, resp, body, http.StatusForbidden)
	if len(s.audited) != 0 {
		t.Fatalf("the audit ran for a non-admin: %v", s.audited)
	}

	admin := s.token(t, auth.RoleAdmin)
	resp, body = s.do(t, "GET", "/api/v1/admin/audit", map[string]string{"Authorization": "Bearer " + admin})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin audit = %d %s", resp.StatusCode, body)
	}
	var rep audit.Report
	if err := json.Unmarshal(body, &rep); err != nil || !rep.OK || len(rep.Checks) != 1 {
		t.Errorf("report = %s (%v)", body, err)
	}
	if len(s.audited) != 1 || s.audited[0] != admin {
		t.Errorf("auditor got tokens %v, want the admin's own", s.audited)
	}
}

func TestDeadLettersAreGatheredFromEveryService(t *testing.T) {
	s := newShop(t)
	delete(s.resolver.addrs, "catalog") // one service is away: the rest still answer
	admin := s.token(t, auth.RoleAdmin)
	resp, body := s.do(t, "GET", "/api/v1/admin/dlq", map[string]string{"Authorization": "Bearer " + admin})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/admin/dlq = %d %s", resp.StatusCode, body)
	}
	var got struct {
		Items []struct {
			ID, Service, Auth string
		}
		Unreachable []string
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != len(gateway.Consumers)-1 || len(got.Unreachable) != 1 || got.Unreachable[0] != "catalog" {
		t.Fatalf("listing = %+v, want one letter from each service but catalog, catalog unreachable", got)
	}
	for _, l := range got.Items {
		if l.ID != l.Service+"-dl" || l.Auth != "Bearer "+admin {
			t.Errorf("letter %+v: not tagged with its service, or the admin's token was not passed on", l)
		}
	}
	resp, body = s.do(t, "POST", "/api/v1/admin/dlq/payments/payments-dl/replay", map[string]string{"Authorization": "Bearer " + admin})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"replayed_by":"payments"`) {
		t.Errorf("replay = %d %s, want it sent to payments", resp.StatusCode, body)
	}
	resp, body = s.do(t, "POST", "/api/v1/admin/dlq/nowhere/x/replay", map[string]string{"Authorization": "Bearer " + admin})
	wantProblem(t, resp, body, http.StatusNotFound)
	customer := s.token(t, auth.RoleCustomer)
	for _, c := range []struct{ method, path string }{{"GET", "/api/v1/admin/dlq"}, {"POST", "/api/v1/admin/dlq/payments/x/replay"}} {
		resp, body := s.do(t, c.method, c.path, map[string]string{"Authorization": "Bearer " + customer})
		wantProblem(t, resp, body, http.StatusForbidden)
	}
}
