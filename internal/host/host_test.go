package host_test

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/web"
)

// fakeRegistry keeps instances the way the registry service does, over the
// same wire protocol (package registry is a service, which host's tests may
// not import).
type fakeRegistry struct {
	mu        sync.Mutex
	instances map[string]discovery.Instance
	expires   map[string]time.Time // when each instance drops out unless it heartbeats
	deleted   []string
}

func newRegistry(t *testing.T) (*fakeRegistry, string) {
	t.Helper()
	f := &fakeRegistry{instances: map[string]discovery.Instance{}, expires: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		var hb discovery.Heartbeat
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil || hb.Service == "" || hb.Address == "" || hb.TTLSeconds < 1 {
			http.Error(w, "bad heartbeat", http.StatusUnprocessableEntity)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.instances[r.PathValue("id")] = discovery.Instance{ID: r.PathValue("id"), Service: hb.Service, Address: hb.Address, Healthy: hb.Healthy}
		f.expires[r.PathValue("id")] = time.Now().Add(time.Duration(hb.TTLSeconds) * time.Second)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.instances, r.PathValue("id"))
		f.deleted = append(f.deleted, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// live lists the healthy instances of service whose TTL has not passed, as
// the registry service resolves them.
func (f *fakeRegistry) live(service string) []discovery.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []discovery.Instance
	for id, inst := range f.instances {
		if inst.Service == service && inst.Healthy && time.Now().Before(f.expires[id]) {
			out = append(out, inst)
		}
	}
	return out
}

func (f *fakeRegistry) healthy(service string) []discovery.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []discovery.Instance
	for _, inst := range f.instances {
		if inst.Service == service && inst.Healthy {
			out = append(out, inst)
		}
	}
	return out
}

// eventually polls cond until it holds, failing the test after a generous bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func newService(name string) *host.Service {
	routes := http.NewServeMux()
	routes.HandleFunc("GET /api/v1/hello", func(w http.ResponseWriter, _ *http.Request) {
		web.JSON(w, http.StatusOK, map[string]string{"hello": name})
	})
	return &host.Service{
		Name:    name,
		Addr:    "127.0.0.1:0",
		Log:     slog.New(slog.DiscardHandler),
		Routes:  routes,
		Health:  web.NewHealth(),
		Metrics: web.NewMetrics(name),
	}
}

func TestRunServesRegistersAndStopsCleanly(t *testing.T) {
	reg, regURL := newRegistry(t)
	svc := newService("hello")
	svc.Registry = discovery.NewClient(regURL, time.Hour)
	svc.RegistryTTL = 3 * time.Second
	addrs := make(chan string, 1)
	svc.OnListen = func(addr string) { addrs <- addr }
	var workerStarted, workerStopped atomic.Bool
	svc.Workers = []host.Worker{func(ctx context.Context) {
		workerStarted.Store(true)
		<-ctx.Done()
		// A worker finishing its last piece of work: Run must wait for it.
		time.Sleep(50 * time.Millisecond)
		workerStopped.Store(true)
	}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-errc:
		t.Fatalf("Run returned before listening: %v", err)
	}
	base := "http://" + addr

	eventually(t, "/ready answers 200", func() bool { code, _ := get(base + "/ready"); return code == http.StatusOK })
	resp, err := http.Get(base + "/api/v1/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"hello"`) {
		t.Errorf("GET /api/v1/hello = %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get(web.RequestIDHeader) == "" {
		t.Error("answer carries no X-Request-Id: the shared middleware is not in front of the routes")
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, err := get(base + path); code != http.StatusOK {
			t.Errorf("GET %s = %d, %v; want 200", path, code, err)
		}
	}
	eventually(t, "a healthy instance in the registry", func() bool { return len(reg.healthy("hello")) == 1 })
	inst := reg.healthy("hello")[0]
	if inst.Address != addr || inst.ID != "hello-"+addr {
		t.Errorf("registered %+v, want hello-%s at %s", inst, addr, addr)
	}
	if !workerStarted.Load() {
		t.Error("the worker did not start")
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run returned %v after cancellation, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if !workerStopped.Load() {
		t.Error("Run returned before its worker stopped")
	}
	reg.mu.Lock()
	left, deleted := len(reg.instances), reg.deleted
	reg.mu.Unlock()
	if left != 0 || len(deleted) != 1 || deleted[0] != "hello-"+addr {
		t.Errorf("after Run: %d instances left, deleted %v; want none left and hello-%s deleted", left, deleted, addr)
	}
	if svc.Health.Ready() {
		t.Error("still reports ready after stopping")
	}
	if _, err := get(base + "/ready"); err == nil {
		t.Error("still serving after Run returned")
	}
}

func TestRunOnATakenAddressNamesTheService(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reg, regURL := newRegistry(t)
	svc := newService("payments")
	svc.Addr = ln.Addr().String()
	svc.Registry = discovery.NewClient(regURL, time.Hour)
	svc.RegistryTTL = 3 * time.Second
	var workerRan atomic.Bool
	svc.Workers = []host.Worker{func(context.Context) { workerRan.Store(true) }}

	err = svc.Run(context.Background()) // must return at once, not serve
	if err == nil {
		t.Fatal("Run on a taken address returned nil")
	}
	if !strings.Contains(err.Error(), "payments") || !strings.Contains(err.Error(), svc.Addr) {
		t.Errorf("error %q does not name the service and the address", err)
	}
	if workerRan.Load() {
		t.Error("a worker ran for a service that never started")
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.instances) != 0 {
		t.Errorf("a service that never started was registered: %v", reg.instances)
	}
}

func TestHandlerPutsOpsAndMiddlewareInFrontOfTheRoutes(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	svc := newService("hello")
	svc.Verifier = auth.NewVerifier(signer)
	var seen auth.Principal
	svc.Routes.HandleFunc("GET /api/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		seen, _ = auth.PrincipalFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	svc.Routes.HandleFunc("GET /api/v1/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	if code, _ := get(srv.URL + "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready before SetReady = %d, want 503", code)
	}
	svc.Health.SetReady(true)
	if code, _ := get(srv.URL + "/ready"); code != http.StatusOK {
		t.Errorf("/ready after SetReady = %d, want 200", code)
	}

	tok, _, err := signer.Sign("user-7", auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusNoContent}, {tok, http.StatusNoContent}, {"forged", http.StatusUnauthorized}} {
		seen = auth.Principal{}
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/whoami", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
		if tc.token == tok && seen.Subject != "user-7" {
			t.Errorf("handler saw principal %+v, want user-7", seen)
		}
	}

	resp, err := http.Get(srv.URL + "/api/v1/panic")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != web.ProblemContentType || strings.Contains(string(body), "boom") {
		t.Errorf("panicking handler answered %d %q %s, want a 500 problem that hides the panic", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
