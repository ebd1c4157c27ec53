package main

import (
	"testing"
	"time"
)

// TestCrashAtTheOutboxFailpoints kills the shop's process at the two
// points where a dual write would lose or double an event: right after an
// event committed but before it was published, and right after the broker
// acknowledged it but before it was marked published. Started again, the
// shop must publish what committed (lost = 0) and apply a republished event
// once (one capture, one reservation, one shipment).
func TestCrashAtTheOutboxFailpoints(t *testing.T) {
	for _, point := range []string{"before-publish", "after-publish"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			// Orders publishes nothing until an order is placed, so the
			// seeding completes before the failpoint can fire.
			first := start(t, dir, []string{"MICROSHOP_FAILPOINT=orders:" + point}, "up")
			c := newClient(t, first.addrs["gateway"])
			catalog := seeded(t, c)
			_, token := c.signup("grace@example.com")
			// The crash may come before the answer does (the relay wakes at
			// the commit): then the outcome is unknown until it is retried
			// with its idempotency key.
			body := orderBody(catalog["HOOD-006"].ID, 1, goodCard)
			r, err := c.try("POST", "/api/v1/orders", token, body, "Idempotency-Key", "crash-1")
			select {
			case <-first.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("the failpoint orders:%s did not kill the process", point)
			}

			second := start(t, dir, nil, "up")
			c = newClient(t, second.addrs["gateway"])
			if err != nil || r.Status != 202 {
				r = c.must(202, "POST", "/api/v1/orders", token, body, "Idempotency-Key", "crash-1")
			}
			o := r.obj(t)
			end := waitEnded(t, c, token, o["id"].(string))
			if end["status"] != "COMPLETED" {
				t.Fatalf("order after the crash = %v, want COMPLETED", end)
			}
			admin := c.login(adminEmail, adminPassword)
			rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil)
			if rep.obj(t)["ok"] != true {
				t.Errorf("audit after a crash at %s: %s", point, rep.Body)
			}
			pays := items(t, c.must(200, "GET", "/api/v1/payments?order_id="+o["id"].(string), token, nil))
			ships := items(t, c.must(200, "GET", "/api/v1/shipments?order_id="+o["id"].(string), token, nil))
			t.Logf("failpoint=orders:%s committed_not_published_lost=0 payments=%d shipments=%d", point, len(pays), len(ships))
			if len(pays) != 1 || len(ships) != 1 {
				t.Errorf("payments %v and shipments %v, want one each", pays, ships)
			}
			if n := ordersOf(t, c, admin, o["user_id"].(string)); n != 1 {
				t.Errorf("%d orders after the retry, want 1", n)
			}
		})
	}
}
