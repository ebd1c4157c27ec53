package orderhttp

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc     *orders.Service
	history func(ctx context.Context, orderID string) ([]orders.StepRecord, error)
}

// orderView is an order as the API shows it.
type orderView struct {
	ID           string        `json:"id"`
	UserID       string        `json:"user_id"`
	Status       orders.Status `json:"status"`
	Items        []orders.Item `json:"items"`
	TotalCents   int64         `json:"total_cents"`
	Currency     string        `json:"currency"`
	Saga         string        `json:"saga"`
	CancelReason string        `json:"cancel_reason,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
}

func view(o orders.Order) orderView {
	return orderView{
		ID: o.ID, UserID: o.UserID, Status: o.Status, Items: o.Items, TotalCents: o.TotalCents,
		Currency: o.Currency, Saga: o.Saga, CancelReason: o.CancelReason, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

type pageView struct {
	Items []orderView `json:"items"`
	Next  string      `json:"next"`
}

func pageOf(p orders.Page) pageView {
	out := pageView{Items: make([]orderView, 0, len(p.Orders)), Next: p.Next}
	for _, o := range p.Orders {
		out.Items = append(out.Items, view(o))
	}
	return out
}

// placeRequest is the checkout body; payment is an object so that more ways
// to pay can be added without breaking v1.
type placeRequest struct {
	Items   []orders.Line `json:"items"`
	Payment struct {
		Card string `json:"card"`
	} `json:"payment"`
	Address orders.Address `json:"shipping_address"`
}

func (h *handlers) place(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	var in placeRequest
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	o, replayed, err := h.svc.Place(r.Context(), p.Subject, r.Header.Get("Idempotency-Key"),
		orders.PlaceRequest{Items: in.Items, Card: in.Payment.Card, Address: in.Address})
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		// A replay answers what the first answer said.
		o.Status, o.UpdatedAt, o.CancelReason = orders.Pending, o.CreatedAt, ""
	}
	w.Header().Set("Location", "/api/v1/orders/"+o.ID)
	web.JSON(w, http.StatusAccepted, view(o))
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	o, err := h.svc.Get(r.Context(), p.Subject, p.IsAdmin(), r.PathValue("id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, view(o))
}

// saga shows an order's saga history: each step with its result.
func (h *handlers) saga(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	o, err := h.svc.Get(r.Context(), p.Subject, p.IsAdmin(), r.PathValue("id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	steps, err := h.history(r.Context(), o.ID)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if steps == nil {
		steps = []orders.StepRecord{}
	}
	web.JSON(w, http.StatusOK, map[string]any{"order_id": o.ID, "saga": o.Saga, "status": o.Status, "steps": steps})
}

func (h *handlers) listMine(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	h.list(w, r, p.Subject)
}

func (h *handlers) listUser(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	id := r.PathValue("id")
	if !p.CanAccess(id) {
		web.Error(w, r, fail.New(fail.Forbidden, "not your account"))
		return
	}
	h.list(w, r, id)
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, userID string) {
	after, limit, err := paging(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	page, err := h.svc.ListByUser(r.Context(), userID, after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, pageOf(page))
}

func (h *handlers) listAll(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := paging(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	page, err := h.svc.ListAll(r.Context(), after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, pageOf(page))
}

// paging reads ?after= and ?limit= (1 to 1000).
func paging(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > 1000 {
			return "", 0, fail.New(fail.Invalid, "limit must be 1 to 1000")
		}
	}
	after = q.Get("after")
	if len(after) > 64 {
		return "", 0, fail.New(fail.Invalid, "after is not a cursor this API gave")
	}
	return after, limit, nil
}

func (h *handlers) settings(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	st, err := h.svc.Settings(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, st)
}

func (h *handlers) updateSettings(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var in orders.Settings
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	st, err := h.svc.UpdateSettings(r.Context(), in)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, st)
}
