package shippinghttp

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc *shipping.Service
}

// shipmentSummary is what a customer sees of a shipment.
type shipmentSummary struct {
	ID      string          `json:"id"`
	OrderID string          `json:"order_id"`
	Status  shipping.Status `json:"status"`
}

// shipmentAdminSummary adds, for an admin, whose shipment it is (empty for
// the tombstone of a cancel that came before any schedule).
type shipmentAdminSummary struct {
	shipmentSummary
	UserID string `json:"user_id"`
}

// address is the wire form of a shipping.Address.
type address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// shipmentView is the whole shipment as the saga sees it. A tombstone has no
// address.
type shipmentView struct {
	ID      string          `json:"id"`
	OrderID string          `json:"order_id"`
	UserID  string          `json:"user_id"`
	Status  shipping.Status `json:"status"`
	Address *address        `json:"address,omitempty"`
}

// summariesFor returns how the caller sees each shipment of a listing: as
// an admin's summary or a customer's.
func summariesFor(caller auth.Principal) func(shipping.Shipment) any {
	return func(sh shipping.Shipment) any {
		s := shipmentSummary{ID: sh.ID, OrderID: sh.OrderID, Status: sh.Status}
		if caller.IsAdmin() {
			return shipmentAdminSummary{shipmentSummary: s, UserID: sh.UserID}
		}
		return s
	}
}

func viewOf(sh shipping.Shipment) shipmentView {
	v := shipmentView{ID: sh.ID, OrderID: sh.OrderID, UserID: sh.UserID, Status: sh.Status}
	if sh.Address != (shipping.Address{}) {
		a := sh.Address
		v.Address = &address{Name: a.Name, Line1: a.Line1, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
	}
	return v
}

// list answers GET /api/v1/shipments. With order_id it answers that order's
// shipment if the caller may see it, and no items otherwise, so a stranger
// learns nothing. Without it, it lists the caller's shipments, or everyone's
// for an admin, a page at a time.
func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := web.PageParams(r, shipping.DefaultLimit, shipping.MaxLimit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if q := r.URL.Query(); q.Has("order_id") {
		h.listOrder(w, r, p, q.Get("order_id"))
		return
	}
	lq := shipping.ListQuery{After: after, Limit: limit}
	if !p.IsAdmin() {
		if p.Subject == "" { // an empty user filter would mean everyone's
			web.Error(w, r, fail.New(fail.Forbidden, "not allowed to list shipments"))
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

// listOrder answers the page of one order's shipment: empty when it has none,
// or when the caller may not see it.
func (h *handlers) listOrder(w http.ResponseWriter, r *http.Request, p auth.Principal, orderID string) {
	var seen []shipping.Shipment
	sh, err := h.svc.ByOrder(r.Context(), orderID)
	switch {
	case err == nil:
		if p.CanAccess(sh.UserID) {
			seen = append(seen, sh)
		}
	case !fail.Is(err, fail.NotFound):
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(seen, "", summariesFor(p)))
}

// orchestrated is the saga of every call to the internal endpoints: only the
// orchestrator ever called them, and it now sends commands over the bus.
const orchestrated = shipping.Orchestration

// schedule answers POST /internal/v1/shipments: 201 with a new shipment, 200
// with the one the order already had, 409 if it was cancelled.
func (h *handlers) schedule(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OrderID string  `json:"order_id"`
		UserID  string  `json:"user_id"`
		Address address `json:"address"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	a := in.Address
	sh, created, err := h.svc.Schedule(r.Context(), orchestrated, in.OrderID, in.UserID, shipping.Address{
		Name: a.Name, Line1: a.Line1, City: a.City, PostalCode: a.PostalCode, Country: a.Country,
	})
	if err != nil {
		web.Error(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	web.JSON(w, status, viewOf(sh))
}

// cancel answers POST /internal/v1/shipments/{order_id}/cancel with the
// order's shipment, cancelled.
func (h *handlers) cancel(w http.ResponseWriter, r *http.Request) {
	sh, err := h.svc.Cancel(r.Context(), orchestrated, r.PathValue("order_id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewOf(sh))
}
