package orderhttp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/orders/orderevents"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/web"
)

// importing is the orders service served as the shop serves it: user
// tokens checked everywhere, service tokens on internal paths, and every
// exchange checked against the published document. It knows the price of
// product p1, so checkouts of it need no catalog.
type importing struct {
	url      string
	client   *http.Client
	db       *sqldb.DB
	proj     *orders.Projector
	users    *auth.Signer
	services ed25519.PrivateKey
}

func newImporting(t *testing.T) importing {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "orders", orderdb.Migrations)
	store := orderdb.New(db)
	svc := orders.NewService(store, nil, vault{}, orders.ModeOrchestration, func() {})
	if err := store.RememberProduct(context.Background(), orders.Product{ID: "p1", PriceCents: 500, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	proj := orders.NewProjector(store)
	rebuild := func(ctx context.Context) (int, error) {
		return store.RebuildViews(ctx, func(ctx context.Context, e event.Event) error { return orderevents.Project(ctx, proj, e) })
	}
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	_, serviceKey, _ := ed25519.GenerateKey(rand.Reader)
	users := auth.NewSigner(userKey, time.Hour)
	hosted := &host.Service{
		Name:     "orders",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   orderhttp.Routes(svc, orderhttp.Deps{History: store.History, Rebuild: rebuild}),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("orders"),
		Verifier: auth.NewVerifier(users),
		Services: auth.NewServiceVerifier(serviceKey.Public().(ed25519.PublicKey), []string{"gateway", "payments", "legacy"}),
	}
	srv := httptest.NewServer(hosted.Handler())
	t.Cleanup(srv.Close)
	doc, err := contract.Load(orderhttp.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: contract.Transport(doc, srv.Client().Transport, func(err error) { t.Errorf("contract: %v", err) })}
	return importing{url: srv.URL, client: client, db: db, proj: proj, users: users, services: serviceKey}
}

// vault stands for the payments service's card tokenization, which a
// checkout calls: it accepts every card.
type vault struct{}

func (vault) Tokenize(_ context.Context, card string) (string, error) {
	return "tok_" + card[len(card)-4:], nil
}

func (a importing) userToken(t *testing.T, subject, role string) string {
	t.Helper()
	tok, _, err := a.users.Sign(subject, role)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (a importing) serviceToken(t *testing.T, service string) string {
	t.Helper()
	tok, err := auth.NewServiceSigner(service, a.services).Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// want sends a request and fails the test unless it is answered with
// status; an error must be a problem with a detail. It returns the body.
func (a importing) want(t *testing.T, status int, method, path, token, body string) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if resp.StatusCode != status {
		t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, status)
	}
	if status >= 400 && (m["status"] != float64(status) || m["detail"] == "") {
		t.Errorf("%s %s: problem %s, want status %d and a detail", method, path, b, status)
	}
	return m
}

// project delivers what orders published to its read model, as the
// orders-view group does.
func (a importing) project(t *testing.T) {
	t.Helper()
	for _, e := range sqldbtest.Outbox(t, a.db) {
		if err := orderevents.Project(context.Background(), a.proj, e); err != nil {
			t.Fatal(err)
		}
	}
}

func legacyJSON(id, user, status string, total int64) string {
	return fmt.Sprintf(`{"id":%q,"user_id":%q,"status":%q,"items":[{"product_id":"p1","quantity":2,"price_cents":500}],`+
		`"total_cents":%d,"currency":"USD","created_at":"2019-05-04T12:30:00+02:00",`+
		`"shipping_address":{"name":"Ada","line1":"1 Main","city":"London","postal_code":"N1","country":"GB"}}`, id, user, status, total)
}

func TestImportOrdersAnswers(t *testing.T) {
	a := newImporting(t)
	first, second := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	body := `{"orders":[` + legacyJSON(first, "u1", "COMPLETED", 1000) + "," + legacyJSON(second, "u1", "CANCELLED", 1000) + `]}`
	const path = "/internal/v1/import/orders"
	gateway := a.serviceToken(t, "gateway")

	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a customer's token", a.userToken(t, "u1", auth.RoleCustomer), http.StatusUnauthorized},
		{"an admin's token", a.userToken(t, "admin-1", auth.RoleAdmin), http.StatusUnauthorized},
		{"payments", a.serviceToken(t, "payments"), http.StatusForbidden},
		{"the monolith itself", a.serviceToken(t, "legacy"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) { a.want(t, tc.status, "POST", path, tc.token, body) })
	}
	if n := len(sqldbtest.Outbox(t, a.db)); n != 0 {
		t.Fatalf("refused imports published %d events", n)
	}

	got := a.want(t, http.StatusOK, "POST", path, gateway, body)
	if got["imported"] != float64(2) || got["skipped"] != float64(0) || fmt.Sprint(got["conflicts"]) != "[]" {
		t.Errorf("import = %v, want 2 imported, none skipped, no conflicts", got)
	}
	got = a.want(t, http.StatusOK, "POST", path, gateway, `{"orders":[`+legacyJSON(first, "u1", "COMPLETED", 1000)+","+legacyJSON(second, "u1", "COMPLETED", 1000)+`]}`)
	if got["imported"] != float64(0) || got["skipped"] != float64(1) || fmt.Sprint(got["conflicts"]) != "["+second+"]" {
		t.Errorf("second import = %v, want the first skipped and the second (now COMPLETED) a conflict", got)
	}

	// v2 shows the imported orders, with their origin; its listing at once,
	// the import having put them in the read model itself.
	owner := a.userToken(t, "u1", auth.RoleCustomer)
	order := a.want(t, http.StatusOK, "GET", "/api/v2/orders/"+second, owner, "")
	if order["origin"] != "legacy" || order["saga"] != "none" || order["status"] != "CANCELLED" || order["created_at"] != "2019-05-04T10:30:00Z" {
		t.Errorf("GET the imported order = %v, want it CANCELLED, of origin legacy, saga none, placed at 10:30 UTC", order)
	}
	a.want(t, http.StatusNotFound, "GET", "/api/v2/orders/"+second, a.userToken(t, "u2", auth.RoleCustomer), "")
	listed := func(when string) {
		t.Helper()
		items, _ := a.want(t, http.StatusOK, "GET", "/api/v2/orders", owner, "")["items"].([]any)
		if len(items) != 2 {
			t.Fatalf("%s: GET /api/v2/orders = %v, want the two imported orders", when, items)
		}
		for i, it := range items {
			o := it.(map[string]any)
			if o["id"] != []string{second, first}[i] || o["origin"] != "legacy" || o["saga"] != "none" || o["total_cents"] != float64(1000) {
				t.Errorf("%s: GET /api/v2/orders lists %v at %d, want the imported orders newest first, origin legacy, saga none", when, o, i)
			}
		}
	}
	listed("right after the import")
	a.project(t) // the orders-view group delivers the OrderImported events later: nothing changes
	listed("after the events were delivered")
	// v1 never shows them.
	for _, listing := range []string{"/api/v1/orders", "/api/v1/users/u1/orders"} {
		if items, _ := a.want(t, http.StatusOK, "GET", listing, owner, "")["items"].([]any); len(items) != 0 {
			t.Errorf("GET %s = %v, want no imported order", listing, items)
		}
	}
	admin := a.userToken(t, "admin-1", auth.RoleAdmin)
	if items, _ := a.want(t, http.StatusOK, "GET", "/api/v2/admin/orders", admin, "")["items"].([]any); len(items) != 2 {
		t.Errorf("the v2 admin listing holds %d orders, want 2", len(items))
	}
	rebuilt := a.want(t, http.StatusOK, "POST", "/api/v1/admin/read-model/rebuild", admin, "")
	if rebuilt["events"] != float64(2) {
		t.Errorf("rebuild = %v, want the 2 OrderImported events", rebuilt)
	}
	listed("after a rebuild")

	var tooMany strings.Builder
	tooMany.WriteString(`{"orders":[`)
	for i := range orders.MaxImport + 1 {
		if i > 0 {
			tooMany.WriteString(",")
		}
		fmt.Fprintf(&tooMany, `{"id":"o%d"}`, i)
	}
	tooMany.WriteString(`]}`)
	fresh := uuid.Must(uuid.NewV7()).String()
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"the monolith's CONFIRMED", `{"orders":[` + legacyJSON(fresh, "u1", "CONFIRMED", 1000) + `]}`, http.StatusUnprocessableEntity},
		{"a total that is not the sum", `{"orders":[` + legacyJSON(fresh, "u1", "COMPLETED", 999) + `]}`, http.StatusUnprocessableEntity},
		{"more than 1000 orders", tooMany.String(), http.StatusUnprocessableEntity},
		{"an unknown field", `{"orders":[` + strings.Replace(legacyJSON(fresh, "u1", "COMPLETED", 1000), `"currency"`, `"card":"4242424242424242","currency"`, 1) + `]}`, http.StatusBadRequest},
		{"a time that is no time", `{"orders":[` + strings.Replace(legacyJSON(fresh, "u1", "COMPLETED", 1000), "2019-05-04T12:30:00+02:00", "yesterday", 1) + `]}`, http.StatusBadRequest},
		{"not JSON", `{"orders":`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) { a.want(t, tc.status, "POST", path, gateway, tc.body) })
	}
	a.want(t, http.StatusNotFound, "GET", "/api/v2/orders/"+fresh, admin, "")
	if n := len(sqldbtest.Outbox(t, a.db)); n != 2 {
		t.Errorf("outbox holds %d events after refusals, want still 2", n)
	}
}
