package paymenthttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
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
	return sqldbtest.OpenMessaging(t, "payments", paymentdb.Migrations)
}

// routesOn is the payments mux as the shop builds it: the service's routes
// over db with provider, the dead-letter admin routes of a real inbox over
// the same database, the fault routes, and the provider's mode switch when
// it is the simulated one.
func routesOn(db *sqldb.DB, provider payments.Provider) *http.ServeMux {
	mux := paymenthttp.Routes(payments.NewService(paymentdb.New(db), provider))
	inbox.Mount(mux, inbox.New(db, "payments", nil))
	resilience.Mount(mux, resilience.NewEdges("payments", resilience.DefaultPolicy(), nil))
	fault.Mount(mux, fault.New("payments"))
	if sim, ok := provider.(*simprovider.Provider); ok {
		paymenthttp.MountProvider(mux, sim)
	}
	return mux
}

// newRoutes is the payments mux over a fresh database and the simulated
// card provider.
func newRoutes(t *testing.T) *http.ServeMux {
	t.Helper()
	return routesOn(newDB(t), simprovider.New())
}

// server serves routes and checks every exchange against the document.
func server(t *testing.T, routes http.Handler) contracttest.Server {
	t.Helper()
	return contracttest.Server{Handler: routes, Doc: contracttest.Load(t, paymenthttp.OpenAPI)}
}

// do sends one request through the real routes, as p when p is not nil,
// with a JSON body (none when empty), checked against the document.
func do(t *testing.T, routes http.Handler, p *auth.Principal, method, target, body string) contracttest.Response {
	t.Helper()
	return server(t, routes).Call(t, p, method, target, body)
}

func chargeBody(order, user string, amount int, card string) string {
	b, _ := json.Marshal(map[string]any{"order_id": order, "user_id": user, "amount_cents": amount, "currency": "USD", "card": card})
	return string(b)
}

func TestGetPaymentOfOrder(t *testing.T) {
	routes := newRoutes(t)
	created := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242424242424242"))
	if created.Status != http.StatusCreated {
		t.Fatalf("charge: status = %d, want 201; body %s", created.Status, created.Raw)
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
			if res.Status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.Status, res.Raw)
			}
			got := contracttest.Items(t, res)
			if len(got) != tt.wantItems {
				t.Fatalf("items = %v, want %d", got, tt.wantItems)
			}
			if tt.wantItems == 0 {
				return
			}
			if k := contracttest.Keys(got[0]); !slices.Equal(k, tt.wantKeys) {
				t.Errorf("item keys = %v, want %v", k, tt.wantKeys)
			}
			item := got[0].(map[string]any)
			if item["id"] != created.Body["id"] || item["status"] != "CAPTURED" || item["amount_cents"] != 2500.0 {
				t.Errorf("item = %v, want payment %v CAPTURED 2500", item, created.Body["id"])
			}
		})
	}

	contracttest.WantProblem(t, do(t, routes, nil, "GET", "/api/v1/payments?order_id=order-1", ""), http.StatusUnauthorized, "authentication required")
	contracttest.WantProblem(t, do(t, routes, owner, "GET", "/api/v1/payments?order_id=", ""), http.StatusUnprocessableEntity, "order_id")
}

