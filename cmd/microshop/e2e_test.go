package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"
)

var address = map[string]string{"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"}

const (
	goodCard     = "4242424242424242"
	declinedCard = "4000000000000002"
)

var traceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

func orderBody(productID string, qty int, card string) map[string]any {
	return map[string]any{
		"items":            []map[string]any{{"product_id": productID, "quantity": qty}},
		"payment":          map[string]string{"card": card},
		"shipping_address": address,
	}
}

type product struct {
	ID         string `json:"id"`
	SKU        string `json:"sku"`
	PriceCents int64  `json:"price_cents"`
}

// seeded waits for the seeded catalog and returns its products by sku.
func seeded(t *testing.T, c *client) map[string]product {
	t.Helper()
	bySKU := map[string]product{}
	waitFor(t, 20*time.Second, "the seeded catalog with stock", func() bool {
		var list struct{ Items []product }
		r := c.call("GET", "/api/v1/products", "", nil)
		if r.Status != 200 {
			return false
		}
		r.json(t, &list)
		for _, p := range list.Items {
			bySKU[p.SKU] = p
		}
		if len(bySKU) < 10 {
			return false
		}
		return c.call("GET", "/api/v1/inventory/"+bySKU["PLANT-010"].ID, "", nil).Status == 200
	})
	return bySKU
}

type stock struct {
	Available int `json:"available"`
	Reserved  int `json:"reserved"`
}

func stockOf(t *testing.T, c *client, id string) stock {
	var s stock
	c.must(200, "GET", "/api/v1/inventory/"+id, "", nil).json(t, &s)
	return s
}

// placeAndWait places an order and waits for it to end.
func placeAndWait(t *testing.T, c *client, token string, body map[string]any) map[string]any {
	t.Helper()
	r := c.must(202, "POST", "/api/v1/orders", token, body)
	o := r.obj(t)
	if o["status"] != "PENDING" {
		t.Fatalf("new order status = %v, want PENDING", o["status"])
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/orders/"+o["id"].(string) {
		t.Fatalf("Location = %q", loc)
	}
	return waitEnded(t, c, token, o["id"].(string))
}

func waitEnded(t *testing.T, c *client, token, id string) map[string]any {
	t.Helper()
	var o map[string]any
	waitFor(t, 30*time.Second, "order "+id+" to end", func() bool {
		o = c.must(200, "GET", "/api/v1/orders/"+id, token, nil).obj(t)
		return o["status"] == "COMPLETED" || o["status"] == "CANCELLED"
	})
	return o
}

func items(t *testing.T, r response) []map[string]any {
	t.Helper()
	var page struct{ Items []map[string]any }
	r.json(t, &page)
	return page.Items
}

