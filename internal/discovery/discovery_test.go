package discovery_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fail"
)

// fakeRegistry speaks the registry's wire protocol from a fixed table, and
// can be taken down.
type fakeRegistry struct {
	mu         sync.Mutex
	services   map[string][]discovery.Instance
	down       bool
	lookups    int
	heartbeats []discovery.Heartbeat
	deleted    []string
}

func (f *fakeRegistry) set(service string, instances ...discovery.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services[service] = instances
}

func (f *fakeRegistry) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeRegistry) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func (f *fakeRegistry) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lookups++
		if f.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		name := r.PathValue("name")
		_ = json.NewEncoder(w).Encode(discovery.Service{Name: name, Instances: f.services[name]})
	})
	mux.HandleFunc("PUT /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		var hb discovery.Heartbeat
		_ = json.NewDecoder(r.Body).Decode(&hb)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.heartbeats = append(f.heartbeats, hb)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.deleted = append(f.deleted, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func newRegistry(t *testing.T) (*fakeRegistry, *httptest.Server) {
	t.Helper()
	f := &fakeRegistry{services: map[string][]discovery.Instance{}}
	srv := httptest.NewServer(f.routes())
	t.Cleanup(srv.Close)
	return f, srv
}

func instance(id, addr string, healthy bool) discovery.Instance {
	return discovery.Instance{ID: id, Service: "orders", Address: addr, Healthy: healthy}
}

// resolveAll resolves n times and counts the addresses handed out.
func resolveAll(t *testing.T, c *discovery.Client, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		addr, err := c.Resolve(context.Background(), "orders")
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		got[addr]++
	}
	return got
}

func TestResolveTakesTurnsAmongHealthyInstances(t *testing.T) {
	reg, srv := newRegistry(t)
	reg.set("orders", instance("a", "127.0.0.1:1", true), instance("b", "127.0.0.1:2", false), instance("c", "127.0.0.1:3", true))
	c := discovery.NewClient(srv.URL, time.Hour)
	got := resolveAll(t, c, 10)
	if len(got) != 2 || got["127.0.0.1:1"] != 5 || got["127.0.0.1:3"] != 5 {
		t.Errorf("addresses handed out = %v, want the two healthy ones 5 times each", got)
	}
	if n := reg.lookupCount(); n != 1 {
		t.Errorf("registry asked %d times within the cache period, want 1", n)
	}
}

func TestResolveWithNoHealthyInstanceIsUnavailable(t *testing.T) {
	reg, srv := newRegistry(t)
	reg.set("orders", instance("b", "127.0.0.1:2", false))
	c := discovery.NewClient(srv.URL, time.Hour)
	if addr, err := c.Resolve(context.Background(), "orders"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve = %q, %v; want unavailable", addr, err)
	}
	if addr, err := c.Resolve(context.Background(), "unknown"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve(unknown) = %q, %v; want unavailable", addr, err)
	}
}

func TestResolveKeepsTheCachedInstancesWhileTheRegistryIsDown(t *testing.T) {
	for _, how := range []string{"answers 503", "is gone"} {
		t.Run(how, func(t *testing.T) {
			reg, srv := newRegistry(t)
			reg.set("orders", instance("a", "127.0.0.1:1", true), instance("c", "127.0.0.1:3", true))
			// A cache period of zero: every Resolve asks the registry again.
			c := discovery.NewClient(srv.URL, 0)
			resolveAll(t, c, 1)

			if how == "is gone" {
				srv.Close()
			} else {
				reg.setDown(true)
			}
			before := reg.lookupCount()
			got := resolveAll(t, c, 4)
			if len(got) != 2 || got["127.0.0.1:1"] != 2 || got["127.0.0.1:3"] != 2 {
				t.Errorf("addresses while the registry is down = %v, want the cached two, taking turns", got)
			}
			if how == "answers 503" && reg.lookupCount() == before {
				t.Error("the registry was not asked again: the test does not exercise the fallback")
			}

			c.Forget("orders")
			if addr, err := c.Resolve(context.Background(), "orders"); !fail.Is(err, fail.Unavailable) {
				t.Errorf("after Forget, with the registry down, Resolve = %q, %v; want unavailable", addr, err)
			}
		})
	}
}

func TestForgetMakesTheNextResolveAskTheRegistry(t *testing.T) {
	reg, srv := newRegistry(t)
	reg.set("orders", instance("a", "127.0.0.1:1", true))
	reg.set("payments", discovery.Instance{ID: "p", Service: "payments", Address: "127.0.0.1:9", Healthy: true})
	c := discovery.NewClient(srv.URL, time.Hour)
	resolveAll(t, c, 1)
	if _, err := c.Resolve(context.Background(), "payments"); err != nil {
		t.Fatal(err)
	}

	// The instance died and another took its place; the cache does not know yet.
	reg.set("orders", instance("b", "127.0.0.1:2", true))
	if got := resolveAll(t, c, 2); got["127.0.0.1:1"] != 2 {
		t.Fatalf("before Forget: %v, want the cached 127.0.0.1:1", got)
	}
	c.Forget("orders")
	if got := resolveAll(t, c, 2); got["127.0.0.1:2"] != 2 {
		t.Errorf("after Forget: %v, want the registry's new 127.0.0.1:2", got)
	}
	lookups := reg.lookupCount()
	if _, err := c.Resolve(context.Background(), "payments"); err != nil {
		t.Fatal(err)
	}
	if reg.lookupCount() != lookups {
		t.Error("Forget(orders) dropped the cached payments instances too")
	}
}

func TestKeepRegistersThenDeregistersOnCancel(t *testing.T) {
	reg, srv := newRegistry(t)
	c := discovery.NewClient(srv.URL, time.Hour)
	inst := instance("orders-1", "127.0.0.1:1", false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Keep(ctx, inst, 3*time.Second, func() bool { return true }, slog.New(slog.DiscardHandler))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reg.mu.Lock()
		n := len(reg.heartbeats)
		reg.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat reached the registry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	reg.mu.Lock()
	defer reg.mu.Unlock()
	hb := reg.heartbeats[0]
	if hb.Service != "orders" || hb.Address != "127.0.0.1:1" || !hb.Healthy || hb.TTLSeconds != 3 {
		t.Errorf("heartbeat = %+v, want orders at 127.0.0.1:1, healthy as asked, ttl 3", hb)
	}
	if len(reg.deleted) != 1 || reg.deleted[0] != "orders-1" {
		t.Errorf("deregistered %v, want [orders-1]", reg.deleted)
	}
}
