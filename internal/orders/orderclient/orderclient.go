// Package orderclient is how the orders service reaches the services its
// saga drives and the catalog it prices from, over their HTTP APIs. Each
// payload here is declared by orders for itself: no other service's code is
// imported.
package orderclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/upstream"
)

// Caller performs calls to other services.
type Caller interface {
	Do(ctx context.Context, c upstream.Call) error
}

// Catalog reads product prices from the catalog service.
type Catalog struct{ Caller Caller }

var _ orders.Catalog = Catalog{}

// Product implements orders.Catalog.
func (c Catalog) Product(ctx context.Context, id string) (orders.Product, error) {
	var p struct {
		ID         string `json:"id"`
		PriceCents int64  `json:"price_cents"`
		Currency   string `json:"currency"`
	}
	err := c.Caller.Do(ctx, upstream.Call{Service: "catalog", Method: http.MethodGet, Path: "/api/v1/products/" + url.PathEscape(id), Out: &p})
	return orders.Product{ID: p.ID, PriceCents: p.PriceCents, Currency: p.Currency}, err
}

// Payments drives the payments service.
type Payments struct{ Caller Caller }

var _ orders.Payments = Payments{}

// Charge implements orders.Payments.
func (p Payments) Charge(ctx context.Context, o orders.Order, card string) (bool, error) {
	in := struct {
		OrderID     string `json:"order_id"`
		UserID      string `json:"user_id"`
		AmountCents int64  `json:"amount_cents"`
		Currency    string `json:"currency"`
		Card        string `json:"card"`
	}{o.ID, o.UserID, o.TotalCents, o.Currency, card}
	var out struct {
		Status string `json:"status"`
	}
	err := p.Caller.Do(ctx, upstream.Call{Service: "payments", Method: http.MethodPost, Path: "/internal/v1/charges", Body: in, Out: &out})
	return out.Status == "DECLINED", err
}

// Refund implements orders.Payments.
func (p Payments) Refund(ctx context.Context, orderID string) error {
	return p.Caller.Do(ctx, upstream.Call{Service: "payments", Method: http.MethodPost, Path: "/internal/v1/charges/" + url.PathEscape(orderID) + "/refund"})
}

// Inventory drives the inventory service.
type Inventory struct{ Caller Caller }

var _ orders.Inventory = Inventory{}

type line struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// Reserve implements orders.Inventory.
func (i Inventory) Reserve(ctx context.Context, o orders.Order) error {
	in := struct {
		OrderID string `json:"order_id"`
		Items   []line `json:"items"`
	}{OrderID: o.ID}
	for _, it := range o.Items {
		in.Items = append(in.Items, line{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return i.Caller.Do(ctx, upstream.Call{Service: "inventory", Method: http.MethodPost, Path: "/internal/v1/reservations", Body: in})
}

// Commit implements orders.Inventory.
func (i Inventory) Commit(ctx context.Context, orderID string) error {
	return i.Caller.Do(ctx, upstream.Call{Service: "inventory", Method: http.MethodPost, Path: "/internal/v1/reservations/" + url.PathEscape(orderID) + "/commit"})
}

// Release implements orders.Inventory.
func (i Inventory) Release(ctx context.Context, orderID string) error {
	return i.Caller.Do(ctx, upstream.Call{Service: "inventory", Method: http.MethodPost, Path: "/internal/v1/reservations/" + url.PathEscape(orderID) + "/release"})
}

// Shipping drives the shipping service.
type Shipping struct{ Caller Caller }

var _ orders.Shipping = Shipping{}

// Schedule implements orders.Shipping.
func (s Shipping) Schedule(ctx context.Context, o orders.Order) error {
	in := struct {
		OrderID string         `json:"order_id"`
		UserID  string         `json:"user_id"`
		Address orders.Address `json:"address"`
	}{o.ID, o.UserID, o.Address}
	return s.Caller.Do(ctx, upstream.Call{Service: "shipping", Method: http.MethodPost, Path: "/internal/v1/shipments", Body: in})
}

// Cancel implements orders.Shipping.
func (s Shipping) Cancel(ctx context.Context, orderID string) error {
	return s.Caller.Do(ctx, upstream.Call{Service: "shipping", Method: http.MethodPost, Path: "/internal/v1/shipments/" + url.PathEscape(orderID) + "/cancel"})
}
