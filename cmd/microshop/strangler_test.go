package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The old API's shapes, as a client scripted against the monolith knows them.
type (
	oldProfile struct {
		CustomerID string `json:"customer_id"`
		Name       string `json:"name"`
		Email      string `json:"email"`
	}
	oldLine struct {
		ProductID      string `json:"product_id"`
		Qty            int    `json:"qty"`
		UnitPriceCents int64  `json:"unit_price_cents"`
	}
	oldOrder struct {
		OrderNo    string    `json:"order_no"`
		Status     string    `json:"status"`
		Lines      []oldLine `json:"lines"`
		TotalCents int64     `json:"total_cents"`
		Currency   string    `json:"currency"`
		PlacedAt   time.Time `json:"placed_at"`
	}
	facadeRoute struct {
		Route    string           `json:"route"`
		Target   string           `json:"target"`
		Service  string           `json:"service"`
		Moving   bool             `json:"moving"`
		Requests map[string]int64 `json:"requests"`
		Copied   int              `json:"copied"`
		Error    string           `json:"error"`
	}
)

var oldAddress = map[string]string{"name": "Grace Hopper", "line1": "1 Harbour Road", "city": "Arlington", "postal_code": "22201", "country": "US"}

// legacyClient is one customer of the old shop: it knows only the old API
// (/profile and /orders) and remembers what it was told, so that every
// answer can be checked against the answers before it.
type legacyClient struct {
	t        *testing.T
	c        *client
	id       string
	token    string
	name     string
	products []product
	orders   map[string]oldOrder // what POST /orders answered, by order_no
	placed   []string            // in the order placed
	ops      int
}

func (lc *legacyClient) fail(format string, args ...any) {
	lc.t.Helper()
	lc.t.Errorf("customer %s, step %d: %s", lc.id, lc.ops, fmt.Sprintf(format, args...))
}

// step does one thing a customer of the old shop does, in turn: read the
// profile, rename, order, list the orders, read one.
func (lc *legacyClient) step() {
	lc.t.Helper()
	lc.ops++
	switch lc.ops % 5 {
	case 0:
		lc.checkProfile()
	case 1:
		lc.name = fmt.Sprintf("Customer %s v%d", lc.id[len(lc.id)-4:], lc.ops)
		r := lc.c.call("PUT", "/profile", lc.token, map[string]string{"name": lc.name})
		var p oldProfile
		if r.Status != 200 {
			lc.fail("PUT /profile = %d %s", r.Status, r.Body)
			return
		}
		r.json(lc.t, &p)
		if p.Name != lc.name || p.CustomerID != lc.id {
			lc.fail("PUT /profile answered %+v", p)
		}
	case 2:
		prod := lc.products[lc.ops%len(lc.products)]
		qty := 1 + lc.ops%3
		r := lc.c.call("POST", "/orders", lc.token, map[string]any{
			"lines":       []map[string]any{{"product_id": prod.ID, "qty": qty}},
			"card_number": "4242424242424242",
			"deliver_to":  oldAddress,
		})
		if r.Status != 201 {
			lc.fail("POST /orders = %d %s", r.Status, r.Body)
			return
		}
		var o oldOrder
		r.json(lc.t, &o)
		want := []oldLine{{ProductID: prod.ID, Qty: qty, UnitPriceCents: prod.PriceCents}}
		if !slices.Equal(o.Lines, want) || o.TotalCents != int64(qty)*prod.PriceCents || (o.Status != "CONFIRMED" && o.Status != "PLACED") ||
			r.Header.Get("Location") != "/orders/"+o.OrderNo {
			lc.fail("POST /orders answered %+v (Location %q), want lines %+v", o, r.Header.Get("Location"), want)
		}
		lc.orders[o.OrderNo] = o
		lc.placed = append(lc.placed, o.OrderNo)
	case 3:
		lc.checkOrders(false)
	case 4:
		if len(lc.placed) == 0 {
			return
		}
		no := lc.placed[lc.ops%len(lc.placed)]
		r := lc.c.call("GET", "/orders/"+no, lc.token, nil)
		if r.Status != 200 {
			lc.fail("GET /orders/%s = %d %s", no, r.Status, r.Body)
			return
		}
		var o oldOrder
		r.json(lc.t, &o)
		lc.same(lc.orders[no], o)
	}
}

