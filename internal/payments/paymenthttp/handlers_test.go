package paymenthttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/sqldb"
)

var (
	owner    = &auth.Principal{Subject: "user-1", Role: auth.RoleCustomer}
	stranger = &auth.Principal{Subject: "user-2", Role: auth.RoleCustomer}
	admin    = &auth.Principal{Subject: "admin-1", Role: auth.RoleAdmin}
)

// downProvider cannot answer, like a provider that is down.
type downProvider struct{}

func (downProvider) Charge(context.Context, string, string, int64) (payments.Decision, error) {
	return payments.Decision{}, errors.New("connection refused")
}

// newDB is a real SQLite database with the payments and the messaging
// (outbox, inbox, dead letters) migrations applied.
func newDB(t *testing.T) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "payments.db"))
	if err != nil {
		t.Fatalf("opening db: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx, paymentdb.Migrations); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating the outbox: %v", err)
	}
	return db
}

// routesOn is the payments mux as the shop builds it: the service's routes
// over db with provider, and the dead-letter admin routes of a real inbox
// over the same database.
func routesOn(db *sqldb.DB, provider payments.Provider) *http.ServeMux {
	mux := paymenthttp.Routes(payments.NewService(paymentdb.New(db), provider))
	inbox.Mount(mux, inbox.New(db, "payments", nil))
	return mux
}

// newRoutes is the payments mux over a fresh database and the simulated
// card provider.
func newRoutes(t *testing.T) *http.ServeMux {
	t.Helper()
	return routesOn(newDB(t), simprovider.New())
}

type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// do sends one request through the real routes, as p when p is not nil,
// with a JSON body (none when empty).
func do(t *testing.T, routes http.Handler, p *auth.Principal, method, target, body string) response {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return send(t, routes, p, r, body)
}

// send serves r, which carries body, as p when p is not nil, and fails the
// test if the exchange is not one the OpenAPI document allows: an
// undocumented route or status, a body that does not fit its schema, or a
// request the document forbids that was not refused.
func send(t *testing.T, routes http.Handler, p *auth.Principal, r *http.Request, body string) response {
	t.Helper()
	if p != nil {
		// The principal stands for a token the middleware verified; the
		// document only sees that one was sent.
		r.Header.Set("Authorization", "Bearer verified-by-the-middleware")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(auth.WithPrincipal(r.Context(), *p))
		}
		routes.ServeHTTP(w, r)
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if err := loadContract(t).Check(r, []byte(body), w.Code, w.Header(), w.Body.Bytes()); err != nil {
		t.Errorf("%v\nbody: %s", err, w.Body)
	}
	res := response{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if strings.Contains(w.Header().Get("Content-Type"), "json") {
		if err := json.Unmarshal(w.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", r.Method, r.URL, w.Body.String(), err)
		}
	}
	return res
}

func chargeBody(order, user string, amount int, card string) string {
	b, _ := json.Marshal(map[string]any{"order_id": order, "user_id": user, "amount_cents": amount, "currency": "USD", "card": card})
	return string(b)
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func items(t *testing.T, res response) []any {
	t.Helper()
	it, ok := res.body["items"].([]any)
	if !ok {
		t.Fatalf("body %s has no items array", res.raw)
	}
	return it
}

func wantProblem(t *testing.T, res response, status int, detail string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.raw)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	if got, _ := res.body["detail"].(string); !strings.Contains(got, detail) {
		t.Errorf("detail = %q, want it to contain %q", got, detail)
	}
}

func TestGetPaymentOfOrder(t *testing.T) {
	routes := newRoutes(t)
	created := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242424242424242"))
	if created.status != http.StatusCreated {
		t.Fatalf("charge: status = %d, want 201; body %s", created.status, created.raw)
	}

	tests := []struct {
		name      string
		who       *auth.Principal
		order     string
		wantItems int
		wantKeys  []string
	}{
		{"owner", owner, "order-1", 1, []string{"amount_cents", "id", "order_id", "status"}},
		{"other user", stranger, "order-1", 0, nil},
		{"admin", admin, "order-1", 1, []string{"amount_cents", "currency", "id", "order_id", "status", "user_id"}},
		{"owner, unpaid order", owner, "order-2", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, routes, tt.who, "GET", "/api/v1/payments?order_id="+tt.order, "")
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.raw)
			}
			got := items(t, res)
			if len(got) != tt.wantItems {
				t.Fatalf("items = %v, want %d", got, tt.wantItems)
			}
			if tt.wantItems == 0 {
				return
			}
			if k := keys(got[0]); !slices.Equal(k, tt.wantKeys) {
				t.Errorf("item keys = %v, want %v", k, tt.wantKeys)
			}
			item := got[0].(map[string]any)
			if item["id"] != created.body["id"] || item["status"] != "CAPTURED" || item["amount_cents"] != 2500.0 {
				t.Errorf("item = %v, want payment %v CAPTURED 2500", item, created.body["id"])
			}
		})
	}

	wantProblem(t, do(t, routes, nil, "GET", "/api/v1/payments?order_id=order-1", ""), http.StatusUnauthorized, "authentication required")
	wantProblem(t, do(t, routes, owner, "GET", "/api/v1/payments?order_id=", ""), http.StatusUnprocessableEntity, "order_id")
}

