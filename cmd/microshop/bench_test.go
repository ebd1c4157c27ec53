package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/microshop/microshop/internal/inventory/inventoryevents"
	"github.com/microshop/microshop/internal/orders/orderevents"
	"github.com/microshop/microshop/internal/payments/paymentevents"
	"github.com/microshop/microshop/internal/shipping/shippingevents"
)

// benchClients is how many customers place orders at once.
const benchClients = 32

// benchRabbit is the machine's RabbitMQ.
const benchRabbit = "amqp://guest:guest@127.0.0.1:5672/"

// benchShop is a running shop ready for load: its gateway, an admin token,
// a product to order and one token per concurrent customer.
type benchShop struct {
	admin   string
	product string
	tokens  []string
	setup   *client // checks every exchange against the contract
	load    *client // checks nothing, and keeps a connection per customer
}

// BenchmarkCheckout measures completed checkouts per second end to end,
// through the gateway of one real shop per broker, for each saga style:
// b.N orders (one item, a good card, stock enough) are placed by
// benchClients customers at once, and the clock runs from the first POST to
// the moment the last order ended (its updated_at). p99_accept_ms is the
// 99th percentile of the POSTs' latency, the time to the 202.
func BenchmarkCheckout(b *testing.B) {
	for _, br := range []struct {
		name  string
		addr  string // the server to find, "" for the embedded broker
		env   func(ns string) []string
		clean func(b *testing.B, ns string)
	}{
		{name: "embedded"},
		{"RabbitMQ", "127.0.0.1:5672", func(ns string) []string {
			return []string{"MICROSHOP_BROKER_URL=" + benchRabbit, "MICROSHOP_BROKER_NAMESPACE=" + ns}
		}, benchCleanRabbit},
	} {
		b.Run(br.name, func(b *testing.B) {
			var env []string
			if br.addr != "" {
				conn, err := net.DialTimeout("tcp", br.addr, time.Second)
				if err != nil {
					b.Skipf("%s is not reachable at %s: %v", br.name, br.addr, err)
				}
				conn.Close()
				ns := benchNamespace()
				b.Cleanup(func() { br.clean(b, ns) }) // registered first, so it runs after the shop has stopped
				env = br.env(ns)
			}
			shop := benchStart(b, env)
			for _, style := range []string{"orchestration", "choreography", "parallel"} {
				b.Run(style, func(b *testing.B) { checkouts(b, shop, style) })
			}
		})
	}
}

// benchStart starts a shop and prepares its admin, product and customers.
func benchStart(b *testing.B, env []string) *benchShop {
	b.Helper()
	p := start(b, b.TempDir(), env, "up")
	c := newClient(b, p.addrs["gateway"])
	s := &benchShop{admin: c.login(adminEmail, adminPassword), setup: c}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = benchClients
	s.load = &client{t: b, base: p.addrs["gateway"], hc: &http.Client{Timeout: 30 * time.Second, Transport: tr}}

	// The seeded catalog reaches inventory and orders by events; wait until
	// both know the product before restocking and ordering it.
	waitFor(b, 20*time.Second, "the seeded catalog with stock", func() bool {
		var list struct {
			Items []struct{ ID, SKU string }
		}
		r := c.call("GET", "/api/v1/products", "", nil)
		if r.Status != 200 {
			return false
		}
		r.json(b, &list)
		for _, p := range list.Items {
			if p.SKU == "MUG-001" {
				s.product = p.ID
			}
		}
		return s.product != "" && c.call("GET", "/api/v1/inventory/"+s.product, "", nil).Status == 200
	})
	for i := range benchClients {
		_, token := c.signup(fmt.Sprintf("bench-%d@example.com", i))
		s.tokens = append(s.tokens, token)
	}
	return s
}

// checkouts places b.N orders under style and waits until each has ended.
func checkouts(b *testing.B, s *benchShop, style string) {
	setup, load := *s.setup, *s.load // failing this run, not the shop's
	setup.t, load.t = b, b
	setup.must(200, "PUT", "/api/v1/admin/settings", s.admin, map[string]string{"saga_mode": style})
	setup.must(200, "PUT", "/api/v1/inventory/"+s.product, s.admin, map[string]int{"available": b.N + 10})
	body := orderBody(s.product, 1, goodCard)

	var (
		next      atomic.Int64
		mu        sync.Mutex
		ids       []string
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	b.ResetTimer()
	first := time.Now()
	for w := range benchClients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				r, err := load.try("POST", "/api/v1/orders", s.tokens[w], body, "Idempotency-Key", uuid.NewString())
				took := time.Since(t0)
				if err != nil || r.Status != 202 {
					b.Errorf("POST /api/v1/orders = %d %s, %v", r.Status, r.Body, err)
					return
				}
				var o struct{ ID string }
				if err := json.Unmarshal(r.Body, &o); err != nil || o.ID == "" {
					b.Errorf("POST /api/v1/orders answered %s", r.Body)
					return
				}
				mu.Lock()
				ids = append(ids, o.ID)
				latencies = append(latencies, took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}

	// One poller, one request at a time, so that polling takes little from
	// the sagas it waits for; the end is the order's own updated_at, so how
	// late the poller sees it does not count.
	var (
		last      time.Time
		completed int
		outcomes  = map[string]int{}
		deadline  = time.Now().Add(2*time.Minute + time.Duration(b.N)*20*time.Millisecond)
	)
	for _, id := range ids {
		for {
			var o struct {
				Status    string    `json:"status"`
				UpdatedAt time.Time `json:"updated_at"`
			}
			load.must(200, "GET", "/api/v1/orders/"+id, s.admin, nil).json(b, &o)
			if o.Status == "COMPLETED" || o.Status == "CANCELLED" {
				outcomes[o.Status]++
				if o.Status == "COMPLETED" {
					completed++
				}
				if o.UpdatedAt.After(last) {
					last = o.UpdatedAt
				}
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: order %s still %s; ended so far: %v", style, id, o.Status, outcomes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.StopTimer()
	if completed != b.N {
		b.Errorf("%s: %d of %d orders completed (%v); with a good card and stock enough, all should", style, completed, b.N, outcomes)
	}
	elapsed := last.Sub(first)
	slices.Sort(latencies)
	p99 := latencies[int(math.Ceil(0.99*float64(len(latencies))))-1]
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(completed)/elapsed.Seconds(), "checkouts/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_accept_ms")
}

func benchNamespace() string {
	p := make([]byte, 4)
	_, _ = rand.Read(p)
	return "bench-" + hex.EncodeToString(p)
}

// benchCleanRabbit deletes what a shop declared on RabbitMQ in namespace
// ns, named as rabbitbus names them.
func benchCleanRabbit(b *testing.B, ns string) {
	conn, err := amqp.Dial(benchRabbit)
	if err != nil {
		b.Errorf("cleaning up namespace %s: %v", ns, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Errorf("cleaning up namespace %s: %v", ns, err)
		return
	}
	defer ch.Close()
	for _, g := range []string{orderevents.GroupSaga, orderevents.GroupCatalog, orderevents.GroupView,
		paymentevents.Group, inventoryevents.Group, shippingevents.Group} {
		for _, q := range []string{ns + "." + g, ns + "." + g + ".dead"} {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				b.Errorf("deleting queue %s: %v", q, err)
				return
			}
		}
	}
	for _, d := range []string{"users", "catalog", "inventory", "orders", "payments", "shipping"} {
		if err := ch.ExchangeDelete(ns+"."+d, false, false); err != nil {
			b.Errorf("deleting exchange %s.%s: %v", ns, d, err)
			return
		}
	}
}
