package audit

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/microshop/microshop/internal/upstream"
)

// Caller performs calls to other services.
type Caller interface {
	Do(ctx context.Context, c upstream.Call) error
}

// APISource reads a snapshot through the services' admin listings, paging
// through each, with an admin's token. Orders are read from v2 of the
// orders listing, the one that holds the orders imported from the legacy
// monolith too: v1 leaves them out, and the audit must count them and see
// that no service acted on them.
type APISource struct {
	Caller Caller
	Token  string
}

// ordersPath is the orders service's listing of every order, oldest first.
const ordersPath = "/api/v2/admin/orders"

// maxPages bounds how much one audit reads from one listing.
const maxPages = 10000

// Snapshot implements Source.
func (a APISource) Snapshot(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	// Orders are read first: an effect seen later than its order is
	// normal, an order seen without its effects is only in flight.
	if err := list(ctx, a, "orders", ordersPath, &s.Orders); err != nil {
		return s, err
	}
	if err := list(ctx, a, "payments", "/api/v1/payments", &s.Payments); err != nil {
		return s, err
	}
	if err := list(ctx, a, "inventory", "/api/v1/inventory/reservations", &s.Reservations); err != nil {
		return s, err
	}
	if err := list(ctx, a, "shipping", "/api/v1/shipments", &s.Shipments); err != nil {
		return s, err
	}
	if err := list(ctx, a, "inventory", "/api/v1/inventory", &s.Stock); err != nil {
		return s, err
	}
	// Orders placed while the effects were read: their effects are in the
	// snapshot, so they must be too.
	last := ""
	if n := len(s.Orders); n > 0 {
		last = s.Orders[n-1].ID
	}
	err := listFrom(ctx, a, "orders", ordersPath, last, &s.Orders)
	return s, err
}

func list[T any](ctx context.Context, a APISource, service, path string, out *[]T) error {
	return listFrom(ctx, a, service, path, "", out)
}

func listFrom[T any](ctx context.Context, a APISource, service, path, after string, out *[]T) error {
	for range maxPages {
		var page struct {
			Items []T    `json:"items"`
			Next  string `json:"next"`
		}
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		if err := a.Caller.Do(ctx, upstream.Call{Service: service, Method: http.MethodGet, Path: path + "?" + q.Encode(), Token: a.Token, Out: &page}); err != nil {
			return err
		}
		*out = append(*out, page.Items...)
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
	return fmt.Errorf("listing %s: more than %d pages; the audit will not judge on part of the data", path, maxPages)
}
