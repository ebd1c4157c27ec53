package orderhttp

import (
	"log/slog"
	"net/http"
	"net/url"
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

// orderView is an order as API v1 shows it. v1 knows only the orders
// placed here, so it shows no origin, and its saga is one of orders.Modes.
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
		Currency: o.Currency, Saga: o.Saga, CancelReason: o.CancelReason, CustomerName: o.CustomerName,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

// orderViewV2 is an order as API v2 shows it: the v1 fields, and where
// the order comes from, always; the saga of an imported one is none.
type orderViewV2 struct {
	orderView
	Origin string `json:"origin"`
}

func viewV2(o orders.Order) orderViewV2 {
	origin := o.Origin
	if !o.Imported() {
		origin = orders.OriginShop
	}
	return orderViewV2{orderView: view(o), Origin: origin}
}

// version is what differs between the API versions that show orders: the
// orders each knows of, and how it shows one.
type version struct {
	origins orders.Origins
	show    func(orders.Order) any
}

var (
	// v1 was published before orders were imported, with a saga enum an
	// imported order's none is not in: it never shows one.
	v1 = version{orders.PlacedHere, func(o orders.Order) any { return view(o) }}
	// v2 shows every order, with its origin.
	v2 = version{orders.AnyOrigin, func(o orders.Order) any { return viewV2(o) }}
)

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

func (h *handlers) get(w http.ResponseWriter, r *http.Request) { h.getIn(w, r, v1) }

func (h *handlers) getV2(w http.ResponseWriter, r *http.Request) { h.getIn(w, r, v2) }

func (h *handlers) getIn(w http.ResponseWriter, r *http.Request, v version) {
	o, err := h.order(r, v)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, v.show(o))
}

// order is the order the path names, if the caller may see it (its owner
// or an admin) and version v knows of it. To v1 an imported order does not
// exist, but those who may see it are told where to find it; anyone else
// is not told it exists.
func (h *handlers) order(r *http.Request, v version) (orders.Order, error) {
	p, err := auth.User(r.Context())
	if err != nil {
		return orders.Order{}, err
	}
	o, err := h.svc.Get(r.Context(), p.Subject, p.IsAdmin(), r.PathValue("id"))
	if err != nil {
		return orders.Order{}, err
	}
	if o.Imported() && v.origins == orders.PlacedHere {
		return orders.Order{}, fail.New(fail.NotFound, "order %s was imported from the old shop: see /api/v2/orders/%s", o.ID, url.PathEscape(o.ID))
	}
	return o, nil
}

// saga shows an order's saga history: each step with its result. Only v1
// has it: an imported order ran no saga.
func (h *handlers) saga(w http.ResponseWriter, r *http.Request) {
	o, err := h.order(r, v1)
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

func (h *handlers) listMine(w http.ResponseWriter, r *http.Request) { h.listMineIn(w, r, v1) }

func (h *handlers) listMineV2(w http.ResponseWriter, r *http.Request) { h.listMineIn(w, r, v2) }

func (h *handlers) listMineIn(w http.ResponseWriter, r *http.Request, v version) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	h.list(w, r, p.Subject, v)
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
	h.list(w, r, id, v1)
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, userID string, v version) {
	after, limit, err := pageParams(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	page, err := h.svc.ListByUser(r.Context(), userID, v.origins, after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(page.Orders, page.Next, v.show))
}

func (h *handlers) listAll(w http.ResponseWriter, r *http.Request) { h.listAllIn(w, r, v1) }

func (h *handlers) listAllV2(w http.ResponseWriter, r *http.Request) { h.listAllIn(w, r, v2) }

func (h *handlers) listAllIn(w http.ResponseWriter, r *http.Request, v version) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := pageParams(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	page, err := h.svc.ListAll(r.Context(), v.origins, after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(page.Orders, page.Next, v.show))
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

// importer is the one service that may import the legacy monolith's data:
// the gateway, whose strangler-fig facade copies it before it moves a route.
const importer = "gateway"

// legacyOrder is a historical order as the facade sends it.
type legacyOrder struct {
	ID         string         `json:"id"`
	UserID     string         `json:"user_id"`
	Status     orders.Status  `json:"status"`
	Items      []orders.Item  `json:"items"`
	TotalCents int64          `json:"total_cents"`
	Currency   string         `json:"currency"`
	CreatedAt  time.Time      `json:"created_at"`
	Address    orders.Address `json:"shipping_address"`
}

// importOrders answers POST /internal/v1/import/orders: the monolith's
// orders, taken over. The host lets only service tokens reach an internal
// path; of the services, only the gateway may import.
func (h *handlers) importOrders(w http.ResponseWriter, r *http.Request) {
	p, err := auth.Service(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if p.Subject != importer {
		web.Error(w, r, fail.New(fail.Forbidden, "only the %s imports orders", importer))
		return
	}
	var in struct {
		Orders []legacyOrder `json:"orders"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	batch := make([]orders.Order, len(in.Orders))
	for i, o := range in.Orders {
		batch[i] = orders.Order{
			ID: o.ID, UserID: o.UserID, Status: o.Status, Items: o.Items, TotalCents: o.TotalCents,
			Currency: o.Currency, CreatedAt: o.CreatedAt, Address: o.Address,
		}
	}
	res, err := h.svc.Import(r.Context(), batch)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.LoggerFrom(r.Context()).InfoContext(r.Context(), "legacy orders imported",
		slog.Int("imported", res.Imported), slog.Int("skipped", res.Skipped), slog.Int("conflicts", len(res.Conflicts)))
	web.JSON(w, http.StatusOK, map[string]any{"imported": res.Imported, "skipped": res.Skipped, "conflicts": res.Conflicts})
}
