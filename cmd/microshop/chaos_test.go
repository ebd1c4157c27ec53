package main

import (
	"testing"
	"time"
)

// TestFaultsThroughTheAdminAPI breaks the shop through its own fault
// injection, as a person would from the console, and checks what DESIGN.md
// promises: the gateway's breaker opens and fails fast, product pages fall
// back to the last good copy, the breaker closes once the fault is gone,
// and a failing card provider makes sagas compensate, with the invariants
// intact throughout.
func TestFaultsThroughTheAdminAPI(t *testing.T) {
	shop := start(t, t.TempDir(), []string{"MICROSHOP_BREAKER_OPEN_TIMEOUT=300ms"}, "up")
	c := newClient(t, shop.addrs["gateway"]).unchecked() // injected 503s are not in the documents
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, token := c.signup("heidi@example.com")
	mug := catalog["MUG-001"].ID
	c.must(200, "GET", "/api/v1/products/"+mug, "", nil) // the gateway keeps a good copy

	c.must(200, "PUT", "/api/v1/admin/faults/catalog", admin, map[string]any{"error_rate": 1.0})
	statuses := map[int]int{}
	stale := 0
	for range 20 {
		r := c.call("GET", "/api/v1/products/"+mug, "", nil)
		statuses[r.Status]++
		if r.Header.Get("X-Microshop-Fallback") == "stale" {
			stale++
		}
	}
	gatewayCatalog := func() map[string]any {
		var rep struct{ Edges []map[string]any }
		c.must(200, "GET", "/api/v1/admin/resilience", admin, nil).json(t, &rep)
		for _, e := range rep.Edges {
			if e["from"] == "gateway" && e["to"] == "catalog" {
				return e
			}
		}
		return nil
	}
	edge := gatewayCatalog()
	t.Logf("faults: product reads=20 answered_200=%d stale=%d breaker=%v", statuses[200], stale, edge["state"])
	if statuses[200] != 20 || stale != 20 {
		t.Errorf("with catalog failing every request, product reads got %v (stale %d), want 20 stale 200s", statuses, stale)
	}
	// Open, or already half-open if the short open timeout passed since.
	if edge == nil || (edge["state"] != "open" && edge["state"] != "half-open") || edge["fallbacks"].(float64) < 1 {
		t.Errorf("gateway→catalog edge = %v, want its breaker opened and fallbacks served", edge)
	}
	if r := c.call("GET", "/api/v1/products", "", nil); r.Status != 503 || r.Header.Get("Retry-After") == "" {
		t.Errorf("the product list with the breaker open = %d (Retry-After %q), want 503 at once with Retry-After", r.Status, r.Header.Get("Retry-After"))
	}

	c.must(200, "PUT", "/api/v1/admin/faults/catalog", admin, map[string]any{})
	waitFor(t, 10*time.Second, "the breaker to close once catalog answers again", func() bool {
		r := c.call("GET", "/api/v1/products", "", nil)
		return r.Status == 200 && gatewayCatalog()["state"] == "closed"
	})

	// A card provider that fails: the charge declines after bounded tries,
	// and every style compensates; nothing is captured.
	c.must(200, "PUT", "/api/v1/admin/provider", admin, map[string]string{"mode": "fail"})
	for _, mode := range []string{"orchestration", "choreography", "parallel"} {
		c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
		o := placeAndWait(t, c, token, orderBody(mug, 1, goodCard))
		if o["status"] != "CANCELLED" {
			t.Errorf("%s with the provider failing: %v, want CANCELLED", mode, o["status"])
		}
	}
	c.must(200, "PUT", "/api/v1/admin/provider", admin, map[string]string{"mode": "ok"})
	if o := placeAndWait(t, c, token, orderBody(mug, 1, goodCard)); o["status"] != "COMPLETED" {
		t.Errorf("after the provider recovered: %v, want COMPLETED", o["status"])
	}
	if rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil); rep.obj(t)["ok"] != true {
		t.Errorf("audit after the faults: %s", rep.Body)
	}
	var dlq struct{ Items []any }
	c.must(200, "GET", "/api/v1/admin/dlq", admin, nil).json(t, &dlq)
	if len(dlq.Items) != 0 {
		t.Errorf("dead letters after the faults: %v, want none", dlq.Items)
	}
}
