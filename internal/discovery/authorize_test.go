package discovery_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/discovery"
)

// TestAuthorizeCredentialsEveryRegistryRequest: announcing, resolving,
// listing and leaving all carry the caller's credentials, and a failure to
// make them sends nothing.
func TestAuthorizeCredentialsEveryRegistryRequest(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]string{} // "METHOD path" -> Authorization
	)
	mux := http.NewServeMux()
	record := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		if r.Method == http.MethodGet {
			w.Write([]byte(`{"name":"orders","instances":[{"id":"o","service":"orders","address":"127.0.0.1:1","healthy":true}],"services":[]}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("/v1/", record)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	c := discovery.NewClient(srv.URL, time.Hour)
	c.Authorize = func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer service-token")
		return nil
	}
	ctx := context.Background()
	inst := discovery.Instance{ID: "orders-1", Service: "orders", Address: "127.0.0.1:1"}
	if err := c.Announce(ctx, inst, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Services(ctx); err != nil {
		t.Fatal(err)
	}
	keepCtx, stop := context.WithCancel(ctx)
	stop() // Keep heartbeats once, then leaves at once
	c.Keep(keepCtx, inst, 3*time.Second, func() bool { return true }, slog.New(slog.DiscardHandler))

	mu.Lock()
	defer mu.Unlock()
	for _, req := range []string{"PUT /v1/instances/orders-1", "GET /v1/services/orders", "GET /v1/services", "DELETE /v1/instances/orders-1"} {
		if got := seen[req]; got != "Bearer service-token" {
			t.Errorf("%s carried Authorization %q, want the service token", req, got)
		}
	}

	refused := discovery.NewClient(srv.URL, time.Hour)
	refused.Authorize = func(context.Context, *http.Request) error { return errors.New("no key") }
	delete(seen, "GET /v1/services")
	mu.Unlock()
	_, err := refused.Services(ctx)
	mu.Lock()
	if err == nil {
		t.Error("Services with failing credentials = nil, want the error")
	}
	if _, sent := seen["GET /v1/services"]; sent {
		t.Error("a request whose credentials failed was sent anyway")
	}
}
