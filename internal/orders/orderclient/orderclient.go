// Package orderclient is how the orders service reaches other services
// synchronously, over their HTTP APIs: the catalog for a price it has not
// heard of yet, and payments to exchange a card number for a token. Each
// payload here is declared by orders for itself: no other service's code is
// imported. Everything else orders learns and asks travels as events.
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

// Vault exchanges cards for tokens at the payments service.
type Vault struct{ Caller Caller }

var _ orders.CardVault = Vault{}

// Tokenize implements orders.CardVault.
func (v Vault) Tokenize(ctx context.Context, card string) (string, error) {
	var out struct {
		CardToken string `json:"card_token"`
	}
	err := v.Caller.Do(ctx, upstream.Call{Service: "payments", Method: http.MethodPost, Path: "/internal/v1/cards",
		Body: map[string]string{"card": card}, Out: &out})
	return out.CardToken, err
}