// TestShop drives the whole public API through the gateway of one running
// shop, as a customer, another customer, an admin and an anonymous client.
func TestShop(t *testing.T) {
	dir := t.TempDir()
	shop := start(t, dir, nil, "up")
	c := newClient(t, shop.addrs["gateway"])
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	aliceID, alice := c.signup("alice@example.com")
	bobID, bob := c.signup("bob@example.com")

	t.Run("ops endpoints on the gateway and every service", func(t *testing.T) {
		for name, base := range shop.addrs {
			if name == "broker" {
				continue
			}
			sc := newClient(t, base)
			h := sc.must(200, "GET", "/healthz", "", nil).obj(t)
			if h["status"] != "UP" {
				t.Errorf("%s /healthz = %v", name, h)
			}
			if checks, _ := h["checks"].(map[string]any); name != "gateway" && name != "registry" && checks["db"] != "UP" {
				t.Errorf("%s /healthz has no db check: %v", name, h)
			}
			sc.must(200, "GET", "/ready", "", nil)
			m := sc.must(200, "GET", "/metrics", "", nil)
			if !strings.Contains(string(m.Body), "http_requests_total") {
				t.Errorf("%s /metrics lacks http_requests_total", name)
			}
		}
	})

	t.Run("every answer carries a request id; errors are problem details", func(t *testing.T) {
		r := c.must(404, "GET", "/api/v1/products/no-such-product", "", nil)
		if r.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}
		// W3C trace context: version-traceid-spanid-flags, the trace sampled.
		for _, res := range []response{r, c.must(200, "GET", "/api/v1/products", "", nil)} {
			if tp := res.Header.Get("Traceparent"); !traceparent.MatchString(tp) {
				t.Errorf("traceparent %q is not W3C trace context", tp)
			}
		}
		// A caller's trace is continued, not replaced.
		const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		got := c.must(200, "GET", "/api/v1/products", "", nil, "traceparent", caller).Header.Get("Traceparent")
		if !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
			t.Errorf("traceparent %q does not continue the caller's trace", got)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("content type = %q", ct)
		}
		p := r.obj(t)
		if p["status"] != float64(404) || p["title"] == "" {
			t.Errorf("problem = %v", p)
		}
		// Internal routes are not routed by the gateway.
		c.unchecked().must(404, "POST", "/internal/v1/charges", "", map[string]any{"order_id": "x"})
	})

	t.Run("users: sign up, log in, versions", func(t *testing.T) {
		c.must(409, "POST", "/api/v1/users", "", map[string]string{"email": "alice@example.com", "name": "A", "password": "another-password"})
		c.must(422, "POST", "/api/v1/users", "", map[string]string{"email": "not-an-email", "name": "A", "password": "password123"})
		c.must(400, "POST", "/api/v1/users", "", map[string]any{"email": "eve@example.com", "name": "Eve", "password": "password123", "role": "admin"})
		c.must(415, "POST", "/api/v1/users", "", "email=x", "Content-Type", "text/plain")
		wrong := c.must(401, "POST", "/api/v1/auth/login", "", map[string]string{"email": "alice@example.com", "password": "wrong-password"})
		unknown := c.must(401, "POST", "/api/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "wrong-password"})
		if wrong.obj(t)["detail"] != unknown.obj(t)["detail"] {
			t.Error("unknown user and wrong password answer differently")
		}
		me := c.must(200, "GET", "/api/v1/users/me", alice, nil).obj(t)
		if me["id"] != aliceID {
			t.Errorf("me = %v", me)
		}
		c.must(401, "GET", "/api/v1/users/me", "", nil)
		c.must(401, "GET", "/api/v1/users/me", alice+"x", nil)
		v1 := c.must(200, "GET", "/api/v1/users/"+aliceID, alice, nil).obj(t)
		if _, has := v1["email"]; has || v1["name"] == "" {
			t.Errorf("v1 = %v, want id and name only", v1)
		}
		v2 := c.must(200, "GET", "/api/v2/users/"+aliceID, alice, nil).obj(t)
		if v2["email"] != "alice@example.com" {
			t.Errorf("v2 = %v", v2)
		}
		neg := c.must(200, "GET", "/api/users/"+aliceID, alice, nil, "Accept", "application/vnd.microshop.users.v2+json")
		if neg.obj(t)["email"] != "alice@example.com" || neg.Header.Get("Content-Type") != "application/vnd.microshop.users.v2+json" {
			t.Errorf("Accept v2 = %s %s", neg.Header.Get("Content-Type"), neg.Body)
		}
		if _, has := c.must(200, "GET", "/api/users/"+aliceID, alice, nil, "Accept", "application/vnd.microshop.users.v1+json").obj(t)["email"]; has {
			t.Error("Accept v1 returned the email")
		}
		if _, has := c.must(200, "GET", "/api/users/"+aliceID, alice, nil).obj(t)["email"]; has {
			t.Error("no vendor type returned the email")
		}
		c.must(403, "GET", "/api/v1/users/"+aliceID, bob, nil)
		c.must(403, "GET", "/api/v2/users/"+aliceID, bob, nil)
		c.must(200, "GET", "/api/v2/users/"+aliceID, admin, nil)
		keys := c.must(200, "GET", "/.well-known/jwks.json", "", nil).obj(t)
		if k, _ := keys["keys"].([]any); len(k) != 2 || k[0].(map[string]any)["kid"] == "" { // the current key and the next
			t.Errorf("jwks = %v", keys)
		}
	})

	t.Run("catalog: seeded, v1 and v2, admin only writes", func(t *testing.T) {
		if len(catalog) < 8 {
			t.Fatalf("seeded %d products, want at least 8", len(catalog))
		}
		mug := catalog["MUG-001"]
		v2 := c.must(200, "GET", "/api/v2/products/"+mug.ID, "", nil).obj(t)
		if v2["description"] == "" || v2["category"] != "kitchen" || v2["price_cents"] != float64(1299) {
			t.Errorf("v2 product = %v", v2)
		}
		v1 := c.must(200, "GET", "/api/v1/products/"+mug.ID, "", nil).obj(t)
		if _, has := v1["description"]; has {
			t.Errorf("v1 product has v2 fields: %v", v1)
		}
		np := map[string]any{"sku": "E2E-1", "name": "Test Product", "description": "d", "category": "test", "price_cents": 100, "currency": "USD"}
		c.must(401, "POST", "/api/v1/products", "", np)
		c.must(403, "POST", "/api/v1/products", alice, np)
		c.must(201, "POST", "/api/v1/products", admin, np)
		c.must(409, "POST", "/api/v1/products", admin, np)
		np["sku"], np["price_cents"] = "E2E-2", -5
		c.must(422, "POST", "/api/v1/products", admin, np)
	})

	t.Run("inventory: read by anyone, set by admins", func(t *testing.T) {
		id := catalog["LAMP-007"].ID
		s := stockOf(t, c, id)
		if s.Available != 150 || s.Reserved != 0 {
			t.Errorf("seeded stock = %+v, want 150 available", s)
		}
		c.must(403, "PUT", "/api/v1/inventory/"+id, alice, map[string]int{"available": 1})
		c.must(422, "PUT", "/api/v1/inventory/"+id, admin, map[string]int{"available": -1})
		c.must(200, "PUT", "/api/v1/inventory/"+id, admin, map[string]int{"available": 160})
		if got := stockOf(t, c, id).Available; got != 160 {
			t.Errorf("available after restock = %d", got)
		}
	})

	t.Run("checkout completes", func(t *testing.T) {
		mug := catalog["MUG-001"]
		before := stockOf(t, c, mug.ID)
		began := time.Now()
		o := placeAndWait(t, c, alice, orderBody(mug.ID, 3, goodCard))
		t.Logf("checkout from POST to COMPLETED seen: %v (polling every 20 ms)", time.Since(began).Round(time.Millisecond))
		checkTraceCrossesTheBroker(t, dir, o["id"].(string))
		if o["status"] != "COMPLETED" || o["saga"] != "orchestration" || o["total_cents"] != float64(3*1299) || o["user_id"] != aliceID {
			t.Fatalf("order = %v", o)
		}
		id := o["id"].(string)
		pays := items(t, c.must(200, "GET", "/api/v1/payments?order_id="+id, alice, nil))
		if len(pays) != 1 || pays[0]["status"] != "CAPTURED" || pays[0]["amount_cents"] != float64(3*1299) {
			t.Errorf("payments = %v, want one capture of the total", pays)
		}
		ships := items(t, c.must(200, "GET", "/api/v1/shipments?order_id="+id, alice, nil))
		if len(ships) != 1 || ships[0]["status"] != "SCHEDULED" {
			t.Errorf("shipments = %v, want one scheduled", ships)
		}
		after := stockOf(t, c, mug.ID)
		if after.Available != before.Available-3 || after.Reserved != before.Reserved {
			t.Errorf("stock %+v -> %+v, want 3 fewer available and nothing left reserved", before, after)
		}
		// Another customer sees none of it.
		c.must(404, "GET", "/api/v1/orders/"+id, bob, nil)
		if got := items(t, c.must(200, "GET", "/api/v1/payments?order_id="+id, bob, nil)); len(got) != 0 {
			t.Errorf("bob sees alice's payments: %v", got)
		}
		if got := items(t, c.must(200, "GET", "/api/v1/shipments?order_id="+id, bob, nil)); len(got) != 0 {
			t.Errorf("bob sees alice's shipments: %v", got)
		}
		c.must(200, "GET", "/api/v1/orders/"+id, admin, nil)
		var saga struct {
			Steps []struct{ Step, Result string }
		}
		c.must(200, "GET", "/api/v1/orders/"+id+"/saga", alice, nil).json(t, &saga)
		var got []string
		for _, s := range saga.Steps {
			got = append(got, s.Step+":"+s.Result)
		}
		want := "charge:sent charge:ok reserve:sent reserve:ok ship:sent ship:ok commit:sent commit:ok"
		if strings.Join(got, " ") != want {
			t.Errorf("saga history = %v, want %s", got, want)
		}
	})

	t.Run("declined card cancels with nothing captured and stock untouched", func(t *testing.T) {
		tee := catalog["TEE-002"]
		before := stockOf(t, c, tee.ID)
		o := placeAndWait(t, c, alice, orderBody(tee.ID, 1, declinedCard))
		if o["status"] != "CANCELLED" || o["cancel_reason"] == "" {
			t.Fatalf("order = %v, want CANCELLED with a reason", o)
		}
		for _, p := range items(t, c.must(200, "GET", "/api/v1/payments?order_id="+o["id"].(string), alice, nil)) {
			if p["status"] == "CAPTURED" {
				t.Errorf("declined order has a capture: %v", p)
			}
		}
		if ships := items(t, c.must(200, "GET", "/api/v1/shipments?order_id="+o["id"].(string), alice, nil)); len(ships) != 0 && ships[0]["status"] == "SCHEDULED" {
			t.Errorf("declined order was shipped: %v", ships)
		}
		if after := stockOf(t, c, tee.ID); after != before {
			t.Errorf("stock %+v -> %+v, want untouched", before, after)
		}
	})

	t.Run("short stock cancels with the payment refunded and stock untouched", func(t *testing.T) {
		cactus := catalog["PLANT-010"]
		before := stockOf(t, c, cactus.ID)
		o := placeAndWait(t, c, alice, orderBody(cactus.ID, before.Available+1, goodCard))
		if o["status"] != "CANCELLED" {
			t.Fatalf("order = %v, want CANCELLED", o)
		}
		pays := items(t, c.must(200, "GET", "/api/v1/payments?order_id="+o["id"].(string), alice, nil))
		if len(pays) != 1 || pays[0]["status"] != "REFUNDED" {
			t.Errorf("payments = %v, want one refunded", pays)
		}
		if after := stockOf(t, c, cactus.ID); after != before {
			t.Errorf("stock %+v -> %+v, want untouched", before, after)
		}
	})

	t.Run("every saga style ends every outcome the same way", func(t *testing.T) {
		for _, mode := range []string{"choreography", "parallel", "orchestration"} {
			c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
			checkStyle(t, c, alice, mode, catalog)
		}
		rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil)
		if rep.obj(t)["ok"] != true {
			t.Errorf("audit after every style: %s", rep.Body)
		}
	})

	t.Run("poison messages end in the dead letters; good traffic flows", func(t *testing.T) {
		nc, err := nats.Connect(shop.addrs["broker"])
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		// Unreadable bytes, and a readable command that can never apply (it
		// names no saga style).
		if _, err := js.Publish(ctx, "payments.command.charge", []byte("{not an event")); err != nil {
			t.Fatal(err)
		}
		bad, _ := json.Marshal(map[string]any{"id": "poison-1", "type": "Command", "version": 1, "source": "e2e", "time": time.Now(),
			"topic": "payments.command.charge", "key": "nobody", "payload": map[string]string{"order_id": "nobody"}})
		if _, err := js.Publish(ctx, "payments.command.charge", bad); err != nil {
			t.Fatal(err)
		}
		good := placeAndWait(t, c, alice, orderBody(catalog["MUG-001"].ID, 1, goodCard))
		if good["status"] != "COMPLETED" {
			t.Errorf("an order placed beside the poison ended %v", good["status"])
		}
		type letter struct {
			Service  string `json:"service"`
			ID       string `json:"id"`
			EventID  string `json:"event_id"`
			Attempts int    `json:"attempts"`
		}
		var letters []letter
		waitFor(t, 20*time.Second, "both poison messages in the dead letters", func() bool {
			var page struct{ Items []letter }
			c.must(200, "GET", "/api/v1/admin/dlq", admin, nil).json(t, &page)
			letters = page.Items
			return len(letters) >= 2
		})
		var unreadable, failing int
		for _, l := range letters {
			switch {
			case l.Service == "payments" && l.EventID == "" && l.Attempts == 0:
				unreadable++
			case l.Service == "payments" && l.EventID == "poison-1" && l.Attempts == 5:
				failing++
				// Replaying it fails again and keeps it.
				c.must(409, "POST", "/api/v1/admin/dlq/payments/"+l.ID+"/replay", admin, nil)
			}
		}
		if unreadable != 1 || failing != 1 || len(letters) != 2 {
			t.Errorf("dead letters = %+v, want the unreadable one (0 attempts) and the failing one after exactly 5 attempts", letters)
		}
		c.must(403, "GET", "/api/v1/admin/dlq", alice, nil)
	})

	t.Run("a price change reaches orders by event; placed orders keep their price", func(t *testing.T) {
		note := catalog["NOTE-009"]
		before := placeAndWait(t, c, alice, orderBody(note.ID, 1, declinedCard))
		c.must(200, "PATCH", "/api/v1/products/"+note.ID, admin, map[string]int{"price_cents": 1555})
		// Orders learns the new price from ProductPriceChanged, not by
		// asking the catalog: wait until a new order is priced with it.
		waitFor(t, 10*time.Second, "orders to price with the new price", func() bool {
			o := c.must(202, "POST", "/api/v1/orders", alice, orderBody(note.ID, 1, declinedCard)).obj(t)
			return o["total_cents"] == float64(1555)
		})
		again := c.must(200, "GET", "/api/v1/orders/"+before["id"].(string), alice, nil).obj(t)
		if again["total_cents"] != float64(note.PriceCents) {
			t.Errorf("an order placed before the change now totals %v, want its price %d", again["total_cents"], note.PriceCents)
		}
	})

	t.Run("bad orders are refused and change nothing", func(t *testing.T) {
		mug := catalog["MUG-001"].ID
		before := ordersOf(t, c, admin, aliceID)
		bad := []struct {
			name string
			body any
			want int
		}{
			{"no items", map[string]any{"items": []any{}, "payment": map[string]string{"card": goodCard}, "shipping_address": address}, 422},
			{"zero quantity", orderBody(mug, 0, goodCard), 422},
			{"negative quantity", orderBody(mug, -2, goodCard), 422},
			{"huge quantity", orderBody(mug, 1<<40, goodCard), 422},
			{"unknown product", orderBody("no-such-product", 1, goodCard), 422},
			{"bad card", orderBody(mug, 1, "abc"), 422},
			{"injection in product id", orderBody("' OR 1=1 --", 1, goodCard), 422},
			{"NoSQL operator", map[string]any{"items": []map[string]any{{"product_id": map[string]string{"$ne": ""}, "quantity": 1}}, "payment": map[string]string{"card": goodCard}, "shipping_address": address}, 400},
			{"unknown field", map[string]any{"items": []map[string]any{{"product_id": mug, "quantity": 1}}, "payment": map[string]string{"card": goodCard}, "shipping_address": address, "total_cents": 1}, 400},
			{"malformed JSON", `{"items": [`, 400},
		}
		for _, b := range bad {
			if r := c.call("POST", "/api/v1/orders", alice, b.body); r.Status != b.want {
				t.Errorf("%s: status %d %s, want %d", b.name, r.Status, r.Body, b.want)
			}
		}
		c.must(401, "POST", "/api/v1/orders", "", orderBody(mug, 1, goodCard))
		if after := ordersOf(t, c, admin, aliceID); after != before {
			t.Errorf("orders %d -> %d after refused requests", before, after)
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		mug := catalog["MUG-001"].ID
		key := "e2e-key-1"
		first := c.must(202, "POST", "/api/v1/orders", bob, orderBody(mug, 1, goodCard), "Idempotency-Key", key).obj(t)
		again := c.must(202, "POST", "/api/v1/orders", bob, orderBody(mug, 1, goodCard), "Idempotency-Key", key)
		if again.obj(t)["id"] != first["id"] || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry answered %s, want the first order %v", again.Body, first["id"])
		}
		c.must(422, "POST", "/api/v1/orders", bob, orderBody(mug, 2, goodCard), "Idempotency-Key", key)
		waitEnded(t, c, bob, first["id"].(string))
		if n := ordersOf(t, c, admin, bobID); n != 1 {
			t.Errorf("bob has %d orders, want 1", n)
		}
		// Concurrent retries with one key still make one order.
		var wg sync.WaitGroup
		ids := make([]string, 8)
		for i := range ids {
			wg.Go(func() {
				r := c.call("POST", "/api/v1/orders", bob, orderBody(mug, 1, goodCard), "Idempotency-Key", "e2e-key-2")
				if r.Status == 202 {
					ids[i] = r.obj(t)["id"].(string)
				}
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("concurrent retries made orders %v, want one", ids)
			}
		}
	})

	t.Run("order lists are the caller's, newest first", func(t *testing.T) {
		// The listing is the read model, built from events: wait until it
		// has caught up with every order alice placed.
		var mine []map[string]any
		want := ordersOf(t, c, admin, aliceID)
		waitFor(t, 10*time.Second, "the read model to list all of alice's orders", func() bool {
			mine = items(t, c.must(200, "GET", "/api/v1/orders?limit=1000", alice, nil))
			return len(mine) == want
		})
		if len(mine) < 3 {
			t.Fatalf("alice has %d orders", len(mine))
		}
		for i := 1; i < len(mine); i++ {
			if mine[i]["user_id"] != aliceID || mine[i-1]["created_at"].(string) < mine[i]["created_at"].(string) {
				t.Fatalf("list not alice's newest first: %v", mine)
			}
		}
		viaUser := items(t, c.must(200, "GET", "/api/v1/users/"+aliceID+"/orders?limit=1000", alice, nil))
		if len(viaUser) != len(mine) {
			t.Errorf("/users/{id}/orders = %d orders, /orders = %d", len(viaUser), len(mine))
		}
		c.must(403, "GET", "/api/v1/users/"+aliceID+"/orders", bob, nil)
		// Dropped and rebuilt from the event log, the read model lists the same.
		rebuilt := c.must(200, "POST", "/api/v1/admin/read-model/rebuild", admin, nil).obj(t)
		if rebuilt["events"].(float64) < float64(len(mine)) {
			t.Errorf("rebuild applied %v events for %d orders", rebuilt["events"], len(mine))
		}
		again := items(t, c.must(200, "GET", "/api/v1/orders?limit=1000", alice, nil))
		if len(again) != len(mine) {
			t.Fatalf("after a rebuild the listing has %d orders, before %d", len(again), len(mine))
		}
		for i := range mine {
			if again[i]["id"] != mine[i]["id"] || again[i]["status"] != mine[i]["status"] || again[i]["total_cents"] != mine[i]["total_cents"] {
				t.Errorf("rebuilt view %v differs from %v", again[i], mine[i])
			}
		}
		c.must(403, "POST", "/api/v1/admin/read-model/rebuild", alice, nil)
		c.must(200, "GET", "/api/v1/users/"+aliceID+"/orders", admin, nil)
	})

	t.Run("admin: settings, registry, audit", func(t *testing.T) {
		c.must(403, "GET", "/api/v1/admin/settings", alice, nil)
		c.must(401, "GET", "/api/v1/admin/settings", "", nil)
		s := c.must(200, "GET", "/api/v1/admin/settings", admin, nil).obj(t)
		if s["saga_mode"] != "orchestration" {
			t.Errorf("settings = %v", s)
		}
		c.must(422, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": "improvised"})
		c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": "orchestration"})
		c.must(403, "PUT", "/api/v1/admin/settings", alice, map[string]string{"saga_mode": "orchestration"})

		c.must(403, "GET", "/api/v1/registry/services", alice, nil)
		var reg struct {
			Services []struct {
				Name      string
				Instances []struct {
					ID, Address string
					Healthy     bool
				}
			}
		}
		c.must(200, "GET", "/api/v1/registry/services", admin, nil).json(t, &reg)
		names := map[string]bool{}
		for _, s := range reg.Services {
			if len(s.Instances) > 0 && s.Instances[0].Healthy {
				names[s.Name] = true
			}
		}
		for _, want := range []string{"registry", "gateway", "users", "catalog", "inventory", "orders", "payments", "shipping"} {
			if !names[want] {
				t.Errorf("registry lacks a healthy %s: %+v", want, reg)
			}
		}

		c.must(403, "GET", "/api/v1/admin/audit", alice, nil)
		rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil).obj(t)
		if rep["ok"] != true {
			t.Errorf("audit = %s", c.call("GET", "/api/v1/admin/audit", admin, nil).Body)
		}
	})

	t.Run("a second instance gets its share", func(t *testing.T) {
		second := start(t, dir, []string{"MICROSHOP_REGISTRY_URL=" + shop.addrs["registry"], "MICROSHOP_BROKER_URL=" + shop.addrs["broker"]}, "serve", "--services=payments")
		waitFor(t, 10*time.Second, "two payments instances", func() bool {
			var reg struct {
				Services []struct {
					Name      string
					Instances []any
				}
			}
			c.must(200, "GET", "/api/v1/registry/services", admin, nil).json(t, &reg)
			for _, s := range reg.Services {
				if s.Name == "payments" {
					return len(s.Instances) == 2
				}
			}
			return false
		})
		time.Sleep(1100 * time.Millisecond) // resolutions are cached for a second
		mug := catalog["MUG-001"].ID
		for range 6 {
			c.must(202, "POST", "/api/v1/orders", bob, orderBody(mug, 1, goodCard))
		}
		sc := newClient(t, second.addrs["payments"])
		// Calls find it through the registry (orders tokenizes cards over
		// HTTP), and it shares the payments consumer group on the bus.
		waitFor(t, 20*time.Second, "the second instance to serve calls and events", func() bool {
			m := string(sc.must(200, "GET", "/metrics", "", nil).Body)
			return strings.Contains(m, `route="POST /internal/v1/cards"`) && strings.Contains(m, `inbox_applied_total{group="payments"`)
		})
		// Stopping it drops it from the registry at once.
		second.stop()
		waitFor(t, 5*time.Second, "the stopped instance to leave", func() bool {
			var reg struct {
				Services []struct {
					Name      string
					Instances []any
				}
			}
			c.must(200, "GET", "/api/v1/registry/services", admin, nil).json(t, &reg)
			for _, s := range reg.Services {
				if s.Name == "payments" {
					return len(s.Instances) == 1
				}
			}
			return false
		})
	})
}

