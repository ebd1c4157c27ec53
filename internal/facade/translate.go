package facade

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// Once a route has moved, the facade is an anti-corruption layer: it speaks
// the monolith's old API to the old clients and the new services' versioned
// APIs to them, so neither has to learn the other's words. The answers are
// the monolith's shapes, built from the services' data.

// maxOldListing is how many orders the old API lists: the monolith showed a
// customer's newest 200.
const maxOldListing = 200

// oldProfile is the monolith's profile.
type oldProfile struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

// oldOrder is the monolith's order.
type oldOrder struct {
	OrderNo    string       `json:"order_no"`
	Status     string       `json:"status"`
	Lines      []legacyLine `json:"lines"`
	TotalCents int64        `json:"total_cents"`
	Currency   string       `json:"currency"`
	PlacedAt   time.Time    `json:"placed_at"`
}

// newOrder is an order as the orders service's API shows it. The facade
// reads v2, which shows the orders imported from the monolith too (v1 keeps
// its published promise of orders placed through a saga only).
type newOrder struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Items  []struct {
		ProductID  string `json:"product_id"`
		Quantity   int    `json:"quantity"`
		PriceCents int64  `json:"price_cents"`
	} `json:"items"`
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
}

func (o newOrder) old() oldOrder {
	lines := make([]legacyLine, len(o.Items))
	for i, it := range o.Items {
		lines[i] = legacyLine{ProductID: it.ProductID, Qty: it.Quantity, UnitPriceCents: it.PriceCents}
	}
	return oldOrder{OrderNo: o.ID, Status: oldStatus(o.Status), Lines: lines, TotalCents: o.TotalCents, Currency: o.Currency, PlacedAt: o.CreatedAt.UTC()}
}

// oldStatus says an order's status in the monolith's words: an order the
// saga is still working on is placed; a completed one is what the old shop
// called confirmed.
func oldStatus(s string) string {
	switch s {
	case "COMPLETED":
		return "CONFIRMED"
	case "CANCELLED":
		return "CANCELLED"
	}
	return "PLACED"
}

// caller is the customer a request speaks for, and the token to speak for
// them with.
func caller(w http.ResponseWriter, req *http.Request) (auth.Principal, string, bool) {
	p, err := auth.User(req.Context())
	if err != nil {
		web.Error(w, req, err)
		return auth.Principal{}, "", false
	}
	token, _, _ := auth.BearerToken(req)
	return p, token, true
}

func methodNotAllowed(w http.ResponseWriter, req *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	web.WriteProblem(w, req, http.StatusMethodNotAllowed, "method "+req.Method+" is not allowed on "+req.URL.Path)
}

// serveProfile answers /profile from the users service.
func (f *Facade) serveProfile(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/profile" {
		web.Error(w, req, fail.New(fail.NotFound, "no route for %s", req.URL.Path))
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPut {
		methodNotAllowed(w, req, "GET, PUT")
		return
	}
	p, token, ok := caller(w, req)
	if !ok {
		return
	}
	ctx := req.Context()
	if req.Method == http.MethodPut {
		var in struct {
			Name string `json:"name"`
		}
		if err := web.Decode(w, req, &in); err != nil {
			web.Error(w, req, err)
			return
		}
		if err := f.call.Do(ctx, upstream.Call{Service: "users", Method: http.MethodPatch, Path: "/api/v1/users/" + url.PathEscape(p.Subject),
			Token: token, Body: in, Idempotent: true}); err != nil {
			web.Error(w, req, err)
			return
		}
	}
	var u struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := f.call.Do(ctx, upstream.Call{Service: "users", Method: http.MethodGet, Path: "/api/v2/users/" + url.PathEscape(p.Subject), Token: token, Out: &u}); err != nil {
		web.Error(w, req, err)
		return
	}
	web.JSON(w, http.StatusOK, oldProfile{CustomerID: u.ID, Name: u.Name, Email: u.Email})
}

// serveOrders answers /orders and /orders/{order_no} from the orders service.
func (f *Facade) serveOrders(w http.ResponseWriter, req *http.Request) {
	no, one := strings.CutPrefix(req.URL.Path, "/orders/")
	switch {
	case one && (no == "" || strings.Contains(no, "/")):
		web.Error(w, req, fail.New(fail.NotFound, "no route for %s", req.URL.Path))
	case one && req.Method != http.MethodGet:
		methodNotAllowed(w, req, "GET")
	case one:
		f.getOrder(w, req, no)
	case req.Method == http.MethodGet:
		f.listOrders(w, req)
	case req.Method == http.MethodPost:
		f.placeOrder(w, req)
	default:
		methodNotAllowed(w, req, "GET, POST")
	}
}

func (f *Facade) getOrder(w http.ResponseWriter, req *http.Request, no string) {
	_, token, ok := caller(w, req)
	if !ok {
		return
	}
	var o newOrder
	if err := f.call.Do(req.Context(), upstream.Call{Service: "orders", Method: http.MethodGet, Path: "/api/v2/orders/" + url.PathEscape(no), Token: token, Out: &o}); err != nil {
		web.Error(w, req, err)
		return
	}
	web.JSON(w, http.StatusOK, o.old())
}

func (f *Facade) listOrders(w http.ResponseWriter, req *http.Request) {
	_, token, ok := caller(w, req)
	if !ok {
		return
	}
	var page struct {
		Items []newOrder `json:"items"`
	}
	path := "/api/v2/orders?limit=" + strconv.Itoa(maxOldListing)
	if err := f.call.Do(req.Context(), upstream.Call{Service: "orders", Method: http.MethodGet, Path: path, Token: token, Out: &page}); err != nil {
		web.Error(w, req, err)
		return
	}
	out := make([]oldOrder, len(page.Items))
	for i, o := range page.Items {
		out[i] = o.old()
	}
	web.JSON(w, http.StatusOK, map[string]any{"orders": out})
}

// placeOrder places an order the old way through the orders service: the
// same request and answer as the monolith's, now run as a saga.
func (f *Facade) placeOrder(w http.ResponseWriter, req *http.Request) {
	_, token, ok := caller(w, req)
	if !ok {
		return
	}
	var in struct {
		Lines []struct {
			ProductID string `json:"product_id"`
			Qty       int    `json:"qty"`
		} `json:"lines"`
		CardNumber string        `json:"card_number"`
		DeliverTo  legacyAddress `json:"deliver_to"`
	}
	if err := web.Decode(w, req, &in); err != nil {
		web.Error(w, req, err)
		return
	}
	type item struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
	}
	items := make([]item, len(in.Lines))
	for i, l := range in.Lines {
		items[i] = item{ProductID: l.ProductID, Quantity: l.Qty}
	}
	body := map[string]any{
		"items":            items,
		"payment":          map[string]string{"card": in.CardNumber},
		"shipping_address": in.DeliverTo,
	}
	call := upstream.Call{Service: "orders", Method: http.MethodPost, Path: "/api/v1/orders", Token: token, Body: body}
	if key := req.Header.Get("Idempotency-Key"); key != "" {
		// A keyed checkout is safe to send again: orders answers a retry
		// with the first answer.
		call.Header = http.Header{"Idempotency-Key": {key}}
		call.Idempotent = true
	}
	var o newOrder
	call.Out = &o
	if err := f.call.Do(req.Context(), call); err != nil {
		web.Error(w, req, err)
		return
	}
	w.Header().Set("Location", "/orders/"+url.PathEscape(o.ID))
	web.JSON(w, http.StatusCreated, o.old())
}
