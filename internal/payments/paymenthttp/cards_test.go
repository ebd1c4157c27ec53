package paymenthttp_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// newRoutesOn returns the routes over a fresh database, and the database,
// so that a test can read what the service published.
func newRoutesOn(t *testing.T) (http.Handler, *sqldb.DB) {
	t.Helper()
	db := newDB(t)
	return paymenthttp.Routes(payments.NewService(paymentdb.New(db), simprovider.New())), db
}

func tokenChargeBody(order string, amount int, token string) string {
	b, _ := json.Marshal(map[string]any{"order_id": order, "user_id": "user-1", "amount_cents": amount, "currency": "USD", "card_token": token})
	return string(b)
}

func TestTokenize(t *testing.T) {
	routes, _ := newRoutesOn(t)
	first := do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":"4242 4242 4242 4242"}`)
	if first.Status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", first.Status, first.Raw)
	}
	if k := contracttest.Keys(first.Body); !slices.Equal(k, []string{"card_token", "last4"}) {
		t.Errorf("keys = %v, want [card_token last4]", k)
	}
	token, _ := first.Body["card_token"].(string)
	if token == "" || first.Body["last4"] != "4242" || strings.Contains(first.Raw, "4242424242424242") {
		t.Errorf("answer %s, want a token and last4 4242, never the number", first.Raw)
	}
	second := do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":"4242424242424242"}`)
	if second.Status != http.StatusCreated || second.Body["card_token"] == token {
		t.Errorf("second tokenization = %d %v, want 201 and a new token", second.Status, second.Body)
	}

	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":"4242424242424241"}`), http.StatusUnprocessableEntity, "card number is not valid")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/cards", `{}`), http.StatusUnprocessableEntity, "card number is not valid")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":"4242424242424242","cvv":"123"}`), http.StatusBadRequest, "unknown field")
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":`), http.StatusBadRequest, "")
}

func TestChargeByToken(t *testing.T) {
	routes, db := newRoutesOn(t)
	good := do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":"4242424242424242"}`).Body["card_token"].(string)
	declined := do(t, routes, nil, "POST", "/internal/v1/cards", `{"card":"`+simprovider.DeclinedCard+`"}`).Body["card_token"].(string)

	paid := do(t, routes, nil, "POST", "/internal/v1/charges", tokenChargeBody("order-1", 2500, good))
	if paid.Status != http.StatusCreated || paid.Body["status"] != "CAPTURED" {
		t.Errorf("charge by a good token = %d %v, want 201 CAPTURED", paid.Status, paid.Body)
	}
	refused := do(t, routes, nil, "POST", "/internal/v1/charges", tokenChargeBody("order-2", 2500, declined))
	if refused.Status != http.StatusCreated || refused.Body["status"] != "DECLINED" || refused.Body["decline_reason"] != simprovider.ReasonDeclined {
		t.Errorf("charge by a declined card's token = %d %v, want 201 DECLINED %s", refused.Status, refused.Body, simprovider.ReasonDeclined)
	}
	unknown := do(t, routes, nil, "POST", "/internal/v1/charges", tokenChargeBody("order-3", 2500, "card_forged"))
	if unknown.Status != http.StatusCreated || unknown.Body["status"] != "DECLINED" || unknown.Body["decline_reason"] != payments.ReasonUnknownCard {
		t.Errorf("charge by an unknown token = %d %v, want 201 DECLINED %q", unknown.Status, unknown.Body, payments.ReasonUnknownCard)
	}
	both := `{"order_id":"order-4","user_id":"user-1","amount_cents":100,"currency":"USD","card":"4242424242424242","card_token":"` + good + `"}`
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", both), http.StatusUnprocessableEntity, "either card or card_token")
	neither := `{"order_id":"order-4","user_id":"user-1","amount_cents":100,"currency":"USD"}`
	contracttest.WantProblem(t, do(t, routes, nil, "POST", "/internal/v1/charges", neither), http.StatusUnprocessableEntity, "card")

	// Each charge published its outcome, as the orchestrator's; the
	// refused requests published nothing.
	var got []string
	for _, e := range sqldbtest.Outbox(t, db) {
		var p struct {
			OrderID string `json:"order_id"`
			Saga    string `json:"saga"`
		}
		if err := e.Decode(&p); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Type+" "+p.OrderID+" "+p.Saga)
	}
	want := []string{
		"PaymentProcessed order-1 orchestration",
		"PaymentFailed order-2 orchestration",
		"PaymentFailed order-3 orchestration",
	}
	if !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
}

func TestRefundPublishesWhatItLeft(t *testing.T) {
	routes, db := newRoutesOn(t)
	do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 100, "4242424242424242"))
	before := len(sqldbtest.Outbox(t, db))
	for range 2 {
		do(t, routes, nil, "POST", "/internal/v1/charges/order-1/refund", "")
	}
	events := sqldbtest.Outbox(t, db)[before:]
	if len(events) != 2 {
		t.Fatalf("published %d events for two refunds, want 2 (a repeat answers again)", len(events))
	}
	for _, e := range events {
		var p struct {
			Status string `json:"status"`
			Amount int64  `json:"amount_cents"`
		}
		if err := e.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if e.Type != payments.TypePaymentRefunded || p.Status != "REFUNDED" || p.Amount != 100 {
			t.Errorf("published %s %+v, want PaymentRefunded REFUNDED of 100", e.Type, p)
		}
	}
}
