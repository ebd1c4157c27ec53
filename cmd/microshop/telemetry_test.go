package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// consoleSpan is a span as the console API answers it.
type consoleSpan struct {
	TraceID  string `json:"trace_id"`
	SpanID   string `json:"span_id"`
	ParentID string `json:"parent_id"`
	Service  string `json:"service"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Peer     string `json:"peer"`
	Topic    string `json:"topic"`
	Status   string `json:"status"`
}

// TestOneCheckoutIsOneTrace places an order in each saga style and reads
// its trace back from the console: the request, every service's work, every
// publish and every delivery are spans of the one trace the order's
// response named, whatever the style.
func TestOneCheckoutIsOneTrace(t *testing.T) {
	shop := start(t, t.TempDir(), nil, "up")
	c := newClient(t, shop.addrs["gateway"])
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, token := c.signup("tracy@example.com")
	for _, mode := range []string{"choreography", "parallel", "orchestration"} {
		t.Run(mode, func(t *testing.T) {
			c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
			r := c.must(202, "POST", "/api/v1/orders", token, orderBody(catalog["MUG-001"].ID, 1, goodCard))
			traceID := strings.Split(r.Header.Get("Traceparent"), "-")[1]
			if o := waitEnded(t, c, token, r.obj(t)["id"].(string)); o["status"] != "COMPLETED" {
				t.Fatalf("order ended %v", o["status"])
			}
			want := []string{"gateway", "orders", "payments", "inventory", "shipping"}
			var spans []consoleSpan
			// The order ends before its last events are applied
			// everywhere: wait for every service's part.
			waitFor(t, 10*time.Second, "every service's spans in trace "+traceID, func() bool {
				res := c.call("GET", "/api/v1/console/traces/"+traceID, admin, nil)
				if res.Status != 200 {
					return false
				}
				var tr struct{ Spans []consoleSpan }
				res.json(t, &tr)
				spans = tr.Spans
				for _, svc := range want {
					if !slices.ContainsFunc(spans, func(s consoleSpan) bool {
						return s.Service == svc && s.Kind == "consumer" || s.Service == svc && svc == "gateway"
					}) {
						return false
					}
				}
				// Spans from other processes come in batches: wait until
				// every span's parent has come too.
				ids := map[string]bool{}
				for _, s := range spans {
					ids[s.SpanID] = true
				}
				orphans := 0
				for _, s := range spans {
					if s.ParentID != "" && !ids[s.ParentID] {
						orphans++
					}
				}
				return orphans == 0
			})
			kinds := map[string]int{}
			ids := map[string]bool{}
			for _, s := range spans {
				kinds[s.Kind]++
				ids[s.SpanID] = true
				if s.TraceID != traceID {
					t.Errorf("span %+v is not in trace %s", s, traceID)
				}
			}
			for _, k := range []string{"server", "client", "producer", "consumer"} {
				if kinds[k] == 0 {
					t.Errorf("trace has no %s span: %v", k, kinds)
				}
			}
			// Every span but the request's own hangs off another span of
			// the trace: nothing started a trace of its own on the way.
			roots := 0
			for _, s := range spans {
				if s.ParentID == "" || !ids[s.ParentID] {
					roots++
				}
			}
			if roots != 1 {
				t.Errorf("trace %s has %d roots, want 1 (the request)", traceID, roots)
			}
			t.Logf("%s: trace %s has %d spans (%v) from %d services, %d root", mode, traceID, len(spans), kinds, len(services(spans)), roots)
			// Each delivery continues the publish that sent it.
			for _, s := range spans {
				if s.Kind != "consumer" {
					continue
				}
				i := slices.IndexFunc(spans, func(p consoleSpan) bool { return p.SpanID == s.ParentID })
				if i < 0 || spans[i].Kind != "producer" || spans[i].Topic != s.Topic {
					t.Errorf("delivery %s of %s is not the child of its publish", s.Name, s.Topic)
				}
			}
		})
	}
}

// services lists the services that made spans.
func services(spans []consoleSpan) []string {
	var out []string
	for _, s := range spans {
		if !slices.Contains(out, s.Service) {
			out = append(out, s.Service)
		}
	}
	return out
}

// TestConsoleStreamsTheShop watches the console's stream as an admin
// while a customer browses: every service is reported up with its
// instances, and the browse arrives as spans from the gateway and catalog.
// Only admins may watch.
func TestConsoleStreamsTheShop(t *testing.T) {
	shop := start(t, t.TempDir(), nil, "up")
	base := shop.addrs["gateway"]
	c := newClient(t, base)
	seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, customer := c.signup("watcher@example.com")

	var top struct {
		Nodes []struct{ Name, Kind string }
		Edges []struct{ From, To, Kind string }
	}
	c.must(200, "GET", "/api/v1/console/topology", admin, nil).json(t, &top)
	if len(top.Nodes) != 10 || len(top.Edges) < 15 {
		t.Fatalf("topology has %d nodes and %d edges", len(top.Nodes), len(top.Edges))
	}
	c.must(403, "GET", "/api/v1/console/topology", customer, nil)

	for _, tok := range []string{"", customer} {
		req, _ := http.NewRequest("GET", base+"/api/v1/console/stream", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 && res.StatusCode != 403 {
			t.Errorf("stream for %q answered %d", tok, res.StatusCode)
		}
	}

	browse := make(chan struct{})
	go func() {
		defer close(browse)
		for range 5 {
			c.must(200, "GET", "/api/v1/products", customer, nil)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	defer func() { <-browse }()

	allUp, sawGateway, sawCatalog := false, false, false
	watch(t, base, admin, func(name string, data []byte) bool {
		switch name {
		case "span":
			var s consoleSpan
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatal(err)
			}
			sawGateway = sawGateway || s.Service == "gateway" && s.Kind == "client" && s.Peer == "catalog"
			sawCatalog = sawCatalog || s.Service == "catalog" && s.Kind == "server" && s.Name == "GET /api/v1/products"
		case "stats":
			var st consoleStats
			if err := json.Unmarshal(data, &st); err != nil {
				t.Fatal(err)
			}
			allUp = len(st.Services) == 10
			for svc, s := range st.Services {
				if s.Health != "up" || (svc != "broker" && len(s.Instances) == 0) {
					allUp = false
				}
			}
		}
		return allUp && sawGateway && sawCatalog
	})
	if !allUp || !sawGateway || !sawCatalog {
		t.Errorf("stream: every service up %v, gateway's call to catalog %v, catalog's answer %v", allUp, sawGateway, sawCatalog)
	}
}

// consoleStats is the part of the stream's stats the tests read.
type consoleStats struct {
	Services map[string]struct {
		Health    string
		Instances []struct{ Address string }
		Queued    float64
	}
	Broker struct{ Queued float64 }
}

// watch reads the console's stream as the admin until seen says it has
// seen enough, or 20 s pass.
func watch(t *testing.T, base, admin string, seen func(event string, data []byte) bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/console/stream", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream answered %d %s", res.StatusCode, ct)
	}
	deadline := time.Now().Add(20 * time.Second)
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	name := ""
	for sc.Scan() && time.Now().Before(deadline) {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if seen(name, []byte(strings.TrimPrefix(line, "data: "))) {
				return
			}
		}
	}
}

// TestConsoleShowsAQueueFillWhileItsConsumerIsDown takes shipping down:
// the orders placed meanwhile leave events that the broker keeps for it,
// and the console shows its queue fill; brought back, shipping takes them
// and the queue empties.
func TestConsoleShowsAQueueFillWhileItsConsumerIsDown(t *testing.T) {
	shop := start(t, t.TempDir(), []string{"MICROSHOP_SAGA_MODE=choreography"}, "up")
	base := shop.addrs["gateway"]
	c := newClient(t, base)
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, token := c.signup("queue@example.com")

	c.must(200, "PUT", "/api/v1/admin/faults/shipping", admin, map[string]any{"down": true})
	var ids []string
	for range 3 {
		ids = append(ids, c.must(202, "POST", "/api/v1/orders", token, orderBody(catalog["MUG-001"].ID, 1, goodCard)).obj(t)["id"].(string))
	}
	queued := 0.0
	watch(t, base, admin, func(name string, data []byte) bool {
		if name != "stats" {
			return false
		}
		var st consoleStats
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		queued = st.Services["shipping"].Queued
		return queued >= 3 && st.Broker.Queued >= queued
	})
	if queued < 3 {
		t.Fatalf("shipping's queue while it is down = %v, want the 3 orders' events at least", queued)
	}

	c.must(200, "PUT", "/api/v1/admin/faults/shipping", admin, map[string]any{})
	for _, id := range ids {
		if o := waitEnded(t, c, token, id); o["status"] != "COMPLETED" {
			t.Errorf("order %s ended %v", id, o["status"])
		}
	}
	watch(t, base, admin, func(name string, data []byte) bool {
		if name != "stats" {
			return false
		}
		var st consoleStats
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		queued = st.Services["shipping"].Queued
		return queued == 0
	})
	if queued != 0 {
		t.Errorf("shipping's queue once it is back = %v, want empty", queued)
	}
}

// TestConsoleSeesEveryProcess runs the gateway (with the registry) in one
// process and the services in another, on the machine's NATS: the services'
// spans reach the console over OTLP/HTTP, so a checkout is still one whole
// trace there.
func TestConsoleSeesEveryProcess(t *testing.T) {
	needServer(t, "NATS", "127.0.0.1:4222")
	ns := newNamespace()
	t.Cleanup(func() { cleanNATS(t, ns) })
	dir := t.TempDir()
	broker := []string{"MICROSHOP_BROKER_URL=" + machineNATS, "MICROSHOP_BROKER_NAMESPACE=" + ns}
	front := start(t, dir, broker, "serve", "--services=registry,gateway")
	services := start(t, dir, append(broker, "MICROSHOP_REGISTRY_URL="+front.addrs["registry"]),
		"serve", "--services=users,catalog,inventory,orders,payments,shipping")
	if services.cmd.Process.Pid == front.cmd.Process.Pid {
		t.Fatal("one process")
	}
	c := newClient(t, front.addrs["gateway"])
	admin := c.login(adminEmail, adminPassword)
	// serve seeds nothing: stock a product of our own.
	np := map[string]any{"sku": "SPLIT-1", "name": "Split Mug", "description": "d", "category": "test", "price_cents": 900, "currency": "USD"}
	productID := c.must(201, "POST", "/api/v1/products", admin, np).obj(t)["id"].(string)
	c.must(200, "PUT", "/api/v1/inventory/"+productID, admin, map[string]int{"available": 5})
	_, token := c.signup("split@example.com")
	var r response
	// Orders learns the product's price from its ProductCreated event.
	waitFor(t, 10*time.Second, "orders to know the new product", func() bool {
		r = c.unchecked().call("POST", "/api/v1/orders", token, orderBody(productID, 1, goodCard))
		return r.Status == 202
	})
	traceID := strings.Split(r.Header.Get("Traceparent"), "-")[1]
	waitEnded(t, c, token, r.obj(t)["id"].(string))
	waitFor(t, 15*time.Second, "the services' spans at the console", func() bool {
		res := c.call("GET", "/api/v1/console/traces/"+traceID, admin, nil)
		if res.Status != 200 {
			return false
		}
		var tr struct{ Spans []consoleSpan }
		res.json(t, &tr)
		seen := map[string]bool{}
		for _, s := range tr.Spans {
			seen[s.Service] = true
		}
		return seen["gateway"] && seen["orders"] && seen["payments"] && seen["inventory"] && seen["shipping"]
	})
}

// TestConsoleTrafficDrivesTheShop starts the console's traffic, sees
// checkouts complete, stops it, and audits the shop. A rate out of range is
// refused and starts nothing.
func TestConsoleTrafficDrivesTheShop(t *testing.T) {
	shop := start(t, t.TempDir(), nil, "up")
	c := newClient(t, shop.addrs["gateway"])
	seeded(t, c)
	admin := c.login(adminEmail, adminPassword)

	c.must(422, "PUT", "/api/v1/console/traffic", admin, map[string]any{"rate": 0})
	c.must(422, "PUT", "/api/v1/console/traffic", admin, map[string]any{"rate": 501})
	c.must(400, "PUT", "/api/v1/console/traffic", admin, map[string]any{"rate": 5, "burst": 9})
	if st := c.must(200, "GET", "/api/v1/console/traffic", admin, nil).obj(t); st["running"] != false {
		t.Fatalf("refused starts left traffic %v", st)
	}
	type status struct {
		Running            bool
		Rate               float64
		Placed, Completed  int
		Cancelled, Pending int
	}
	var st status
	c.must(200, "PUT", "/api/v1/console/traffic", admin, map[string]any{"rate": 20}).json(t, &st)
	if !st.Running || st.Rate != 20 {
		t.Fatalf("started traffic = %+v", st)
	}
	c.must(200, "PUT", "/api/v1/console/traffic", admin, map[string]any{"rate": 30}).json(t, &st)
	if st.Rate != 30 {
		t.Errorf("rate change: %+v", st)
	}
	waitFor(t, 30*time.Second, "the console's shoppers to complete checkouts", func() bool {
		c.must(200, "GET", "/api/v1/console/traffic", admin, nil).json(t, &st)
		return st.Completed >= 3 && st.Cancelled >= 1
	})
	c.must(200, "DELETE", "/api/v1/console/traffic", admin, nil)
	waitFor(t, 40*time.Second, "traffic to stop and its orders to end", func() bool {
		c.must(200, "GET", "/api/v1/console/traffic", admin, nil).json(t, &st)
		return !st.Running && st.Pending == 0
	})
	waitFor(t, 20*time.Second, "the audit to pass", func() bool {
		return c.must(200, "GET", "/api/v1/admin/audit", admin, nil).obj(t)["ok"] == true
	})
	t.Logf("console traffic: %+v", st)
}
