package contract_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/console"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/registry"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
	"github.com/microshop/microshop/internal/users/userhttp"
	"github.com/microshop/microshop/internal/web"
)

// These tests drive the real routes of the services whose documents this
// package owns, behind the same middleware the shop runs them with, and
// check every exchange against the document: answers the document does not
// describe, and routes it leaves out, fail here before a client meets them.

// shopTokens signs the tokens the tests present.
type shopTokens struct {
	signer *auth.Signer
}

func newTokens(t *testing.T) shopTokens {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return shopTokens{signer: auth.NewSigner(key, time.Hour)}
}

func (s shopTokens) token(t *testing.T, subject, role string) string {
	t.Helper()
	tok, _, err := s.signer.Sign(subject, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// serve runs routes as host does, and returns a client whose every exchange
// is checked against doc.
func serve(t *testing.T, name string, routes *http.ServeMux, tokens shopTokens, doc []byte) (base string, client *http.Client) {
	t.Helper()
	svc := &host.Service{
		Name:     name,
		Log:      slog.New(slog.DiscardHandler),
		Routes:   routes,
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics(name),
		Verifier: auth.NewVerifier(tokens.signer),
	}
	svc.Health.SetReady(true)
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	d, err := contract.Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, &http.Client{Transport: contract.Transport(d, srv.Client().Transport, func(err error) { t.Error(err) })}
}

// call is one request and the status it must get.
type call struct {
	method, path string
	token        string
	header       map[string]string
	body         string
	want         int
}

func (c call) do(t *testing.T, base string, client *http.Client) string {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != c.want {
		t.Errorf("%s %s = %d %s, want %d", c.method, c.path, resp.StatusCode, b, c.want)
	}
	return string(b)
}

func migrated(t *testing.T, name string, migrate func(ctx context.Context, db *sqldb.DB) error) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db := sqldbtest.Open(t, name)
	if err := migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

// opsCalls are the endpoints every service serves.
func opsCalls() []call {
	return []call{
		{method: "GET", path: "/healthz", want: 200},
		{method: "GET", path: "/ready", want: 200},
		{method: "GET", path: "/metrics", want: 200},
		{method: "GET", path: "/openapi.yaml", want: 200},
		{method: "GET", path: "/healthz", token: "not-a-token", want: 401},
	}
}

func TestUsersDocumentDescribesTheUsersService(t *testing.T) {
	ctx := context.Background()
	tokens := newTokens(t)
	db := migrated(t, "users", func(ctx context.Context, db *sqldb.DB) error {
		if err := db.Migrate(ctx, userdb.Migrations); err != nil {
			return err
		}
		return outbox.Migrate(ctx, db)
	})
	svc := users.NewService(userdb.New(db), tokens.signer)
	if _, err := svc.EnsureAdmin(ctx, "admin@example.com", "admin-password"); err != nil {
		t.Fatal(err)
	}
	base, client := serve(t, "users", userhttp.Routes(svc, tokens.signer), tokens, userhttp.OpenAPI)

	ada := call{method: "POST", path: "/api/v1/users", body: `{"email":"ada@example.com","name":"Ada","password":"correct horse"}`, want: 201}.do(t, base, client)
	adaID := field(t, ada, "id")
	bob := call{method: "POST", path: "/api/v1/users", body: `{"email":"bob@example.com","name":"Bob","password":"correct horse"}`, want: 201}.do(t, base, client)
	bobID := field(t, bob, "id")
	login := call{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com","password":"correct horse"}`, want: 200}.do(t, base, client)
	adaToken := field(t, login, "access_token")
	admin := tokens.token(t, "admin-id", auth.RoleAdmin)

	calls := []call{
		{method: "POST", path: "/api/v1/users", body: `{"email":"ada@example.com","name":"Ada","password":"correct horse"}`, want: 409},
		{method: "POST", path: "/api/v1/users", body: `{"email":"not an address","name":"Ada","password":"correct horse"}`, want: 422},
		{method: "POST", path: "/api/v1/users", body: `{"email":"c@example.com","name":"C","password":"short"}`, want: 422},
		{method: "POST", path: "/api/v1/users", body: `{"email":"c@example.com","name":"C","password":"correct horse","role":"admin"}`, want: 400},
		{method: "POST", path: "/api/v1/users", body: `{"email":`, want: 400},
		{method: "POST", path: "/api/v1/users", body: `{}`, header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{method: "POST", path: "/api/v1/users", body: `{"email":"c@example.com","name":"` + strings.Repeat("x", 2<<20) + `","password":"correct horse"}`, want: 413},
		{method: "POST", path: "/api/v1/users", token: "not-a-token", body: `{"email":"d@example.com","name":"D","password":"correct horse"}`, want: 401},
		{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com","password":"wrong password"}`, want: 401},
		{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com"`, want: 400},
		{method: "GET", path: "/api/v1/users/me", token: adaToken, want: 200},
		{method: "GET", path: "/api/v1/users/me", want: 401},
		{method: "GET", path: "/api/v1/users/me", token: tokens.token(t, "gone", auth.RoleCustomer), want: 404},
		{method: "GET", path: "/api/v1/users/" + adaID, token: adaToken, want: 200},
		{method: "GET", path: "/api/v1/users/" + bobID, token: adaToken, want: 403},
		{method: "GET", path: "/api/v1/users/" + bobID, token: admin, want: 200},
		{method: "GET", path: "/api/v1/users/nobody", token: admin, want: 404},
		{method: "GET", path: "/api/v1/users/" + adaID, want: 401},
		{method: "GET", path: "/api/v2/users/" + adaID, token: adaToken, want: 200},
		{method: "GET", path: "/api/v2/users/" + bobID, token: adaToken, want: 403},
		{method: "GET", path: "/api/users/" + adaID, token: adaToken, want: 200},
		{method: "GET", path: "/api/users/" + adaID, token: adaToken, header: map[string]string{"Accept": "application/vnd.microshop.users.v2+json"}, want: 200},
		{method: "GET", path: "/api/users/" + adaID, token: adaToken, header: map[string]string{"Accept": "application/vnd.microshop.users.v1+json"}, want: 200},
		{method: "GET", path: "/api/users/" + bobID, token: adaToken, want: 403},
		{method: "GET", path: "/api/users/nobody", token: admin, want: 404},
		{method: "GET", path: "/.well-known/jwks.json", want: 200},
	}
	for _, c := range append(calls, opsCalls()...) {
		c.do(t, base, client)
	}
	if v2 := (call{method: "GET", path: "/api/users/" + adaID, token: adaToken, header: map[string]string{"Accept": "application/vnd.microshop.users.v2+json"}, want: 200}).do(t, base, client); !strings.Contains(v2, "ada@example.com") {
		t.Errorf("the v2 media type got %s, want the email too", v2)
	}
}

// catalogStub prices every product at 250 cents, knows no product called
// missing, and cannot be reached for one called down.
type catalogStub struct{}

func (catalogStub) Product(_ context.Context, id string) (orders.Product, error) {
	switch id {
	case "missing":
		return orders.Product{}, fail.New(fail.NotFound, "no such product")
	case "down":
		return orders.Product{}, errors.New("connection refused")
	}
	return orders.Product{ID: id, PriceCents: 250, Currency: "USD"}, nil
}

// vaultStub hands out a token for every card.
type vaultStub struct{}

func (vaultStub) Tokenize(_ context.Context, card string) (string, error) {
	return "tok_" + card[len(card)-4:], nil
}

func TestOrdersDocumentDescribesTheOrdersService(t *testing.T) {
	tokens := newTokens(t)
	db := migrated(t, "orders", func(ctx context.Context, db *sqldb.DB) error {
		if err := db.Migrate(ctx, orderdb.Migrations); err != nil {
			return err
		}
		return outbox.Migrate(ctx, db)
	})
	store := orderdb.New(db)
	svc := orders.NewService(store, catalogStub{}, vaultStub{}, orders.ModeOrchestration, func() {})
	rebuild := func(ctx context.Context) (int, error) {
		return store.RebuildViews(ctx, func(context.Context, event.Event) error { return nil })
	}
	base, client := serve(t, "orders", orderhttp.Routes(svc, orderhttp.Deps{History: store.History, Rebuild: rebuild}), tokens, orderhttp.OpenAPI)

	ada, bob := tokens.token(t, "ada", auth.RoleCustomer), tokens.token(t, "bob", auth.RoleCustomer)
	admin := tokens.token(t, "admin", auth.RoleAdmin)
	const checkout = `{"items":[{"product_id":"p1","quantity":2}],"payment":{"card":"4242 4242 4242 4242"},` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop St","city":"London","postal_code":"N1","country":"GB"}}`
	withProduct := func(id string) string { return strings.Replace(checkout, `"p1"`, `"`+id+`"`, 1) }
	placed := call{method: "POST", path: "/api/v1/orders", token: ada, body: checkout, header: map[string]string{"Idempotency-Key": "k1"}, want: 202}.do(t, base, client)
	id := field(t, placed, "id")

	calls := []call{
		{method: "POST", path: "/api/v1/orders", token: ada, body: checkout, header: map[string]string{"Idempotency-Key": "k1"}, want: 202},
		{method: "POST", path: "/api/v1/orders", token: ada, body: withProduct("p2"), header: map[string]string{"Idempotency-Key": "k1"}, want: 422},
		{method: "POST", path: "/api/v1/orders", token: ada, body: withProduct("missing"), want: 422},
		{method: "POST", path: "/api/v1/orders", token: ada, body: withProduct("down"), want: 503},
		{method: "POST", path: "/api/v1/orders", token: ada, body: strings.Replace(checkout, `"quantity":2`, `"quantity":0`, 1), want: 422},
		{method: "POST", path: "/api/v1/orders", token: ada, body: strings.Replace(checkout, `"GB"`, `"gb"`, 1), want: 422},
		{method: "POST", path: "/api/v1/orders", token: ada, body: strings.Replace(checkout, `"card"`, `"cvv":"123","card"`, 1), want: 400},
		{method: "POST", path: "/api/v1/orders", token: ada, body: checkout, header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{method: "POST", path: "/api/v1/orders", body: checkout, want: 401},
		{method: "GET", path: "/api/v1/orders", token: ada, want: 200},
		{method: "GET", path: "/api/v1/orders?limit=1&after=" + id, token: ada, want: 200},
		{method: "GET", path: "/api/v1/orders?limit=0", token: ada, want: 422},
		{method: "GET", path: "/api/v1/orders", want: 401},
		{method: "GET", path: "/api/v1/orders/" + id, token: ada, want: 200},
		{method: "GET", path: "/api/v1/orders/" + id, token: admin, want: 200},
		{method: "GET", path: "/api/v1/orders/" + id, token: bob, want: 404},
		{method: "GET", path: "/api/v1/orders/nope", token: ada, want: 404},
		{method: "GET", path: "/api/v1/orders/" + id + "/saga", token: ada, want: 200},
		{method: "GET", path: "/api/v1/orders/" + id + "/saga", token: bob, want: 404},
		{method: "GET", path: "/api/v1/users/ada/orders", token: ada, want: 200},
		{method: "GET", path: "/api/v1/users/ada/orders", token: admin, want: 200},
		{method: "GET", path: "/api/v1/users/ada/orders", token: bob, want: 403},
		{method: "GET", path: "/api/v1/users/ada/orders?limit=5000", token: ada, want: 422},
		{method: "GET", path: "/api/v1/admin/orders?limit=10", token: admin, want: 200},
		{method: "GET", path: "/api/v1/admin/orders", token: ada, want: 403},
		{method: "GET", path: "/api/v1/admin/orders", want: 401},
		{method: "GET", path: "/api/v1/admin/settings", token: admin, want: 200},
		{method: "GET", path: "/api/v1/admin/settings", token: ada, want: 403},
		{method: "PUT", path: "/api/v1/admin/settings", token: admin, body: `{"saga_mode":"orchestration"}`, want: 200},
		{method: "PUT", path: "/api/v1/admin/settings", token: admin, body: `{"saga_mode":"telepathy"}`, want: 422},
		{method: "PUT", path: "/api/v1/admin/settings", token: admin, body: `{"saga_mode":"orchestration","x":1}`, want: 400},
		{method: "PUT", path: "/api/v1/admin/settings", token: ada, body: `{"saga_mode":"orchestration"}`, want: 403},
		{method: "POST", path: "/api/v1/admin/read-model/rebuild", token: admin, want: 200},
		{method: "POST", path: "/api/v1/admin/read-model/rebuild", token: ada, want: 403},
		{method: "POST", path: "/api/v1/admin/read-model/rebuild", want: 401},
	}
	for _, c := range append(calls, opsCalls()...) {
		c.do(t, base, client)
	}
}

func TestRegistryDocumentDescribesTheRegistry(t *testing.T) {
	tokens := newTokens(t)
	reg := registry.New()
	routes := registry.Routes(reg, func(r *http.Request) error {
		_, err := auth.Admin(r.Context())
		return err
	})
	base, client := serve(t, "registry", routes, tokens, registry.OpenAPI)
	calls := []call{
		{method: "PUT", path: "/v1/instances/orders-1", body: `{"service":"orders","address":"127.0.0.1:9001","healthy":true,"ttl_seconds":30}`, want: 204},
		{method: "PUT", path: "/v1/instances/orders-1", body: `{"service":"orders","address":"127.0.0.1:9001","ttl_seconds":30}`, want: 204},
		{method: "PUT", path: "/v1/instances/orders-2", body: `{"service":"orders","address":"127.0.0.1:9002","ttl_seconds":0}`, want: 422},
		{method: "PUT", path: "/v1/instances/orders-2", body: `{"service":"orders","address":"127.0.0.1:9002","ttl_seconds":30,"zone":"a"}`, want: 400},
		{method: "PUT", path: "/v1/instances/orders-2", body: `{}`, header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{method: "GET", path: "/v1/services", want: 200},
		{method: "GET", path: "/v1/services/orders", want: 200},
		{method: "GET", path: "/v1/services/unknown", want: 200},
		{method: "GET", path: "/api/v1/registry/services", token: tokens.token(t, "admin", auth.RoleAdmin), want: 200},
		{method: "GET", path: "/api/v1/registry/services", token: tokens.token(t, "ada", auth.RoleCustomer), want: 403},
		{method: "GET", path: "/api/v1/registry/services", want: 401},
		{method: "DELETE", path: "/v1/instances/orders-1", want: 204},
		{method: "DELETE", path: "/v1/instances/never-was", want: 204},
	}
	for _, c := range append(calls, opsCalls()...) {
		c.do(t, base, client)
	}
}

// downResolver finds no service at all.
type downResolver struct{}

func (downResolver) Resolve(context.Context, string) (string, error) {
	return "", fail.New(fail.Unavailable, "no healthy instance")
}
func (downResolver) Forget(string) {}

func TestGatewayDocumentDescribesTheGatewaysOwnRoutes(t *testing.T) {
	tokens := newTokens(t)
	proxy, err := gateway.NewProxy(downResolver{}, "http://127.0.0.1:1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var auditDown atomic.Bool
	auditor := func(context.Context, string) (audit.Report, error) {
		if auditDown.Load() {
			return audit.Report{}, fail.New(fail.Unavailable, "payments unavailable")
		}
		return audit.Run(audit.Snapshot{}, time.Now(), audit.DefaultGrace), nil
	}
	routes := gateway.Routes(proxy, auditor, upstream.New("gateway", downResolver{}))
	console.New(console.Config{
		Collector: console.NewCollector(),
		Services: func(context.Context) ([]discovery.Service, error) {
			return nil, fail.New(fail.Unavailable, "no registry")
		},
		Admin:    routes,
		Topology: console.NewTopology(console.Nodes),
	}).Mount(routes)
	base, client := serve(t, "gateway", routes, tokens, gateway.OpenAPI)
	admin := tokens.token(t, "admin", auth.RoleAdmin)
	calls := []call{
		{method: "GET", path: "/", want: 200},
		{method: "GET", path: "/console/console.js", want: 200},
		{method: "GET", path: "/console/console.css", want: 200},
		{method: "GET", path: "/api/v1/console/topology", token: admin, want: 200},
		{method: "GET", path: "/api/v1/console/topology", token: tokens.token(t, "ada", auth.RoleCustomer), want: 403},
		{method: "GET", path: "/api/v1/console/topology", want: 401},
		{method: "GET", path: "/api/v1/console/stream", want: 401},
		{method: "GET", path: "/api/v1/console/traces", token: admin, want: 200},
		{method: "GET", path: "/api/v1/console/traces?limit=0", token: admin, want: 422},
		{method: "GET", path: "/api/v1/console/traces/4bf92f3577b34da6a3ce929d0e0e4736", token: admin, want: 404},
		{method: "GET", path: "/api/v1/console/legacy", token: admin, want: 503},
		{method: "GET", path: "/api/v1/console/traffic", token: admin, want: 503},
		{method: "PUT", path: "/api/v1/console/traffic", token: admin, body: `{"rate":0}`, want: 422},
		{method: "PUT", path: "/api/v1/console/traffic", token: admin, body: `{"rate":5}`, want: 503},
		{method: "DELETE", path: "/api/v1/console/traffic", token: tokens.token(t, "ada", auth.RoleCustomer), want: 403},
		{method: "GET", path: "/api/docs", want: 200},
		{method: "GET", path: "/api/docs/gateway", want: 200},
		{method: "GET", path: "/api/docs/orders", want: 503},
		{method: "GET", path: "/api/docs/nothing", want: 404},
		{method: "GET", path: "/api/v1/admin/audit", token: admin, want: 200},
		{method: "GET", path: "/api/v1/admin/audit", token: tokens.token(t, "ada", auth.RoleCustomer), want: 403},
		{method: "GET", path: "/api/v1/admin/audit", want: 401},
		// Every service is down here: the listing says so and lists nothing.
		{method: "GET", path: "/api/v1/admin/dlq", token: admin, want: 200},
		{method: "GET", path: "/api/v1/admin/dlq", token: tokens.token(t, "ada", auth.RoleCustomer), want: 403},
		{method: "POST", path: "/api/v1/admin/dlq/payments/x/replay", token: admin, want: 503},
		{method: "POST", path: "/api/v1/admin/dlq/nowhere/x/replay", token: admin, want: 404},
	}
	for _, c := range append(calls, opsCalls()[:3]...) { // the gateway serves no /openapi.yaml of its own
		c.do(t, base, client)
	}
	auditDown.Store(true)
	call{method: "GET", path: "/api/v1/admin/audit", token: admin, want: 503}.do(t, base, client)
}

// field returns a top-level string field of a JSON object.
func field(t *testing.T, body, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	s, _ := m[name].(string)
	if s == "" {
		t.Fatalf("%s has no %q", body, name)
	}
	return s
}
