package orderhttp

import (
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc  *orders.Service
	deps Deps
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
	CustomerName string        `json:"customer_name,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
}

func view(o orders.Order) orderView {
	return orderView{
		ID: o.ID, UserID: o.UserID, Status: o.Status, Items: o.Items, TotalCents: o.TotalCents,
		Currency: o.Currency, Saga: o.Saga, CancelReason: o.CancelReason, CustomerName: o.CustomerName, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

// Listing bounds. A zero default lets orders.Service pick its own page
// size (50, as the document says), so the two cannot drift apart.
const (
	defaultPageLimit = 0
	maxPageLimit     = 1000
	// maxCursorLen bounds ?after=: the cursors this API hands out are order
	// ids, uuids of 36 characters.
	maxCursorLen = 64
)

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
	steps, err := h.deps.History(r.Context(), o.ID)
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
	after, limit, err := pageParams(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	page, err := h.svc.ListByUser(r.Context(), userID, after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(page.Orders, page.Next, view))
}

func (h *handlers) listAll(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := pageParams(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	page, err := h.svc.ListAll(r.Context(), after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(page.Orders, page.Next, view))
}

// pageParams reads ?after= and ?limit= of a listing. The store takes any
// cursor, so one longer than an order id is refused here.
func pageParams(r *http.Request) (after string, limit int, err error) {
	after, limit, err = web.PageParams(r, defaultPageLimit, maxPageLimit)
	if err != nil {
		return "", 0, err
	}
	if len(after) > maxCursorLen {
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

// rebuild drops the read model and builds it again from the event log.
func (h *handlers) rebuild(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	start := time.Now()
	n, err := h.deps.Rebuild(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"events": n, "took_ms": time.Since(start).Milliseconds()})
}
