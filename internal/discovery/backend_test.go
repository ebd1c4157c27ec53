package discovery_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/discovery"
)

func TestNewChoosesTheBackendByScheme(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // the backend's type; empty: refused
	}{
		{"http://127.0.0.1:8090", "*discovery.Client"},
		{"https://registry.example", "*discovery.Client"},
		{"etcd://127.0.0.1:2379", "*discovery.Etcd"},
		{"etcd://127.0.0.1:2379,127.0.0.2:2379?prefix=/shop", "*discovery.Etcd"},
		{"kubernetes://microshop", "*discovery.DNS"},
		{"kubernetes://microshop?domain=corp.example", "*discovery.DNS"},
		{"http://", ""},
		{"etcd://127.0.0.1", ""},
		{"etcd://127.0.0.1:2379?prefix=shop", ""},
		{"kubernetes://Micro_Shop", ""},
		{"kubernetes://shop?domain=a..b", ""},
		{"consul://127.0.0.1:8500", ""},
	} {
		reg, err := discovery.New(tc.url)
		got := ""
		if err == nil {
			got = fmt.Sprintf("%T", reg)
			_ = reg.Close()
		}
		if got != tc.want {
			t.Errorf("New(%q) = %s, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

// TestNewPassesTheCredentialsToTheBuiltInRegistry: the options reach the
// HTTP client New builds.
func TestNewPassesTheCredentialsToTheBuiltInRegistry(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	reg, err := discovery.New(srv.URL, discovery.WithAuthorize(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer service-token")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Announce(context.Background(), discovery.Instance{ID: "o", Service: "orders", Address: "127.0.0.1:1"}, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a != "Bearer service-token" {
		t.Errorf("the announcement carried Authorization %q, want the service token", a)
	}
}
