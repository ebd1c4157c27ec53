package main

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/microshop/microshop/internal/config"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/discovery/etcdtest"
)

// TestShopOnEtcd runs the whole shop with its instances kept in etcd
// (MICROSHOP_REGISTRY_URL=etcd://...). The built-in registry does not run
// then: every service announces itself in etcd and finds the others there,
// and the gateway answers the admin's registry listing from etcd itself.
// A checkout completes; the listing, the console and the fault listing
// show what etcd holds; an instance taken down drops out of etcd when its
// lease expires and is back once brought up; and a shop that stops leaves
// nothing behind in etcd.
func TestShopOnEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	shop := start(t, t.TempDir(), []string{"MICROSHOP_REGISTRY_URL=" + srv.URL("/shop")}, "up")
	if addr, ok := shop.addrs["registry"]; ok {
		t.Errorf("the built-in registry runs at %s, with etcd configured", addr)
	}
	// Where each service listens, from the banner: what etcd must hold.
	want := map[string][]string{}
	for name, u := range shop.addrs {
		if name != "broker" {
			want[name] = []string{strings.TrimPrefix(u, "http://")}
		}
	}
	if len(want) != len(config.Services)-1 {
		t.Fatalf("banner lists %v, want every service but the built-in registry (%v)", slices.Sorted(maps.Keys(want)), config.Services)
	}
	inEtcd := func() map[string][]string { return instancesIn(t, srv, "/shop/services/") }
	waitFor(t, 10*time.Second, "every instance in etcd", func() bool { return equalListing(inEtcd(), want) })

	c := newClient(t, shop.addrs["gateway"])
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, customer := c.signup("etcd@example.com")
	if o := placeAndWait(t, c, customer, orderBody(catalog["PLANT-010"].ID, 1, goodCard)); o["status"] != "COMPLETED" {
		t.Fatalf("order through services found in etcd ended %v (%v), want COMPLETED", o["status"], o["cancel_reason"])
	}

	if got := registryListing(t, c, admin); !equalListing(got, want) {
		t.Errorf("GET /api/v1/registry/services = %v, want what etcd holds: %v", got, want)
	}
	c.must(403, "GET", "/api/v1/registry/services", customer, nil)

	var consoleSaw map[string][]string
	watch(t, shop.addrs["gateway"], admin, func(event string, data []byte) bool {
		if event != "stats" {
			return false
		}
		var st consoleStats
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		consoleSaw = map[string][]string{}
		for name, s := range st.Services {
			for _, in := range s.Instances {
				consoleSaw[name] = append(consoleSaw[name], in.Address)
			}
		}
		return equalListing(consoleSaw, want)
	})
	if !equalListing(consoleSaw, want) {
		t.Errorf("the console's stats list %v, want what etcd holds: %v", consoleSaw, want)
	}

	var faults struct {
		Items []struct {
			Address string
			Listed  bool
		}
	}
	c.must(200, "GET", "/api/v1/admin/faults", admin, nil).json(t, &faults)
	if len(faults.Items) != len(config.BusinessServices) {
		t.Errorf("fault listing has %d instances, want one of each of %v from etcd: %+v", len(faults.Items), config.BusinessServices, faults.Items)
	}

	// Down, payments stops renewing its lease, as a dead process would:
	// etcd drops it once the lease (the 3 s TTL) expires. Up, it is back.
	payments := want["payments"]
	c.must(200, "PUT", "/api/v1/admin/faults/payments", admin, map[string]any{"down": true})
	waitFor(t, 15*time.Second, "payments to drop out of etcd", func() bool { return len(inEtcd()["payments"]) == 0 })
	c.must(200, "PUT", "/api/v1/admin/faults/payments", admin, map[string]any{})
	waitFor(t, 15*time.Second, "payments to be back in etcd", func() bool {
		return slices.Equal(inEtcd()["payments"], payments)
	})
	if o := placeAndWait(t, c, customer, orderBody(catalog["PLANT-010"].ID, 1, goodCard)); o["status"] != "COMPLETED" {
		t.Errorf("order after payments came back ended %v (%v), want COMPLETED", o["status"], o["cancel_reason"])
	}

	// Stopping, every instance revokes its lease: nothing is left to expire.
	shop.stop()
	if left := inEtcd(); len(left) != 0 {
		t.Errorf("after the shop stopped etcd still holds %v", left)
	}
}

// instancesIn reads the addresses of the instances etcd holds under dir,
// by service, straight from etcd.
func instancesIn(t *testing.T, srv *etcdtest.Server, dir string) map[string][]string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("reading etcd: %v", err)
	}
	out := map[string][]string{}
	for _, kv := range resp.Kvs {
		var inst discovery.Instance
		if err := json.Unmarshal(kv.Value, &inst); err != nil {
			t.Fatalf("key %s holds %q, not an instance", kv.Key, kv.Value)
		}
		out[inst.Service] = append(out[inst.Service], inst.Address)
	}
	return out
}

// registryListing is the admin's listing, by service.
func registryListing(t *testing.T, c *client, admin string) map[string][]string {
	t.Helper()
	var listing struct {
		Services []struct {
			Name      string
			Instances []struct{ Address string }
		}
	}
	c.must(200, "GET", "/api/v1/registry/services", admin, nil).json(t, &listing)
	out := map[string][]string{}
	for _, s := range listing.Services {
		for _, in := range s.Instances {
			out[s.Name] = append(out[s.Name], in.Address)
		}
	}
	return out
}

// equalListing says whether two listings name the same addresses for the
// same services, in any order.
func equalListing(a, b map[string][]string) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool {
		return slices.Equal(slices.Sorted(slices.Values(x)), slices.Sorted(slices.Values(y)))
	})
}