// TestRestartKeepsEverything stops the shop gracefully and starts it again
// on the same data directory: users, products, orders and tokens survive.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	first := start(t, dir, nil, "up")
	c := newClient(t, first.addrs["gateway"])
	catalog := seeded(t, c)
	_, token := c.signup("carol@example.com")
	o := placeAndWait(t, c, token, orderBody(catalog["BOOK-003"].ID, 1, goodCard))
	first.stop()

	second := start(t, dir, nil, "up")
	c = newClient(t, second.addrs["gateway"])
	if got := c.must(200, "GET", "/api/v1/orders/"+o["id"].(string), token, nil).obj(t); got["status"] != "COMPLETED" {
		t.Errorf("order after restart = %v", got)
	}
	c.login("carol@example.com", "password-carol@example.com")
	var list struct{ Items []product }
	c.must(200, "GET", "/api/v1/products?limit=1000", "", nil).json(t, &list)
	if len(list.Items) != len(catalog) {
		t.Errorf("products after restart = %d, want %d (seeded once)", len(list.Items), len(catalog))
	}
}

// TestKillDashNineMidCheckout kills the shop with SIGKILL while checkouts
// are being placed and run, starts it again, and checks that every order the
// shop accepted ends, none twice, and the invariants hold. A request cut off
// by the kill has an unknown outcome: it is retried with its idempotency key,
// as a client would, and must not make a second order.
func TestKillDashNineMidCheckout(t *testing.T) {
	dir := t.TempDir()
	first := start(t, dir, nil, "up")
	c := newClient(t, first.addrs["gateway"]).unchecked() // a killed server answers nothing documented
	catalog := seeded(t, c)
	daveID, token := c.signup("dave@example.com")
	cards := []string{goodCard, goodCard, goodCard, declinedCard}
	skus := []string{"MUG-001", "TEE-002", "STICK-005", "PLANT-010"}
	body := func(i int) map[string]any {
		return orderBody(catalog[skus[i%len(skus)]].ID, 1+i%3, cards[i%len(cards)])
	}
	// Every saga style is in flight at the kill: the style rotates as the
	// orders are placed.
	admin := c.login(adminEmail, adminPassword)
	modes := []string{"orchestration", "choreography", "parallel"}
	const killAfter = 45
	var (
		mu       sync.Mutex
		accepted = map[int]string{} // request number -> order id
		unknown  []int              // requests the kill cut off
		next     int
		wg       sync.WaitGroup
		killed   = make(chan struct{})
	)
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				select {
				case <-killed:
					return
				default:
				}
				if i%5 == 0 {
					c.try("PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": modes[(i/5)%3]})
				}
				r, err := c.try("POST", "/api/v1/orders", token, body(i), "Idempotency-Key", fmt.Sprintf("kill-%d", i))
				mu.Lock()
				switch {
				case err != nil:
					unknown = append(unknown, i)
				case r.Status == 202:
					accepted[i] = r.obj(t)["id"].(string)
				default:
					t.Errorf("order %d: %d %s", i, r.Status, r.Body)
				}
				n := len(accepted)
				mu.Unlock()
				if err != nil {
					return
				}
				if n == killAfter {
					first.kill()
					close(killed)
				}
			}
		})
	}
	wg.Wait()
	restarted := time.Now()

	second := start(t, dir, nil, "up")
	c = newClient(t, second.addrs["gateway"])
	for _, i := range unknown { // reconcile each unknown outcome by its key
		r := c.call("POST", "/api/v1/orders", token, body(i), "Idempotency-Key", fmt.Sprintf("kill-%d", i))
		if r.Status != 202 {
			t.Fatalf("retrying order %d: %d %s", i, r.Status, r.Body)
		}
		accepted[i] = r.obj(t)["id"].(string)
	}
	completed, cancelled, recovered := 0, 0, 0
	for _, id := range accepted {
		switch waitEnded(t, c, token, id)["status"] {
		case "COMPLETED":
			completed++
		case "CANCELLED":
			cancelled++
		}
		var saga struct {
			Steps []struct{ At time.Time }
		}
		c.must(200, "GET", "/api/v1/orders/"+id+"/saga", token, nil).json(t, &saga)
		if n := len(saga.Steps); n > 0 && saga.Steps[n-1].At.After(restarted) {
			recovered++
		}
	}
	admin = c.login(adminEmail, adminPassword)
	listed := ordersOf(t, c, admin, daveID)
	rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil)
	var audit struct {
		OK     bool
		Counts map[string]int
	}
	rep.json(t, &audit)
	lost := len(accepted) - completed - cancelled
	duplicated := listed - len(accepted)
	t.Logf("orders=%d completed=%d cancelled=%d unknown_reconciled=%d recovered=%d lost=%d duplicated=%d double_charged=%d stock_mismatch=%d audit_ok=%v",
		len(accepted), completed, cancelled, len(unknown), recovered, lost, duplicated, audit.Counts["double_charged"], audit.Counts["stock_mismatch"], audit.OK)
	if lost != 0 || duplicated != 0 {
		t.Errorf("lost %d and duplicated %d orders", lost, duplicated)
	}
	if !audit.OK {
		t.Errorf("audit after kill -9: %s", rep.Body)
	}
	if recovered == 0 {
		t.Errorf("no saga was in flight at the kill: the test proved nothing about recovery")
	}
	if _, err := os.Stat(filepath.Join(dir, "orders.db")); err != nil {
		t.Errorf("orders database not in the data dir: %v", err)
	}
}