func TestListPayments(t *testing.T) {
	routes := newRoutes(t)
	for i, user := range []string{"user-1", "user-2", "user-1", "user-1"} {
		res := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-"+string(rune('a'+i)), user, 100+i, "4242424242424242"))
		if res.status != http.StatusCreated {
			t.Fatalf("charge %d: status %d, body %s", i, res.status, res.raw)
		}
	}

	// The owner walks their own payments, two at a time.
	var seen []string
	target := "/api/v1/payments?limit=2"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("listing does not end")
		}
		res := do(t, routes, owner, "GET", target, "")
		if res.status != http.StatusOK {
			t.Fatalf("status = %d, body %s", res.status, res.raw)
		}
		if k := keys(res.body); !slices.Equal(k, []string{"items", "next"}) {
			t.Errorf("body keys = %v, want [items next]", k)
		}
		for _, it := range items(t, res) {
			if k := keys(it); !slices.Equal(k, []string{"amount_cents", "id", "order_id", "status"}) {
				t.Errorf("customer item keys = %v", k)
			}
			seen = append(seen, it.(map[string]any)["order_id"].(string))
		}
		next, _ := res.body["next"].(string)
		if next == "" {
			break
		}
		target = "/api/v1/payments?limit=2&after=" + next
	}
	if want := []string{"order-a", "order-c", "order-d"}; !slices.Equal(seen, want) {
		t.Errorf("owner's orders = %v, want %v", seen, want)
	}

	res := do(t, routes, admin, "GET", "/api/v1/payments", "")
	if got := items(t, res); len(got) != 4 || res.body["next"] != "" {
		t.Errorf("admin listing = %d items, next %v; want 4, empty", len(got), res.body["next"])
	} else if k := keys(got[0]); !slices.Equal(k, []string{"amount_cents", "currency", "id", "order_id", "status", "user_id"}) {
		t.Errorf("admin item keys = %v", k)
	}

	for _, limit := range []string{"0", "-1", "1001", "abc", "", "2.5"} {
		wantProblem(t, do(t, routes, admin, "GET", "/api/v1/payments?limit="+limit, ""), http.StatusUnprocessableEntity, "limit")
	}
	wantProblem(t, do(t, routes, nil, "GET", "/api/v1/payments", ""), http.StatusUnauthorized, "")
}

