// Package legacyclient is how the legacy monolith reaches the services it
// leans on, over their HTTP APIs: users for a customer's account when the
// customer first comes (login left the monolith long ago), and the catalog
// for a product's price. Each payload here is declared by the monolith for
// itself: no other service's code is imported.
package legacyclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/upstream"
)

// Caller performs calls to other services; *upstream.Client is one.
type Caller interface {
	Do(ctx context.Context, c upstream.Call) error
}

// Accounts reads accounts from the users service.
type Accounts struct{ Caller Caller }

var _ legacy.Accounts = Accounts{}

// Account implements legacy.Accounts: GET /api/v2/users/{id}, the version
// that shows the email, with the user's own token, so that the users service
// lets the owner see it and nobody else.
func (a Accounts) Account(ctx context.Context, userID, token string) (legacy.Account, error) {
	var u struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	err := a.Caller.Do(ctx, upstream.Call{Service: "users", Method: http.MethodGet,
		Path: "/api/v2/users/" + url.PathEscape(userID), Token: token, Out: &u})
	if err != nil {
		return legacy.Account{}, err
	}
	if u.ID != userID {
		return legacy.Account{}, fail.New(fail.Unavailable, "users answered another account than the one asked for")
	}
	return legacy.Account{Name: u.Name, Email: u.Email}, nil
}

// Catalog reads product prices from the catalog service.
type Catalog struct{ Caller Caller }

var _ legacy.Catalog = Catalog{}

// Product implements legacy.Catalog. A product the catalog does not have is
// the customer's mistake, not a missing page: fail.Invalid naming it.
func (c Catalog) Product(ctx context.Context, id string) (legacy.Product, error) {
	if id == "." || id == ".." { // a path segment no escaping keeps from meaning another path
		return legacy.Product{}, fail.New(fail.Invalid, "unknown product %q", id)
	}
	var p struct {
		ID         string `json:"id"`
		PriceCents int64  `json:"price_cents"`
		Currency   string `json:"currency"`
	}
	err := c.Caller.Do(ctx, upstream.Call{Service: "catalog", Method: http.MethodGet,
		Path: "/api/v1/products/" + url.PathEscape(id), Out: &p})
	if fail.Is(err, fail.NotFound) {
		return legacy.Product{}, fail.Wrap(fail.Invalid, err, "unknown product %q", id)
	}
	if err != nil {
		return legacy.Product{}, err
	}
	return legacy.Product{ID: p.ID, PriceCents: p.PriceCents, Currency: p.Currency}, nil
}