func (lc *legacyClient) checkProfile() {
	lc.t.Helper()
	r := lc.c.call("GET", "/profile", lc.token, nil)
	if r.Status != 200 {
		lc.fail("GET /profile = %d %s", r.Status, r.Body)
		return
	}
	var p oldProfile
	r.json(lc.t, &p)
	if p.CustomerID != lc.id || p.Name != lc.name || p.Email == "" {
		lc.fail("GET /profile = %+v, want name %q", p, lc.name)
	}
}

// same checks that an order reads as it was placed. Its status may only
// have gone on: an order placed the new way is PLACED until its saga ends.
func (lc *legacyClient) same(placed, got oldOrder) {
	lc.t.Helper()
	if got.OrderNo != placed.OrderNo || !slices.Equal(got.Lines, placed.Lines) || got.TotalCents != placed.TotalCents ||
		got.Currency != placed.Currency || !got.PlacedAt.Equal(placed.PlacedAt) {
		lc.fail("order %s reads %+v, was placed as %+v", placed.OrderNo, got, placed)
	}
	if got.Status != placed.Status && (placed.Status != "PLACED" || got.Status != "CONFIRMED") {
		lc.fail("order %s went from %s to %s", placed.OrderNo, placed.Status, got.Status)
	}
}

// checkOrders lists the customer's orders: every order placed is there, as
// placed, newest first. An order placed through the orders service reaches
// its listing (a read model) a moment after; final says the saga must be
// over, every order confirmed.
func (lc *legacyClient) checkOrders(final bool) bool {
	lc.t.Helper()
	r := lc.c.call("GET", "/orders", lc.token, nil)
	if r.Status != 200 {
		lc.fail("GET /orders = %d %s", r.Status, r.Body)
		return false
	}
	var list struct{ Orders []oldOrder }
	r.json(lc.t, &list)
	seen := map[string]oldOrder{}
	for i, o := range list.Orders {
		seen[o.OrderNo] = o
		if i > 0 && o.PlacedAt.After(list.Orders[i-1].PlacedAt) {
			lc.fail("GET /orders is not newest first at %s", o.OrderNo)
		}
	}
	complete := true
	for _, no := range lc.placed {
		o, ok := seen[no]
		switch {
		case !ok && lc.orders[no].Status == "PLACED":
			complete = false // in the read model in a moment
		case !ok:
			lc.fail("GET /orders lacks %s, placed in the monolith", no)
		default:
			lc.same(lc.orders[no], o)
			if final && o.Status != "CONFIRMED" {
				complete = false
			}
		}
	}
	if len(list.Orders) > len(lc.placed) {
		lc.fail("GET /orders lists %d orders; the customer placed %d", len(list.Orders), len(lc.placed))
	}
	return complete
}

