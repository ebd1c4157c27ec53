package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fail"
)

func TestInstancesExpireWithoutHeartbeats(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New()
	r.now = func() time.Time { return now }
	r.Heartbeat(Instance{ID: "a", Service: "orders", Address: "127.0.0.1:1", Healthy: true}, 5*time.Second)
	r.Heartbeat(Instance{ID: "b", Service: "orders", Address: "127.0.0.1:2", Healthy: true}, 5*time.Second)
	now = now.Add(4 * time.Second)
	r.Heartbeat(Instance{ID: "a", Service: "orders", Address: "127.0.0.1:1", Healthy: true}, 5*time.Second)
	now = now.Add(2 * time.Second) // b's TTL has passed, a was renewed
	got := r.Instances("orders")
	if len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("instances = %+v, want only a", got)
	}
	r.Deregister("a")
	if got := r.Instances("orders"); len(got) != 0 {
		t.Fatalf("after deregister: %+v", got)
	}
}

func TestClientRegistersResolvesAndBalances(t *testing.T) {
	reg := New()
	srv := httptest.NewServer(Routes(reg, func(*http.Request) error { return nil }))
	defer srv.Close()
	c := discovery.NewClient(srv.URL, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, addr := range []string{"127.0.0.1:1001", "127.0.0.1:1002"} {
		go func() {
			c.Keep(ctx, Instance{ID: "orders-" + addr, Service: "orders", Address: addr}, 3*time.Second, func() bool { return true }, log)
			done <- struct{}{}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(reg.Instances("orders")) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	counts := map[string]int{}
	for range 10 {
		addr, err := c.Resolve(context.Background(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		counts[addr]++
	}
	if counts["127.0.0.1:1001"] != 5 || counts["127.0.0.1:1002"] != 5 {
		t.Errorf("resolutions = %v, want 5 each (round-robin)", counts)
	}
	cancel()
	<-done
	<-done
	if got := reg.Instances("orders"); len(got) != 0 {
		t.Errorf("instances after stop = %+v, want deregistered", got)
	}
	if _, err := c.Resolve(context.Background(), "orders"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve with no instance = %v, want unavailable", err)
	}
}

func TestUnhealthyInstancesAreNotResolved(t *testing.T) {
	reg := New()
	srv := httptest.NewServer(Routes(reg, func(*http.Request) error { return nil }))
	defer srv.Close()
	reg.Heartbeat(Instance{ID: "x", Service: "users", Address: "127.0.0.1:9", Healthy: false}, time.Minute)
	c := discovery.NewClient(srv.URL, 0)
	if _, err := c.Resolve(context.Background(), "users"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve = %v, want unavailable while the only instance is unhealthy", err)
	}
}
