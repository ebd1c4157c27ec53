package paymenthttp

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc *payments.Service
}

// paymentSummary is what a customer sees of a payment.
type paymentSummary struct {
	ID          string          `json:"id"`
	OrderID     string          `json:"order_id"`
	AmountCents int64           `json:"amount_cents"`
	Status      payments.Status `json:"status"`
}

// paymentAdminSummary adds, for an admin, whose payment it is and its currency.
type paymentAdminSummary struct {
	paymentSummary
	UserID   string `json:"user_id"`
	Currency string `json:"currency"`
}

// paymentView is the whole payment as the saga sees it. The card is never
// part of it.
type paymentView struct {
	ID            string          `json:"id"`
	OrderID       string          `json:"order_id"`
	UserID        string          `json:"user_id"`
	AmountCents   int64           `json:"amount_cents"`
	Currency      string          `json:"currency"`
	Status        payments.Status `json:"status"`
	DeclineReason string          `json:"decline_reason,omitempty"`
}

// summariesFor returns how the caller sees each payment of a listing: as an
// admin's summary or a customer's.
func summariesFor(caller auth.Principal) func(payments.Payment) any {
	return func(p payments.Payment) any {
		s := paymentSummary{ID: p.ID, OrderID: p.OrderID, AmountCents: p.AmountCents, Status: p.Status}
		if caller.IsAdmin() {
			return paymentAdminSummary{paymentSummary: s, UserID: p.UserID, Currency: p.Currency}
		}
		return s
	}
}

func viewOf(p payments.Payment) paymentView {
	return paymentView{ID: p.ID, OrderID: p.OrderID, UserID: p.UserID, AmountCents: p.AmountCents,
		Currency: p.Currency, Status: p.Status, DeclineReason: p.DeclineReason}
}

// list answers GET /api/v1/payments. With order_id it answers that order's
// payment if the caller may see it, and no items otherwise, so a stranger
// learns nothing, not even that the order was paid. Without it, it lists the
// caller's payments, or everyone's for an admin, a page at a time.
func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := web.PageParams(r, payments.DefaultLimit, payments.MaxLimit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if q := r.URL.Query(); q.Has("order_id") {
		h.listOrder(w, r, p, q.Get("order_id"))
		return
	}
	lq := payments.ListQuery{After: after, Limit: limit}
	if !p.IsAdmin() {
		if p.Subject == "" { // an empty user filter would mean everyone's
			web.Error(w, r, fail.New(fail.Forbidden, "not allowed to list payments"))
			return
		}
		lq.UserID = p.Subject
	}
	page, err := h.svc.List(r.Context(), lq)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(page.Items, page.Next, summariesFor(p)))
}

// listOrder answers the page of one order's payment: empty when it has none,
// or when the caller may not see it.
func (h *handlers) listOrder(w http.ResponseWriter, r *http.Request, p auth.Principal, orderID string) {
	var seen []payments.Payment
	pay, err := h.svc.ByOrder(r.Context(), orderID)
	switch {
	case err == nil:
		if p.CanAccess(pay.UserID) {
			seen = append(seen, pay)
		}
	case !fail.Is(err, fail.NotFound):
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(seen, "", summariesFor(p)))
}

// charge answers POST /internal/v1/charges: 201 with a new payment, captured
// or declined (also for an unknown card token); 200 with the payment the
// order already had.
func (h *handlers) charge(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OrderID     string `json:"order_id"`
		UserID      string `json:"user_id"`
		AmountCents int64  `json:"amount_cents"`
		Currency    string `json:"currency"`
		CardToken   string `json:"card_token"`
		Card        string `json:"card"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	// Only the orchestrator charges over HTTP, so the outcome event names
	// that style.
	pay, created, err := h.svc.Charge(r.Context(), payments.ChargeRequest{
		OrderID: in.OrderID, UserID: in.UserID, AmountCents: in.AmountCents, Currency: in.Currency,
		CardToken: in.CardToken, Card: in.Card, Saga: payments.SagaOrchestration,
	})
	if err != nil {
		web.Error(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	web.JSON(w, status, viewOf(pay))
}

// refund answers POST /internal/v1/charges/{order_id}/refund with the
// order's payment as the refund left it.
func (h *handlers) refund(w http.ResponseWriter, r *http.Request) {
	pay, err := h.svc.Refund(r.Context(), r.PathValue("order_id"), payments.SagaOrchestration)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewOf(pay))
}

// cardView is a tokenized card: the token to charge and the digits its
// owner may see. The number itself is never answered.
type cardView struct {
	CardToken string `json:"card_token"`
	Last4     string `json:"last4"`
}

// tokenize answers POST /internal/v1/cards: 201 with a new token for the
// card, which orders hands on instead of the number.
func (h *handlers) tokenize(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Card string `json:"card"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	card, err := h.svc.Tokenize(r.Context(), in.Card)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusCreated, cardView{CardToken: card.Token, Last4: card.Last4})
}
