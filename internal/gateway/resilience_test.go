package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/resilience/resiliencetest"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// guarded is a gateway whose edges run under a test's policy, in front of
// services at the addresses of its resolver.
type guarded struct {
	*shop
	edges *resilience.Edges
}

func newGuarded(t *testing.T, p resilience.Policy, addrs map[string]string) *guarded {
	t.Helper()
	s := &shop{resolver: &resolver{addrs: addrs}}
	edges := resilience.NewEdges("gateway", p, nil)
	proxy, err := gateway.NewProxy(s.resolver, "http://127.0.0.1:1", slog.New(slog.DiscardHandler), gateway.WithEdges(edges))
	if err != nil {
		t.Fatal(err)
	}
	if proxy.Edges() != edges {
		t.Fatal("the proxy does not use the edges it was given")
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.signer = auth.NewSigner(key, time.Hour)
	noAudit := func(context.Context, string) (audit.Report, error) { return audit.Report{}, nil }
	h := &host.Service{
		Name:     "gateway",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   gateway.Routes(proxy, noAudit, upstream.New("gateway", s.resolver, upstream.WithEdges(edges))),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("gateway"),
		Verifier: auth.NewVerifier(s.signer),
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	s.url, s.client = srv.URL, srv.Client()
	return &guarded{shop: s, edges: edges}
}

func TestAnOpenBreakerAnswers503AtOnce(t *testing.T) {
	const failures = 3
	up := resiliencetest.NewUpstream(t, resiliencetest.Status(http.StatusServiceUnavailable))
	p := resilience.DefaultPolicy()
	p.Failures, p.OpenTimeout = failures, time.Hour
	g := newGuarded(t, p, map[string]string{"inventory": up.Addr})

	for range failures {
		resp, body := g.do(t, "GET", "/api/v1/inventory/p1", nil)
		wantProblem(t, resp, body, http.StatusServiceUnavailable)
	}
	if got := g.edges.Edge("inventory").State(); got != resilience.StateOpen {
		t.Fatalf("after %d 503s: state = %s, want open", failures, got)
	}
	const refused = 10
	for range refused {
		resp, body := g.do(t, "GET", "/api/v1/inventory/p1", nil)
		wantProblem(t, resp, body, http.StatusServiceUnavailable)
		// Retry-After says when the breaker lets a probe through: within
		// the hour of its open timeout, and not the 1 s of a plain 503.
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 3000 || ra > 3600 {
			t.Errorf("Retry-After = %q, want the time until the breaker probes (about 3600 s)", resp.Header.Get("Retry-After"))
		}
	}
	if got := up.Arrivals(); got != failures {
		t.Errorf("requests at inventory = %d, want %d: an open breaker forwards nothing", got, failures)
	}
	// Other upstreams have breakers of their own.
	if got := g.edges.Edge("orders").State(); got != resilience.StateClosed {
		t.Errorf("orders breaker = %s, want closed", got)
	}
	st := g.edges.Edge("inventory").Status()
	if st.Rejected != refused || st.Attempts != failures || st.Failures != failures {
		t.Errorf("status = %+v, want %d rejected, %d attempts and failures", st, refused, failures)
	}
	t.Logf("verdict: gateway breaker failures_to_open=%d refused=%d forwarded_while_open=%d", failures, refused, up.Arrivals()-failures)
}

func TestAnswersFromServicesThatAreNotFailuresKeepTheBreakerClosed(t *testing.T) {
	up := resiliencetest.NewUpstream(t, resiliencetest.Status(http.StatusNotFound))
	p := resilience.DefaultPolicy()
	p.Failures = 2
	g := newGuarded(t, p, map[string]string{"orders": up.Addr})
	for range 5 {
		resp, body := g.do(t, "GET", "/api/v1/orders/nope", nil)
		wantProblem(t, resp, body, http.StatusNotFound)
	}
	if st := g.edges.Edge("orders").Status(); st.State != resilience.StateClosed || st.Failures != 0 || st.Attempts != 5 {
		t.Errorf("status = %+v, want closed, 5 attempts, no failures", st)
	}
}

// TestProductsFallBackToTheLastGoodCopy serves a product while the catalog
// is well, then takes the catalog away in each way it can go: its
// connections reset, it answers 503, its breaker opens, the registry loses
// it. Every time the gateway answers the last good copy, marked stale.
func TestProductsFallBackToTheLastGoodCopy(t *testing.T) {
	product := map[string]any{"id": "p1", "sku": "SKU-1", "name": "Desk Cactus", "price_cents": 1250, "currency": "USD"}
	catalog := resiliencetest.NewUpstream(t, resiliencetest.OK(product))
	toxic := resiliencetest.NewProxy(t, catalog.Addr)
	p := resilience.DefaultPolicy()
	p.Failures, p.OpenTimeout = 3, time.Hour
	addrs := map[string]string{"catalog": toxic.Addr}
	g := newGuarded(t, p, addrs)

	var fresh []byte
	for _, path := range []string{"/api/v1/products/p1", "/api/v2/products/p1"} {
		resp, body := g.do(t, "GET", path, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.FallbackHeader) != "" {
			t.Fatalf("GET %s while well = %d, fallback %q", path, resp.StatusCode, resp.Header.Get(gateway.FallbackHeader))
		}
		fresh = body
	}

	wantStale := func(t *testing.T, path string) {
		t.Helper()
		resp, body := g.do(t, "GET", path, nil)
		if resp.StatusCode != http.StatusOK || string(body) != string(fresh) {
			t.Fatalf("GET %s = %d %s, want 200 and the last good copy %s", path, resp.StatusCode, body, fresh)
		}
		if resp.Header.Get(gateway.FallbackHeader) != "stale" || resp.Header.Get("Warning") == "" {
			t.Errorf("headers %v, want %s: stale and a Warning", resp.Header, gateway.FallbackHeader)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want the copy's application/json", ct)
		}
	}
	served := 0
	t.Run("connections reset", func(t *testing.T) {
		toxic.Add(t, "down", "reset_peer", "upstream", map[string]any{"timeout": 0})
		defer toxic.Remove(t, "down")
		wantStale(t, "/api/v2/products/p1")
		served++
	})
	t.Run("answers 503", func(t *testing.T) {
		catalog.Set(resiliencetest.Status(http.StatusServiceUnavailable))
		wantStale(t, "/api/v2/products/p1")
		served++
		// A product never seen has no copy: the 503 passes through.
		resp, body := g.do(t, "GET", "/api/v1/products/p2", nil)
		wantProblem(t, resp, body, http.StatusServiceUnavailable)
	})
	t.Run("breaker open", func(t *testing.T) {
		if got := g.edges.Edge("catalog").State(); got != resilience.StateOpen {
			t.Fatalf("catalog breaker = %s after 3 failures, want open", got)
		}
		before := catalog.Arrivals()
		wantStale(t, "/api/v1/products/p1")
		wantStale(t, "/api/v2/products/p1")
		served += 2
		if got := catalog.Arrivals() - before; got != 0 {
			t.Errorf("requests at the catalog with its breaker open = %d, want 0", got)
		}
		// A listing is never kept: 503 at once, with the breaker's Retry-After.
		resp, body := g.do(t, "GET", "/api/v1/products", nil)
		wantProblem(t, resp, body, http.StatusServiceUnavailable)
		if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 2 {
			t.Errorf("Retry-After = %q, want the breaker's", resp.Header.Get("Retry-After"))
		}
	})
	if got := g.edges.Edge("catalog").Status().Fallbacks; got != uint64(served) {
		t.Errorf("fallbacks counted = %d, want the %d served", got, served)
	}

	// The registry knows no catalog: a fresh gateway's breaker is closed,
	// but the copy it kept before still answers.
	g2 := newGuarded(t, p, map[string]string{"catalog": catalog.Addr})
	catalog.Set(resiliencetest.OK(product))
	if resp, _ := g2.do(t, "GET", "/api/v1/products/p1", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET while well = %d", resp.StatusCode)
	}
	g2.resolver.mu.Lock()
	delete(g2.resolver.addrs, "catalog")
	g2.resolver.mu.Unlock()
	resp, _ := g2.do(t, "GET", "/api/v1/products/p1", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.FallbackHeader) != "stale" {
		t.Errorf("GET with no catalog registered = %d, fallback %q; want the stale copy", resp.StatusCode, resp.Header.Get(gateway.FallbackHeader))
	}
	t.Logf("verdict: fallback stale_served=%d fallbacks_counted=%d", served, g.edges.Edge("catalog").Status().Fallbacks)
}

func TestAProductThatIsGoneLeavesNoCopy(t *testing.T) {
	catalog := resiliencetest.NewUpstream(t, resiliencetest.OK(map[string]string{"id": "p1"}))
	g := newGuarded(t, resilience.DefaultPolicy(), map[string]string{"catalog": catalog.Addr})
	if resp, _ := g.do(t, "GET", "/api/v1/products/p1", nil); resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	catalog.Set(resiliencetest.Status(http.StatusNotFound))
	resp, body := g.do(t, "GET", "/api/v1/products/p1", nil)
	wantProblem(t, resp, body, http.StatusNotFound)
	catalog.Set(resiliencetest.Status(http.StatusServiceUnavailable))
	resp, body = g.do(t, "GET", "/api/v1/products/p1", nil)
	wantProblem(t, resp, body, http.StatusServiceUnavailable)
}

// TestResilienceListingGathersEveryService lists the gateway's own edges and
// every service's, and names a service that did not answer.
func TestResilienceListingGathersEveryService(t *testing.T) {
	addrs := map[string]string{}
	for _, svc := range gateway.Resilient {
		if svc == "shipping" {
			continue // not registered: unreachable
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/v1/admin/resilience", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				web.Error(w, r, fail.New(fail.Unauthenticated, "no token"))
				return
			}
			web.JSON(w, http.StatusOK, resilience.Listing{Edges: []resilience.Status{{From: svc, To: "users", State: resilience.StateClosed, Requests: 7}}})
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		addrs[svc] = srv.Listener.Addr().String()
	}
	g := newGuarded(t, resilience.DefaultPolicy(), addrs)
	g.edges.Edge("catalog")

	resp, body := g.do(t, "GET", "/api/v1/admin/resilience", map[string]string{"Authorization": "Bearer " + g.token(t, auth.RoleCustomer)})
	wantProblem(t, resp, body, http.StatusForbidden)
	resp, body = g.do(t, "GET", "/api/v1/admin/resilience", nil)
	wantProblem(t, resp, body, http.StatusUnauthorized)

	resp, body = g.do(t, "GET", "/api/v1/admin/resilience", map[string]string{"Authorization": "Bearer " + g.token(t, auth.RoleAdmin)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d %s", resp.StatusCode, body)
	}
	var got struct {
		Edges       []resilience.Status `json:"edges"`
		Unreachable []string            `json:"unreachable"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	var from []string
	for _, e := range got.Edges {
		from = append(from, e.From+"->"+e.To)
	}
	// The gateway's own edges: catalog, and each service it just asked.
	want := []string{"catalog->users", "gateway->catalog", "gateway->inventory", "gateway->orders", "gateway->payments",
		"gateway->registry", "gateway->shipping", "gateway->users", "inventory->users", "orders->users",
		"payments->users", "registry->users", "users->users"}
	if len(from) != len(want) {
		t.Fatalf("edges = %v, want %v", from, want)
	}
	for i := range want {
		if from[i] != want[i] {
			t.Fatalf("edges = %v, want %v", from, want)
		}
	}
	if len(got.Unreachable) != 1 || got.Unreachable[0] != "shipping" {
		t.Errorf("unreachable = %v, want [shipping]", got.Unreachable)
	}
}