// TestStranglerFigMovesEveryRouteUnderTraffic is issue 7's proof: customers
// scripted against the old API keep using it while the facade moves
// /profile to users and then /orders to orders; every answer is the one
// they expect, no request fails, and the new services own the data after.
// A restart keeps the routes where they moved.
func TestStranglerFigMovesEveryRouteUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, nil, "up")
	c := newClient(t, p.addrs["gateway"])
	bySKU := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	var products []product
	for _, sku := range []string{"PLANT-010", "MUG-001", "TEE-002"} {
		prod, ok := bySKU[sku]
		if !ok {
			t.Fatalf("no seeded product %s", sku)
		}
		// Plenty of stock: every order the customers place after the move
		// must complete, so that its answers stay the same.
		c.must(200, "PUT", "/api/v1/inventory/"+prod.ID, admin, map[string]int{"available": 100000})
		products = append(products, prod)
	}

	table := func() map[string]facadeRoute {
		t.Helper()
		var out struct{ Routes []facadeRoute }
		// Until the gateway has read the monolith's handovers, it cannot say
		// where the routes are (503): a moment after a start.
		var r response
		waitFor(t, 10*time.Second, "the facade's route table", func() bool {
			r = c.call("GET", "/api/v1/admin/facade", admin, nil)
			return r.Status != 503
		})
		if r.Status != 200 {
			t.Fatalf("GET /api/v1/admin/facade = %d %s", r.Status, r.Body)
		}
		r.json(t, &out)
		m := map[string]facadeRoute{}
		for _, r := range out.Routes {
			m[r.Route] = r
		}
		return m
	}
	initial := table()
	if len(initial) != 2 || initial["/profile"].Target != "legacy" || initial["/profile"].Service != "users" ||
		initial["/orders"].Target != "legacy" || initial["/orders"].Service != "orders" {
		t.Fatalf("the facade starts as %+v, want every route on the monolith", initial)
	}

	var customers []*legacyClient
	for i := range 4 {
		id, token := c.signup(fmt.Sprintf("old-customer-%d@example.com", i))
		customers = append(customers, &legacyClient{t: t, c: c, id: id, token: token, name: fmt.Sprintf("Test old-customer-%d@example.com", i),
			products: products, orders: map[string]oldOrder{}})
	}
	// Some history in the monolith before anything moves.
	for _, lc := range customers {
		for range 10 {
			lc.step()
		}
	}

	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		steps atomic.Int64
	)
	for _, lc := range customers {
		wg.Go(func() {
			for !stop.Load() && !t.Failed() {
				lc.step()
				steps.Add(1)
			}
		})
	}
	waitSteps := func(n int64) {
		from := steps.Load()
		waitFor(t, 30*time.Second, fmt.Sprintf("%d more steps of the customers", n), func() bool { return steps.Load() >= from+n || t.Failed() })
	}
	move := func(route, target string) {
		t.Helper()
		var st facadeRoute
		c.must(200, "PUT", "/api/v1/admin/facade/routes", admin, map[string]string{"route": route, "target": target}).json(t, &st)
		if st.Target != target || st.Moving || st.Copied == 0 || st.Error != "" {
			t.Errorf("after moving %s: %+v", route, st)
		}
		t.Logf("moved %s to %s under traffic, %d records copied", route, target, st.Copied)
	}
	waitSteps(40)
	move("/profile", "users")
	waitSteps(40)
	// A moved route does not move back, and a bad move changes nothing.
	c.must(409, "PUT", "/api/v1/admin/facade/routes", admin, map[string]string{"route": "/profile", "target": "legacy"})
	c.must(422, "PUT", "/api/v1/admin/facade/routes", admin, map[string]string{"route": "/orders", "target": "payments"})
	move("/orders", "orders")
	waitSteps(60)
	stop.Store(true)
	wg.Wait()

	moved := table()
	for route, service := range map[string]string{"/profile": "users", "/orders": "orders"} {
		r := moved[route]
		if r.Target != service || r.Requests["legacy"] == 0 || r.Requests[service] == 0 {
			t.Errorf("route %s after the moves: %+v, want traffic to the monolith and then to %s", route, r, service)
		}
	}
	// Every order ends confirmed, and the shop's invariants hold: the
	// monolith's orders are history in orders, with no payment, stock or
	// shipment of their own.
	for _, lc := range customers {
		waitFor(t, 30*time.Second, "every order of "+lc.id+" confirmed", func() bool { return lc.checkOrders(true) })
		lc.checkProfile()
	}
	var audit struct {
		OK     bool
		Checks []struct {
			Name, Detail string
			OK           bool
		}
		Counts map[string]int
	}
	waitFor(t, 30*time.Second, "the audit to pass", func() bool {
		c.must(200, "GET", "/api/v1/admin/audit", admin, nil).json(t, &audit)
		return audit.OK
	})
	if audit.Counts["imported"] == 0 {
		t.Errorf("the audit counts no imported orders: %+v", audit.Counts)
	}
	if t.Failed() {
		return
	}

	// A restart keeps the routes where they moved: the monolith's record of
	// its handovers wins over a configuration that says "legacy".
	p.stop()
	p = start(t, dir, []string{"MICROSHOP_FACADE_ROUTES=/profile=legacy,/orders=legacy"}, "up")
	c = newClient(t, p.addrs["gateway"])
	admin = c.login(adminEmail, adminPassword)
	after := table()
	if after["/profile"].Target != "users" || after["/orders"].Target != "orders" {
		t.Fatalf("after a restart: %+v", after)
	}
	for _, lc := range customers {
		lc.c = c
		lc.checkProfile()
		if !lc.checkOrders(true) {
			t.Errorf("customer %s: orders changed across the restart", lc.id)
		}
	}
}
