package legacyhttp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct{ svc *legacy.Service }

// facade is the only caller of the internal routes: the gateway, whose
// strangler-fig facade copies the monolith's data out and hands its domains
// over.
const facade = "gateway"

// profileView is a customer as the old API shows it.
type profileView struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

func viewProfile(c legacy.Customer) profileView {
	return profileView{CustomerID: c.ID, Name: c.Name, Email: c.Email}
}

type lineView struct {
	ProductID      string `json:"product_id"`
	Qty            int    `json:"qty"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// orderView is an order as the old API shows it.
type orderView struct {
	OrderNo    string        `json:"order_no"`
	Status     legacy.Status `json:"status"`
	Lines      []lineView    `json:"lines"`
	TotalCents int64         `json:"total_cents"`
	Currency   string        `json:"currency"`
	PlacedAt   time.Time     `json:"placed_at"`
}

func viewOrder(o legacy.Order) orderView {
	lines := make([]lineView, 0, len(o.Lines))
	for _, l := range o.Lines {
		lines = append(lines, lineView{ProductID: l.ProductID, Qty: l.Qty, UnitPriceCents: l.UnitPriceCents})
	}
	return orderView{OrderNo: o.No, Status: o.Status, Lines: lines, TotalCents: o.TotalCents, Currency: o.Currency, PlacedAt: o.PlacedAt.UTC()}
}

// addressView is where an order is delivered, in requests and exports.
type addressView struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type handoverView struct {
	Domain   string    `json:"domain"`
	Service  string    `json:"service"`
	HandedAt time.Time `json:"handed_at"`
}

func viewHandover(h legacy.Handover) handoverView {
	return handoverView{Domain: h.Domain, Service: h.Service, HandedAt: h.HandedAt.UTC()}
}

func viewHandovers(list []legacy.Handover) []handoverView {
	out := make([]handoverView, 0, len(list))
	for _, h := range list {
		out = append(out, viewHandover(h))
	}
	return out
}

// caller is the customer a public request speaks for, with the bearer token
// that enrolment shows the users service.
func caller(r *http.Request) (legacy.Caller, error) {
	p, err := auth.User(r.Context())
	if err != nil {
		return legacy.Caller{}, err
	}
	token, _, _ := auth.BearerToken(r) // present and well-formed: the principal came from it
	return legacy.Caller{ID: p.Subject, Token: token}, nil
}

// writeError answers err: a request for a handed-over domain as 410 Gone
// naming the service that has its data now, anything else as its kind says.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var moved *legacy.Moved
	if errors.As(err, &moved) {
		gone(w, r, moved)
		return
	}
	web.Error(w, r, err)
}

// goneProblem is the problem of a moved route, with the extension member
// moved_to, so that a client can find the data's new home without parsing
// the detail.
type goneProblem struct {
	web.Problem
	MovedTo string `json:"moved_to"`
}

func gone(w http.ResponseWriter, r *http.Request, m *legacy.Moved) {
	p := goneProblem{
		Problem: web.Problem{
			Type: "about:blank", Title: http.StatusText(http.StatusGone), Status: http.StatusGone,
			Detail: m.Error(), Instance: r.URL.Path, RequestID: w.Header().Get(web.RequestIDHeader),
		},
		MovedTo: m.Service,
	}
	w.Header().Set("Content-Type", web.ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusGone)
	_ = json.NewEncoder(w).Encode(p)
}

func (h *handlers) profile(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cust, err := h.svc.Profile(r.Context(), c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewProfile(cust))
}

func (h *handlers) rename(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// A moved route is gone whatever its body says.
	if err := h.svc.Serving(r.Context(), legacy.DomainProfiles); err != nil {
		writeError(w, r, err)
		return
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	cust, err := h.svc.Rename(r.Context(), c, in.Name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewProfile(cust))
}

func (h *handlers) listOrders(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, err := h.svc.Orders(r.Context(), c.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]orderView, 0, len(list))
	for _, o := range list {
		out = append(out, viewOrder(o))
	}
	web.JSON(w, http.StatusOK, map[string]any{"orders": out})
}

func (h *handlers) getOrder(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	o, err := h.svc.Order(r.Context(), c.ID, r.PathValue("order_no"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewOrder(o))
}

// placeRequest is the old shop's order form.
type placeRequest struct {
	Lines []struct {
		ProductID string `json:"product_id"`
		Qty       int    `json:"qty"`
	} `json:"lines"`
	CardNumber string      `json:"card_number"`
	DeliverTo  addressView `json:"deliver_to"`
}

func (h *handlers) placeOrder(w http.ResponseWriter, r *http.Request) {
	c, err := caller(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := h.svc.Serving(r.Context(), legacy.DomainOrders); err != nil {
		writeError(w, r, err)
		return
	}
	var in placeRequest
	if err := web.Decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	req := legacy.PlaceRequest{CardNumber: in.CardNumber, DeliverTo: legacy.Address(in.DeliverTo)}
	for _, l := range in.Lines {
		req.Lines = append(req.Lines, legacy.LineRequest{ProductID: l.ProductID, Qty: l.Qty})
	}
	o, err := h.svc.Place(r.Context(), c.ID, req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/orders/"+o.No)
	web.JSON(w, http.StatusCreated, viewOrder(o))
}

func (h *handlers) stats(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		writeError(w, r, err)
		return
	}
	st, err := h.svc.Stats(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"customers": st.Customers, "orders": st.Orders, "handovers": viewHandovers(st.Handovers)})
}

// fromFacade lets only the gateway through: the host has checked that a
// service token came, this checks whose it is.
func fromFacade(r *http.Request) error {
	p, err := auth.Service(r.Context())
	if err != nil {
		return err
	}
	if p.Subject != facade {
		return fail.New(fail.Forbidden, "only the %s may call this route", facade)
	}
	return nil
}

// exportParams reads an export's ?after= (a change number, 0 when absent)
// and ?limit=.
func exportParams(r *http.Request) (after int64, limit int, err error) {
	_, limit, err = web.PageParams(r, legacy.DefaultExportLimit, legacy.MaxExportLimit)
	if err != nil {
		return 0, 0, err
	}
	if q := r.URL.Query(); q.Has("after") {
		after, err = strconv.ParseInt(q.Get("after"), 10, 64)
		if err != nil || after < 0 {
			return 0, 0, fail.New(fail.Invalid, "after must be a whole number of 0 or more")
		}
	}
	return after, limit, nil
}

type exportedProfile struct {
	profileView
	Seq int64 `json:"seq"`
}

func (h *handlers) exportProfiles(w http.ResponseWriter, r *http.Request) {
	serveExport(w, r, h.svc.ExportProfiles, func(c legacy.Customer, seq int64) exportedProfile {
		return exportedProfile{profileView: viewProfile(c), Seq: seq}
	})
}

// exportedOrder is an order whole, as the facade copies it: the old API's
// view with its customer, delivery address and change number.
type exportedOrder struct {
	orderView
	CustomerID string      `json:"customer_id"`
	DeliverTo  addressView `json:"deliver_to"`
	Seq        int64       `json:"seq"`
}

func (h *handlers) exportOrders(w http.ResponseWriter, r *http.Request) {
	serveExport(w, r, h.svc.ExportOrders, func(o legacy.Order, seq int64) exportedOrder {
		return exportedOrder{orderView: viewOrder(o), CustomerID: o.CustomerID, DeliverTo: addressView(o.DeliverTo), Seq: seq}
	})
}

// serveExport answers the facade one page of an export: the records
// changed after ?after=, each in its exported view with its change number.
func serveExport[T, V any](w http.ResponseWriter, r *http.Request, read func(ctx context.Context, after int64, limit int) (legacy.Export[T], error), view func(T, int64) V) {
	if err := fromFacade(r); err != nil {
		writeError(w, r, err)
		return
	}
	after, limit, err := exportParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := read(r.Context(), after, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items := make([]V, 0, len(page.Items))
	for _, it := range page.Items {
		items = append(items, view(it.Item, it.Seq))
	}
	web.JSON(w, http.StatusOK, map[string]any{"items": items, "next": page.Next})
}

func (h *handlers) handovers(w http.ResponseWriter, r *http.Request) {
	if err := fromFacade(r); err != nil {
		writeError(w, r, err)
		return
	}
	list, err := h.svc.Handovers(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"handovers": viewHandovers(list)})
}

func (h *handlers) handOver(w http.ResponseWriter, r *http.Request) {
	if err := fromFacade(r); err != nil {
		writeError(w, r, err)
		return
	}
	var in struct {
		Domain  string `json:"domain"`
		Service string `json:"service"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	ho, err := h.svc.HandOver(r.Context(), in.Domain, in.Service)
	if err != nil {
		writeError(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, viewHandover(ho))
}