func TestListPayments(t *testing.T) {
	routes := newRoutes(t)
	for i, user := range []string{"user-1", "user-2", "user-1", "user-1"} {
		res := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-"+string(rune('a'+i)), user, 100+i, "4242424242424242"))
		if res.Status != http.StatusCreated {
			t.Fatalf("charge %d: status %d, body %s", i, res.Status, res.Raw)
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
		if res.Status != http.StatusOK {
			t.Fatalf("status = %d, body %s", res.Status, res.Raw)
		}
		if k := contracttest.Keys(res.Body); !slices.Equal(k, []string{"items", "next"}) {
			t.Errorf("body keys = %v, want [items next]", k)
		}
		for _, it := range contracttest.Items(t, res) {
			if k := contracttest.Keys(it); !slices.Equal(k, []string{"amount_cents", "id", "order_id", "status"}) {
				t.Errorf("customer item keys = %v", k)
			}
			seen = append(seen, it.(map[string]any)["order_id"].(string))
		}
		next, _ := res.Body["next"].(string)
		if next == "" {
			break
		}
		target = "/api/v1/payments?limit=2&after=" + next
	}
	if want := []string{"order-a", "order-c", "order-d"}; !slices.Equal(seen, want) {
		t.Errorf("owner's orders = %v, want %v", seen, want)
	}

	res := do(t, routes, admin, "GET", "/api/v1/payments", "")
	if got := contracttest.Items(t, res); len(got) != 4 || res.Body["next"] != "" {
		t.Errorf("admin listing = %d items, next %v; want 4, empty", len(got), res.Body["next"])
	} else if k := contracttest.Keys(got[0]); !slices.Equal(k, []string{"amount_cents", "currency", "id", "order_id", "status", "user_id"}) {
		t.Errorf("admin item keys = %v", k)
	}

	for _, limit := range []string{"0", "-1", "1001", "abc", "", "2.5"} {
		contracttest.WantProblem(t, do(t, routes, admin, "GET", "/api/v1/payments?limit="+limit, ""), http.StatusUnprocessableEntity, "limit")
	}
	contracttest.WantProblem(t, do(t, routes, nil, "GET", "/api/v1/payments", ""), http.StatusUnauthorized, "")
}

func TestCharge(t *testing.T) {
	routes := newRoutes(t)
	first := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242 4242 4242 4242"))
	if first.Status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", first.Status, first.Raw)
	}
	if k := contracttest.Keys(first.Body); !slices.Equal(k, []string{"amount_cents", "currency", "id", "order_id", "status", "user_id"}) {
		t.Errorf("payment keys = %v", k)
	}
	if first.Body["status"] != "CAPTURED" || first.Body["order_id"] != "order-1" || first.Body["user_id"] != "user-1" {
		t.Errorf("payment = %v, want CAPTURED for order-1 of user-1", first.Body)
	}

	again := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242 4242 4242 4242"))
	if again.Status != http.StatusOK || again.Body["id"] != first.Body["id"] {
		t.Errorf("repeat: status %d id %v, want 200 and id %v", again.Status, again.Body["id"], first.Body["id"])
	}
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2600, "4242424242424242")),
		http.StatusConflict, "already charged")

	declined := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-2", "user-1", 100, simprovider.DeclinedCard))
	if declined.Status != http.StatusCreated || declined.Body["status"] != "DECLINED" || declined.Body["decline_reason"] != simprovider.ReasonDeclined {
		t.Errorf("declined card: %d %v, want 201 DECLINED card_declined", declined.Status, declined.Body)
	}

	for _, res := range []contracttest.Response{first, again, declined} {
		if strings.Contains(res.Raw, "4242424242424242") || strings.Contains(res.Raw, simprovider.DeclinedCard) {
			t.Errorf("answer %s shows the card number", res.Raw)
		}
	}

	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-3", "user-1", 100, "4242424242424241")),
		http.StatusUnprocessableEntity, "card number is not valid")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-3", "user-1", 0, "4242424242424242")),
		http.StatusUnprocessableEntity, "amount_cents")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges",
		`{"order_id":"order-3","user_id":"user-1","amount_cents":100,"currency":"USD","card":"4242424242424242","status":"REFUNDED"}`),
		http.StatusBadRequest, "unknown field")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", `{"order_id":`), http.StatusBadRequest, "")

	plain := chargeBody("order-3", "user-1", 100, "4242424242424242")
	r := httptest.NewRequest("POST", "/internal/v1/charges", strings.NewReader(plain))
	r.Header.Set("Content-Type", "text/plain")
	contracttest.WantProblem(t, server(t, routes).Exchange(t, nil, r), http.StatusUnsupportedMediaType, "content type")

	// None of the refused requests left a payment behind.
	if got := contracttest.Items(t, do(t, routes, admin, "GET", "/api/v1/payments?order_id=order-3", "")); len(got) != 0 {
		t.Errorf("order-3 payments = %v, want none", got)
	}
}

func TestChargeProviderDown(t *testing.T) {
	down := routesOn(newDB(t), downProvider{})
	contracttest.WantProblem(t, do(t, down, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 100, "4242424242424242")),
		http.StatusServiceUnavailable, "card provider unavailable")
	if got := contracttest.Items(t, do(t, down, admin, "GET", "/api/v1/payments", "")); len(got) != 0 {
		t.Errorf("payments after the provider failed = %v, want none", got)
	}
}

func TestRefund(t *testing.T) {
	routes := newRoutes(t)
	paid := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 100, "4242424242424242"))
	for i := range 2 {
		res := do(t, routes, nil, "POST", "/internal/v1/charges/order-1/refund", "")
		if res.Status != http.StatusOK || res.Body["status"] != "REFUNDED" || res.Body["id"] != paid.Body["id"] {
			t.Errorf("refund %d: %d %v, want 200 REFUNDED %v", i+1, res.Status, res.Body, paid.Body["id"])
		}
	}
	void := do(t, routes, nil, "POST", "/internal/v1/charges/order-9/refund", "")
	if void.Status != http.StatusOK || void.Body["status"] != "VOIDED" {
		t.Errorf("refund before charge: %d %v, want 200 VOIDED", void.Status, void.Body)
	}
	late := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-9", "user-1", 100, "4242424242424242"))
	if late.Status != http.StatusConflict {
		t.Errorf("charge after void: %d %v, want 409", late.Status, late.Body)
	}
}