// checkStyle places a completing, a declined and a short-stock order under
// the saga style now set, and checks each ends as DESIGN.md says, under that
// style.
func checkStyle(t *testing.T, c *client, token, mode string, catalog map[string]product) {
	t.Helper()
	mug, cactus := catalog["MUG-001"], catalog["PLANT-010"]
	mugBefore, cactusBefore := stockOf(t, c, mug.ID), stockOf(t, c, cactus.ID)

	done := placeAndWait(t, c, token, orderBody(mug.ID, 2, goodCard))
	declined := placeAndWait(t, c, token, orderBody(mug.ID, 1, declinedCard))
	short := placeAndWait(t, c, token, orderBody(cactus.ID, cactusBefore.Available+1, goodCard))

	for _, o := range []map[string]any{done, declined, short} {
		if o["saga"] != mode {
			t.Errorf("%s: order ran under %v", mode, o["saga"])
		}
	}
	payments := func(o map[string]any) []map[string]any {
		return items(t, c.must(200, "GET", "/api/v1/payments?order_id="+o["id"].(string), token, nil))
	}
	shipments := func(o map[string]any) []map[string]any {
		return items(t, c.must(200, "GET", "/api/v1/shipments?order_id="+o["id"].(string), token, nil))
	}
	scheduled := func(o map[string]any) int {
		n := 0
		for _, s := range shipments(o) {
			if s["status"] == "SCHEDULED" {
				n++
			}
		}
		return n
	}
	if p := payments(done); done["status"] != "COMPLETED" || len(p) != 1 || p[0]["status"] != "CAPTURED" || scheduled(done) != 1 {
		t.Errorf("%s happy path: %v, payments %v, shipments %v", mode, done["status"], p, shipments(done))
	}
	for _, p := range payments(declined) {
		if p["status"] == "CAPTURED" {
			t.Errorf("%s declined card: captured %v", mode, p)
		}
	}
	if declined["status"] != "CANCELLED" || scheduled(declined) != 0 {
		t.Errorf("%s declined card: %v (%v), shipments %v", mode, declined["status"], declined["cancel_reason"], shipments(declined))
	}
	// Charged first in turn (choreography, orchestration), the short-stock
	// order is refunded. In parallel, the charge and the reservation race
	// (their events travel in different streams): when the reservation's
	// failure reaches payments first, the order's charge is voided before it
	// is made, and the customer has no payment to see (the order still waits
	// for that outcome before it ends). Either way nothing stays captured;
	// the audit checks it across services.
	p := payments(short)
	refunded := len(p) == 1 && p[0]["status"] == "REFUNDED"
	voided := mode == "parallel" && len(p) == 0
	if short["status"] != "CANCELLED" || !(refunded || voided) || scheduled(short) != 0 {
		t.Errorf("%s short stock: %v (%v), payments %v", mode, short["status"], short["cancel_reason"], p)
	}
	// Stock settles after the order ends (a release may follow the
	// cancellation), so wait for it rather than read it once.
	waitFor(t, 10*time.Second, mode+" stock to settle", func() bool {
		m, k := stockOf(t, c, mug.ID), stockOf(t, c, cactus.ID)
		return m.Available == mugBefore.Available-2 && m.Reserved == mugBefore.Reserved && k == cactusBefore
	})
}

