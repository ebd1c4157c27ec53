package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/microshop/microshop/internal/bus/rabbitbus/rabbitbustest"
)

// The machine's own brokers, which the shop can run on instead of the
// embedded JetStream.
const (
	machineNATS   = "nats://127.0.0.1:4222"
	machineRabbit = "amqp://guest:guest@127.0.0.1:5672/"
)

// Every domain and consumer group the shop declares on a broker, for
// cleaning up after a test.
var (
	domains = []string{"users", "catalog", "inventory", "orders", "payments", "shipping"}
	groups  = []string{"orders", "orders-catalog", "orders-view", "payments", "inventory", "shipping"}
)

// needServer skips a test when a server it needs is absent, naming it; in
// CI the server must be there, so the test fails instead.
func needServer(t *testing.T, name, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not reachable at %s: %v", name, addr, err)
	}
	t.Skipf("%s is not reachable at %s: %v", name, addr, err)
}

func newNamespace() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "e2e-" + hex.EncodeToString(b)
}

// cleanNATS deletes the streams of a namespace.
func cleanNATS(t *testing.T, ns string) {
	nc, err := nats.Connect(machineNATS)
	if err != nil {
		t.Logf("cleaning up namespace %s: %v", ns, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	prefix := strings.ToUpper(strings.ReplaceAll(ns, "-", "_")) + "_"
	for _, d := range domains {
		_ = js.DeleteStream(context.Background(), prefix+strings.ToUpper(d))
	}
}

// cleanRabbit deletes the exchanges and queues of a namespace.
func cleanRabbit(t *testing.T, ns string) {
	conn, err := amqp.Dial(machineRabbit)
	if err != nil {
		t.Logf("cleaning up namespace %s: %v", ns, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, g := range groups {
		_, _ = ch.QueueDelete(ns+"."+g, false, false, false)
		_, _ = ch.QueueDelete(ns+"."+g+".dead", false, false, false)
	}
	for _, d := range domains {
		_ = ch.ExchangeDelete(ns+"."+d, false, false)
	}
}

// TestShopOnTheMachinesBrokers runs every saga style and outcome with the
// shop on the machine's NATS server and on its RabbitMQ, each in a
// namespace of its own.
func TestShopOnTheMachinesBrokers(t *testing.T) {
	for _, b := range []struct {
		name, url, addr string
		clean           func(*testing.T, string)
	}{
		{"NATS", machineNATS, "127.0.0.1:4222", cleanNATS},
		{"RabbitMQ", machineRabbit, "127.0.0.1:5672", cleanRabbit},
	} {
		t.Run(b.name, func(t *testing.T) {
			needServer(t, b.name, b.addr)
			ns := newNamespace()
			t.Cleanup(func() { b.clean(t, ns) })
			shop := start(t, t.TempDir(), []string{"MICROSHOP_BROKER_URL=" + b.url, "MICROSHOP_BROKER_NAMESPACE=" + ns}, "up")
			c := newClient(t, shop.addrs["gateway"])
			catalog := seeded(t, c)
			admin := c.login(adminEmail, adminPassword)
			_, token := c.signup("erin@example.com")
			for _, mode := range []string{"orchestration", "choreography", "parallel"} {
				c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
				checkStyle(t, c, token, mode, catalog)
			}
			if rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil); rep.obj(t)["ok"] != true {
				t.Errorf("audit on %s: %s", b.name, rep.Body)
			}
		})
	}
}

// TestRabbitMQRestartMidSaga restarts the shop's RabbitMQ while checkouts
// run in every style, and checks that every accepted order ends and the
// invariants hold: nothing acknowledged is lost, nothing applied twice. The
// RabbitMQ is a node of the test's own: restarting the machine's would break
// the other packages' tests that use it at the same time.
func TestRabbitMQRestartMidSaga(t *testing.T) {
	node := rabbitbustest.Start(t)
	shop := start(t, t.TempDir(), []string{"MICROSHOP_BROKER_URL=" + node.URL}, "up")
	c := newClient(t, shop.addrs["gateway"]).unchecked() // 503s are expected while the broker is away
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	userID, token := c.signup("frank@example.com")
	cards := []string{goodCard, goodCard, declinedCard}
	modes := []string{"orchestration", "choreography", "parallel"}
	var (
		mu       sync.Mutex
		accepted []string
		unknown  []int // requests without an answer: reconciled by key below
		wg       sync.WaitGroup
	)
	body := func(n int) map[string]any { return orderBody(catalog["STICK-005"].ID, 1, cards[n%3]) }
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := w*1000 + i
				if i%10 == 0 && w == 0 {
					c.call("PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": modes[(i/10)%3]})
				}
				r, err := c.try("POST", "/api/v1/orders", token, body(n), "Idempotency-Key", fmt.Sprintf("rr-%d", n))
				mu.Lock()
				switch {
				case err != nil:
					unknown = append(unknown, n)
				case r.Status == 202:
					accepted = append(accepted, r.obj(t)["id"].(string))
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	away := node.Restart(t)
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	for _, n := range unknown {
		r := c.must(202, "POST", "/api/v1/orders", token, body(n), "Idempotency-Key", fmt.Sprintf("rr-%d", n))
		accepted = append(accepted, r.obj(t)["id"].(string))
	}

	completed, cancelled := 0, 0
	for _, id := range accepted {
		var o map[string]any
		waitFor(t, 90*time.Second, "order "+id+" to end after the restart", func() bool {
			o = c.must(200, "GET", "/api/v1/orders/"+id, token, nil).obj(t)
			return o["status"] == "COMPLETED" || o["status"] == "CANCELLED"
		})
		if o["status"] == "COMPLETED" {
			completed++
		} else {
			cancelled++
		}
	}
	rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil)
	var audit struct {
		OK     bool
		Counts map[string]int
	}
	rep.json(t, &audit)
	duplicated := ordersOf(t, c, admin, userID) - len(accepted)
	t.Logf("RabbitMQ away %v; orders=%d completed=%d cancelled=%d lost=%d duplicated=%d double_charged=%d stock_mismatch=%d audit_ok=%v",
		away.Round(time.Millisecond), len(accepted), completed, cancelled, len(accepted)-completed-cancelled, duplicated, audit.Counts["double_charged"], audit.Counts["stock_mismatch"], audit.OK)
	if !audit.OK || duplicated != 0 || len(accepted) < 20 {
		t.Errorf("after the restart: %s (accepted %d, duplicated %d)", rep.Body, len(accepted), duplicated)
	}
}
