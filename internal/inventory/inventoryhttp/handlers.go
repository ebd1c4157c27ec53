package inventoryhttp

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc *inventory.Service
}

// stockLevel is the public view of a product's stock.
type stockLevel struct {
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
}

// stockBook is the admin view: every unit accounted for.
type stockBook struct {
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Supplied  int64  `json:"supplied"`
}

type item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

type reservation struct {
	OrderID string           `json:"order_id"`
	Status  inventory.Status `json:"status"`
	Items   []item           `json:"items"`
}

func levelView(s inventory.Stock) stockLevel {
	return stockLevel{ProductID: s.ProductID, Available: s.Available, Reserved: s.Reserved}
}

func bookView(s inventory.Stock) stockBook { return stockBook(s) }

func reservationView(r inventory.Reservation) reservation {
	out := reservation{OrderID: r.OrderID, Status: r.Status, Items: make([]item, 0, len(r.Items))}
	for _, it := range r.Items {
		out.Items = append(out.Items, item{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return out
}

func (h *handlers) getStock(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.Stock(r.Context(), r.PathValue("product_id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, levelView(st))
}

func (h *handlers) setStock(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var in struct {
		// A pointer tells a missing level from zero, which is a valid one.
		Available *int64 `json:"available"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	if in.Available == nil {
		web.Error(w, r, fail.New(fail.Invalid, "available is required"))
		return
	}
	st, err := h.svc.SetAvailable(r.Context(), r.PathValue("product_id"), *in.Available)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, levelView(st))
}

func (h *handlers) listStock(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := web.PageParams(r, inventory.DefaultPageLimit, inventory.MaxPageLimit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	p, err := h.svc.ListStock(r.Context(), after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(p.Items, p.Next, bookView))
}

// listReservations pages through every reservation, or with ?order_id=
// answers a page of just that order's (empty if it has none), so the audit
// can check one order with the same shape.
func (h *handlers) listReservations(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := web.PageParams(r, inventory.DefaultPageLimit, inventory.MaxPageLimit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if q := r.URL.Query(); q.Has("order_id") {
		if err := inventory.ValidatePage(after, limit); err != nil {
			web.Error(w, r, err)
			return
		}
		var found []inventory.Reservation
		res, err := h.svc.Reservation(r.Context(), q.Get("order_id"))
		switch {
		case fail.Is(err, fail.NotFound):
		case err != nil:
			web.Error(w, r, err)
			return
		default:
			found = append(found, res)
		}
		web.JSON(w, http.StatusOK, web.PageOf(found, "", reservationView))
		return
	}
	p, err := h.svc.ListReservations(r.Context(), after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(p.Items, p.Next, reservationView))
}

// orchestrated is the saga of every call to the internal endpoints: only the
// orchestrator ever called them, and it now sends commands over the bus.
const orchestrated = inventory.Orchestration

// reserve answers 201 for a new reservation and 200 for one that already
// existed, so the orchestrator can tell a retry from a first call; the body
// is the same either way.
func (h *handlers) reserve(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OrderID string `json:"order_id"`
		Items   []item `json:"items"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	items := make([]inventory.Item, 0, len(in.Items))
	for _, it := range in.Items {
		items = append(items, inventory.Item{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	res, created, err := h.svc.Reserve(r.Context(), orchestrated, in.OrderID, items)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	web.JSON(w, status, reservationView(res))
}

func (h *handlers) commit(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.Commit(r.Context(), orchestrated, r.PathValue("order_id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, reservationView(res))
}

func (h *handlers) release(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.Release(r.Context(), orchestrated, r.PathValue("order_id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, reservationView(res))
}
