package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// ttlRegistry keeps instances as the registry service does, over the same
// wire protocol: an instance that stops heartbeating drops out once its
// TTL passes (package registry is a service, which the gateway's tests may
// not import).
type ttlRegistry struct {
	mu      sync.Mutex
	entries map[string]ttlEntry
}

type ttlEntry struct {
	inst    discovery.Instance
	expires time.Time
}

func newTTLRegistry(t *testing.T) (*ttlRegistry, string) {
	t.Helper()
	reg := &ttlRegistry{entries: map[string]ttlEntry{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		var hb discovery.Heartbeat
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
			http.Error(w, "bad heartbeat", http.StatusUnprocessableEntity)
			return
		}
		reg.mu.Lock()
		defer reg.mu.Unlock()
		id := r.PathValue("id")
		reg.entries[id] = ttlEntry{discovery.Instance{ID: id, Service: hb.Service, Address: hb.Address, Healthy: hb.Healthy},
			time.Now().Add(time.Duration(hb.TTLSeconds) * time.Second)}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		delete(reg.entries, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/registry/services", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			web.WriteProblem(w, r, http.StatusUnauthorized, "no token")
			return
		}
		web.JSON(w, http.StatusOK, map[string]any{"services": reg.services()})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return reg, srv.URL
}

func (reg *ttlRegistry) services() []discovery.Service {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	byName := map[string][]discovery.Instance{}
	for _, e := range reg.entries {
		if time.Now().Before(e.expires) {
			byName[e.inst.Service] = append(byName[e.inst.Service], e.inst)
		}
	}
	out := []discovery.Service{}
	for name, insts := range byName {
		out = append(out, discovery.Service{Name: name, Instances: insts})
	}
	return out
}

func (reg *ttlRegistry) live(service string) int {
	for _, s := range reg.services() {
		if s.Name == service {
			return len(s.Instances)
		}
	}
	return 0
}

// faultShop is a gateway in front of two real instances of payments with
// fault injection, announced to a registry with TTLs of one second.
type faultShop struct {
	gateway   string
	instances []*host.Service
	addrs     []string
	reg       *ttlRegistry
	admin     string
	customer  string
}

func newFaultShop(t *testing.T) *faultShop {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	token := func(role string) string {
		tok, _, err := signer.Sign("someone", role)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	reg, regURL := newTTLRegistry(t)
	s := &faultShop{reg: reg, admin: token(auth.RoleAdmin), customer: token(auth.RoleCustomer)}
	for range 2 {
		routes := http.NewServeMux()
		routes.HandleFunc("GET /api/v1/payments", func(w http.ResponseWriter, _ *http.Request) {
			web.JSON(w, http.StatusOK, map[string]any{"items": []any{}})
		})
		svc := &host.Service{
			Name: "payments", Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler), Routes: routes,
			Health: web.NewHealth(), Metrics: web.NewMetrics("payments"), Verifier: auth.NewVerifier(signer),
			Registry: discovery.NewClient(regURL, time.Hour), RegistryTTL: time.Second,
			Faults: fault.New("payments"),
		}
		fault.Mount(routes, svc.Faults)
		addrs := make(chan string, 1)
		svc.OnListen = func(addr string) { addrs <- addr }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		s.instances = append(s.instances, svc)
		s.addrs = append(s.addrs, <-addrs)
	}
	waitUntil(t, "both instances are registered", func() bool { return reg.live("payments") == 2 })

	proxy, err := gateway.NewProxy(&resolver{addrs: map[string]string{}}, regURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gw := &host.Service{
		Name: "gateway", Log: slog.New(slog.DiscardHandler),
		Routes:  gateway.Routes(proxy, nil, upstream.New("gateway", &resolver{addrs: map[string]string{}})),
		Health:  web.NewHealth(),
		Metrics: web.NewMetrics("gateway"), Verifier: auth.NewVerifier(signer),
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	s.gateway = srv.URL
	return s
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// faultListing is the gateway's answer about faults.
type faultListing struct {
	Items []struct {
		Address string `json:"address"`
		Listed  bool   `json:"listed"`
		fault.State
	} `json:"items"`
	Unreachable []struct {
		Service, Address, Detail string
	} `json:"unreachable"`
}

// send asks the gateway, and decodes a 200 answer.
func (s *faultShop) send(t *testing.T, method, path, token, body string) (int, faultListing) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.gateway+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var l faultListing
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
	} else if ct := resp.Header.Get("Content-Type"); ct != web.ProblemContentType {
		t.Errorf("%s %s = %d %s, want a problem", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, l
}

// unanswered counts the instances whose payments route gives no answer at
// all to a new connection.
func (s *faultShop) unanswered() int {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	n := 0
	for _, addr := range s.addrs {
		resp, err := client.Get("http://" + addr + "/api/v1/payments")
		if err != nil {
			n++
			continue
		}
		resp.Body.Close()
	}
	return n
}

// TestGatewayTakesAServiceDownAndBringsItBack sets faults on every instance
// of payments through the gateway, down included, and brings the service
// back after the registry has forgotten it.
func TestGatewayTakesAServiceDownAndBringsItBack(t *testing.T) {
	s := newFaultShop(t)

	code, l := s.send(t, "PUT", "/api/v1/admin/faults/payments", s.admin, `{"down":true}`)
	if code != http.StatusOK || len(l.Items) != 2 || len(l.Unreachable) != 0 {
		t.Fatalf("PUT down = %d %+v, want both instances", code, l)
	}
	for _, it := range l.Items {
		if !it.Down || it.Service != "payments" || !it.Listed {
			t.Errorf("instance %+v, want payments down (and still listed at once)", it)
		}
	}
	downUnanswered := s.unanswered()
	if downUnanswered != 2 {
		t.Errorf("while down: %d of 2 instances unanswered, want 2", downUnanswered)
	}
	waitUntil(t, "the registry drops both instances", func() bool { return s.reg.live("payments") == 0 })

	// The registry has forgotten them; the gateway has not.
	code, l = s.send(t, "GET", "/api/v1/admin/faults", s.admin, "")
	if code != http.StatusOK || len(l.Items) != 2 {
		t.Fatalf("GET faults = %d %+v, want both down instances listed", code, l)
	}
	for _, it := range l.Items {
		if !it.Down || it.Listed || it.Expect.Down == "" {
			t.Errorf("instance %+v, want down, no longer listed, with what to expect", it)
		}
	}

	code, l = s.send(t, "PUT", "/api/v1/admin/faults/payments", s.admin, `{}`)
	if code != http.StatusOK || len(l.Items) != 2 {
		t.Fatalf("PUT up = %d %+v, want both instances back", code, l)
	}
	upUnanswered := s.unanswered()
	if upUnanswered != 0 {
		t.Errorf("after up: %d of 2 instances unanswered, want 0", upUnanswered)
	}
	waitUntil(t, "both instances are registered again", func() bool { return s.reg.live("payments") == 2 })
	for i, svc := range s.instances {
		if svc.Faults.Down() {
			t.Errorf("instance %d still down", i)
		}
	}
	t.Logf("verdict: instances=2 taken_down=2 unanswered_while_down=%d dropped_by_registry=2 brought_up_after_drop=2 unanswered_after_up=%d",
		downUnanswered, upUnanswered)
}

// TestGatewayFaultRoutesRefuse: admins only, a known service, values in
// range; a refusal changes no instance.
func TestGatewayFaultRoutesRefuse(t *testing.T) {
	s := newFaultShop(t)
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"anonymous list", "GET", "/api/v1/admin/faults", "", "", http.StatusUnauthorized},
		{"customer list", "GET", "/api/v1/admin/faults", s.customer, "", http.StatusForbidden},
		{"customer set", "PUT", "/api/v1/admin/faults/payments", s.customer, `{"down":true}`, http.StatusForbidden},
		{"unknown service", "PUT", "/api/v1/admin/faults/gateway", s.admin, `{"down":true}`, http.StatusNotFound},
		{"error rate out of range", "PUT", "/api/v1/admin/faults/payments", s.admin, `{"error_rate":1.5}`, http.StatusUnprocessableEntity},
		{"negative latency", "PUT", "/api/v1/admin/faults/payments", s.admin, `{"latency_ms":-3}`, http.StatusUnprocessableEntity},
		{"unknown field", "PUT", "/api/v1/admin/faults/payments", s.admin, `{"down":true,"boom":1}`, http.StatusBadRequest},
		{"no instance known", "PUT", "/api/v1/admin/faults/orders", s.admin, `{"down":true}`, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := s.send(t, tc.method, tc.path, tc.token, tc.body); code != tc.want {
				t.Errorf("%s %s %s = %d, want %d", tc.method, tc.path, tc.body, code, tc.want)
			}
			for i, svc := range s.instances {
				if got := svc.Faults.Settings(); got != (fault.Settings{}) {
					t.Errorf("instance %d settings = %+v, want none", i, got)
				}
			}
		})
	}
	code, l := s.send(t, "PUT", "/api/v1/admin/faults/payments", s.admin, `{"latency_ms":10,"error_rate":0.25}`)
	if code != http.StatusOK || len(l.Items) != 2 || l.Items[0].ErrorRate != 0.25 || l.Items[0].Expect.ErrorRate != "about 25% of requests are answered 503 at once" {
		t.Errorf("PUT = %d %+v, want both instances at 10 ms and 25%%", code, l)
	}
}
