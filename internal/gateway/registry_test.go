package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// TestGatewayListsARegistryItCannotForwardTo: with etcd or Kubernetes DNS
// there is no registry service; the gateway answers the admin's listing
// and the registry's document itself, and forwards nothing to the
// registry's URL.
func TestGatewayListsARegistryItCannotForwardTo(t *testing.T) {
	var down atomic.Bool
	list := func(context.Context) ([]discovery.Service, error) {
		if down.Load() {
			return nil, fail.New(fail.Unavailable, "registry unreachable")
		}
		return []discovery.Service{{Name: "orders", Instances: []discovery.Instance{{ID: "orders-1", Service: "orders", Address: "127.0.0.1:1", Healthy: true}}}, {Name: "idle"}}, nil
	}
	doc := []byte("openapi: 3.0.3\n")
	s := &shop{resolver: &resolver{addrs: map[string]string{}}}
	proxy, err := gateway.NewProxy(s.resolver, "etcd://127.0.0.1:1,127.0.0.1:2?prefix=/shop", slog.New(slog.DiscardHandler), gateway.WithRegistryListing(list, doc))
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.signer = auth.NewSigner(key, time.Hour)
	noAudit := func(context.Context, string) (audit.Report, error) { return audit.Report{}, nil }
	gw := &host.Service{
		Name:     "gateway",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   gateway.Routes(proxy, noAudit, upstream.New("gateway", s.resolver)),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("gateway"),
		Verifier: auth.NewVerifier(s.signer),
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	s.url, s.client = srv.URL, srv.Client()

	admin := map[string]string{"Authorization": "Bearer " + s.token(t, "admin")}
	resp, body := s.do(t, "GET", "/api/v1/registry/services", admin)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("listing = %d %s, want 200", resp.StatusCode, body)
	}
	var got struct {
		Services []discovery.Service `json:"services"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := []discovery.Service{{Name: "orders", Instances: []discovery.Instance{{ID: "orders-1", Service: "orders", Address: "127.0.0.1:1", Healthy: true}}}, {Name: "idle", Instances: []discovery.Instance{}}}
	if !slices.EqualFunc(got.Services, want, func(a, b discovery.Service) bool {
		return a.Name == b.Name && a.Instances != nil && slices.Equal(a.Instances, b.Instances)
	}) {
		t.Errorf("listing = %s, want %+v", body, want)
	}

	resp, body = s.do(t, "GET", "/api/v1/registry/services", map[string]string{"Authorization": "Bearer " + s.token(t, "customer")})
	wantProblem(t, resp, body, http.StatusForbidden)
	resp, body = s.do(t, "GET", "/api/v1/registry/services", nil)
	wantProblem(t, resp, body, http.StatusUnauthorized)
	resp, body = s.do(t, "GET", "/api/v1/registry/elsewhere", admin)
	wantProblem(t, resp, body, http.StatusNotFound)

	resp, body = s.do(t, "GET", "/api/docs/registry", nil)
	if resp.StatusCode != http.StatusOK || string(body) != string(doc) {
		t.Errorf("the registry's document = %d %q, want 200 %q", resp.StatusCode, body, doc)
	}

	down.Store(true)
	resp, body = s.do(t, "GET", "/api/v1/registry/services", admin)
	wantProblem(t, resp, body, http.StatusServiceUnavailable)
}