func TestCharge(t *testing.T) {
	routes := newRoutes(t)
	first := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242 4242 4242 4242"))
	if first.status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", first.status, first.raw)
	}
	if k := keys(first.body); !slices.Equal(k, []string{"amount_cents", "currency", "id", "order_id", "status", "user_id"}) {
		t.Errorf("payment keys = %v", k)
	}
	if first.body["status"] != "CAPTURED" || first.body["order_id"] != "order-1" || first.body["user_id"] != "user-1" {
		t.Errorf("payment = %v, want CAPTURED for order-1 of user-1", first.body)
	}

	again := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242 4242 4242 4242"))
	if again.status != http.StatusOK || again.body["id"] != first.body["id"] {
		t.Errorf("repeat: status %d id %v, want 200 and id %v", again.status, again.body["id"], first.body["id"])
	}
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2600, "4242424242424242")),
		http.StatusConflict, "already charged")

	declined := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-2", "user-1", 100, simprovider.DeclinedCard))
	if declined.status != http.StatusCreated || declined.body["status"] != "DECLINED" || declined.body["decline_reason"] != simprovider.ReasonDeclined {
		t.Errorf("declined card: %d %v, want 201 DECLINED card_declined", declined.status, declined.body)
	}

	for _, res := range []response{first, again, declined} {
		if strings.Contains(res.raw, "4242424242424242") || strings.Contains(res.raw, simprovider.DeclinedCard) {
			t.Errorf("answer %s shows the card number", res.raw)
		}
	}

	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-3", "user-1", 100, "4242424242424241")),
		http.StatusUnprocessableEntity, "card number is not valid")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-3", "user-1", 0, "4242424242424242")),
		http.StatusUnprocessableEntity, "amount_cents")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges",
		`{"order_id":"order-3","user_id":"user-1","amount_cents":100,"currency":"USD","card":"4242424242424242","status":"REFUNDED"}`),
		http.StatusBadRequest, "unknown field")
	wantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", `{"order_id":`), http.StatusBadRequest, "")

	plain := chargeBody("order-3", "user-1", 100, "4242424242424242")
	r := httptest.NewRequest("POST", "/internal/v1/charges", strings.NewReader(plain))
	r.Header.Set("Content-Type", "text/plain")
	wantProblem(t, send(t, routes, nil, r, plain), http.StatusUnsupportedMediaType, "content type")

	// None of the refused requests left a payment behind.
	if got := items(t, do(t, routes, admin, "GET", "/api/v1/payments?order_id=order-3", "")); len(got) != 0 {
		t.Errorf("order-3 payments = %v, want none", got)
	}
}

func TestChargeProviderDown(t *testing.T) {
	down := routesOn(newDB(t), downProvider{})
	wantProblem(t, do(t, down, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 100, "4242424242424242")),
		http.StatusServiceUnavailable, "card provider unavailable")
	if got := items(t, do(t, down, admin, "GET", "/api/v1/payments", "")); len(got) != 0 {
		t.Errorf("payments after the provider failed = %v, want none", got)
	}
}

func TestRefund(t *testing.T) {
	routes := newRoutes(t)
	paid := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 100, "4242424242424242"))
	for i := range 2 {
		res := do(t, routes, nil, "POST", "/internal/v1/charges/order-1/refund", "")
		if res.status != http.StatusOK || res.body["status"] != "REFUNDED" || res.body["id"] != paid.body["id"] {
			t.Errorf("refund %d: %d %v, want 200 REFUNDED %v", i+1, res.status, res.body, paid.body["id"])
		}
	}
	void := do(t, routes, nil, "POST", "/internal/v1/charges/order-9/refund", "")
	if void.status != http.StatusOK || void.body["status"] != "VOIDED" {
		t.Errorf("refund before charge: %d %v, want 200 VOIDED", void.status, void.body)
	}
	late := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-9", "user-1", 100, "4242424242424242"))
	if late.status != http.StatusConflict {
		t.Errorf("charge after void: %d %v, want 409", late.status, late.body)
	}
}

func TestOpenAPIIsServed(t *testing.T) {
	res := do(t, newRoutes(t), nil, "GET", "/openapi.yaml", "")
	if res.status != http.StatusOK || res.raw != string(paymenthttp.OpenAPI) || len(paymenthttp.OpenAPI) == 0 {
		t.Fatalf("GET /openapi.yaml = %d with %d bytes, want 200 and the embedded document", res.status, len(res.raw))
	}
}