// ordersOf counts a user's orders in the write model, through the admin
// listing: it is exact at once, where the customer's listing (the read model)
// follows the events.
func ordersOf(t *testing.T, c *client, admin, userID string) int {
	t.Helper()
	n, after := 0, ""
	for {
		var page struct {
			Items []map[string]any
			Next  string
		}
		c.must(200, "GET", "/api/v1/admin/orders?limit=1000&after="+after, admin, nil).json(t, &page)
		for _, o := range page.Items {
			if o["user_id"] == userID {
				n++
			}
		}
		if page.Next == "" {
			return n
		}
		after = page.Next
	}
}

// checkTraceCrossesTheBroker reads the order's OrderCreated from the orders
// service's outbox and checks it carries the trace of the request that
// placed it, so the consumers' work joins that trace.
func checkTraceCrossesTheBroker(t *testing.T, dataDir, orderID string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "orders.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var envelope string
	if err := db.QueryRow(`SELECT envelope FROM outbox WHERE type = 'OrderCreated' AND envelope LIKE ?`, "%"+orderID+"%").Scan(&envelope); err != nil {
		t.Fatalf("reading the OrderCreated of %s: %v", orderID, err)
	}
	var e struct {
		TraceParent string `json:"traceparent"`
	}
	if err := json.Unmarshal([]byte(envelope), &e); err != nil {
		t.Fatal(err)
	}
	if !traceparent.MatchString(e.TraceParent) {
		t.Errorf("OrderCreated carries traceparent %q, want the placing request's trace", e.TraceParent)
	}
}
