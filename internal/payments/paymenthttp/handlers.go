package paymenthttp

import (
	"net/http"
	"net/url"
	"strconv"

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

func summaryOf(p payments.Payment, admin bool) any {
	s := paymentSummary{ID: p.ID, OrderID: p.OrderID, AmountCents: p.AmountCents, Status: p.Status}
	if admin {
		return paymentAdminSummary{paymentSummary: s, UserID: p.UserID, Currency: p.Currency}
	}
	return s
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
	q := r.URL.Query()
	limit, err := parseLimit(q)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if q.Has("order_id") {
		h.listOrder(w, r, p, q.Get("order_id"))
		return
	}
	lq := payments.ListQuery{After: q.Get("after"), Limit: limit}
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
	items := make([]any, 0, len(page.Items))
	for _, pay := range page.Items {
		items = append(items, summaryOf(pay, p.IsAdmin()))
	}
	web.JSON(w, http.StatusOK, map[string]any{"items": items, "next": page.Next})
}

func (h *handlers) listOrder(w http.ResponseWriter, r *http.Request, p auth.Principal, orderID string) {
	items := []any{}
	pay, err := h.svc.ByOrder(r.Context(), orderID)
	switch {
	case err == nil:
		if p.CanAccess(pay.UserID) {
			items = append(items, summaryOf(pay, p.IsAdmin()))
		}
	case !fail.Is(err, fail.NotFound):
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"items": items})
}

// parseLimit reads ?limit=, which is DefaultLimit when absent; the service
// checks its range.
func parseLimit(q url.Values) (int, error) {
	if !q.Has("limit") {
		return payments.DefaultLimit, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil {
		return 0, fail.New(fail.Invalid, "limit must be a whole number from 1 to %d", payments.MaxLimit)
	}
	return n, nil
}

// charge answers POST /internal/v1/charges: 201 with a new payment, captured
// or declined; 200 with the payment the order already had.
func (h *handlers) charge(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OrderID     string `json:"order_id"`
		UserID      string `json:"user_id"`
		AmountCents int64  `json:"amount_cents"`
		Currency    string `json:"currency"`
		Card        string `json:"card"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	pay, created, err := h.svc.Charge(r.Context(), payments.ChargeRequest{
		OrderID: in.OrderID, UserID: in.UserID, AmountCents: in.AmountCents, Currency: in.Currency, Card: in.Card,
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
	pay, err := h.svc.Refund(r.Context(), r.PathValue("order_id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewOf(pay))
}
