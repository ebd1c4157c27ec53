package facade

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
)

// exportPage is how many records one export call reads and one import call
// writes: as many as keep an import's body well under the services' 1 MiB
// limit (an order may have 50 lines).
var exportPage = map[string]int{"profiles": 500, "orders": 100}

// The monolith's records as its export API gives them. The facade declares
// them itself, as every service declares the payloads it reads.
type (
	legacyProfile struct {
		CustomerID string `json:"customer_id"`
		Name       string `json:"name"`
		Email      string `json:"email"`
	}
	legacyLine struct {
		ProductID      string `json:"product_id"`
		Qty            int    `json:"qty"`
		UnitPriceCents int64  `json:"unit_price_cents"`
	}
	legacyAddress struct {
		Name       string `json:"name"`
		Line1      string `json:"line1"`
		City       string `json:"city"`
		PostalCode string `json:"postal_code"`
		Country    string `json:"country"`
	}
	legacyOrder struct {
		OrderNo    string        `json:"order_no"`
		CustomerID string        `json:"customer_id"`
		Status     string        `json:"status"`
		Lines      []legacyLine  `json:"lines"`
		TotalCents int64         `json:"total_cents"`
		Currency   string        `json:"currency"`
		PlacedAt   time.Time     `json:"placed_at"`
		DeliverTo  legacyAddress `json:"deliver_to"`
	}
)

// copyData copies the route's records changed after the monolith's change
// number after into its service, page by page, and answers how many it
// copied and the change number to continue from. Both imports are
// idempotent, so a copy that is cut off is simply run again.
func (f *Facade) copyData(ctx context.Context, r *route, after int64) (copied int, cursor int64, err error) {
	cursor = after
	for {
		var page struct {
			Items []json.RawMessage `json:"items"`
			Next  int64             `json:"next"`
		}
		path := fmt.Sprintf("/internal/v1/export/%s?after=%d&limit=%d", r.Domain, cursor, exportPage[r.Domain])
		if err := f.admin.Do(ctx, upstream.Call{Service: Legacy, Method: http.MethodGet, Path: path, Out: &page}); err != nil {
			return copied, cursor, err
		}
		if len(page.Items) == 0 {
			return copied, cursor, nil
		}
		var n int
		switch r.Domain {
		case "profiles":
			n, err = f.importProfiles(ctx, page.Items)
		case "orders":
			n, err = f.importOrders(ctx, page.Items)
		}
		if err != nil {
			return copied, cursor, err
		}
		copied += n
		if page.Next <= cursor {
			return copied, cursor, fmt.Errorf("the monolith's export did not advance past change %d", cursor)
		}
		cursor = page.Next
	}
}

// importProfiles gives the users service the monolith's profiles: the
// monolith owned them until now, so a name changed there wins.
func (f *Facade) importProfiles(ctx context.Context, raw []json.RawMessage) (int, error) {
	type profile struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	in := make([]profile, 0, len(raw))
	for _, m := range raw {
		var p legacyProfile
		if err := json.Unmarshal(m, &p); err != nil {
			return 0, fmt.Errorf("reading a profile of the monolith: %w", err)
		}
		in = append(in, profile{ID: p.CustomerID, Name: p.Name, Email: p.Email})
	}
	var out struct {
		Imported int      `json:"imported"`
		Missing  []string `json:"missing"`
	}
	if err := f.admin.Do(ctx, upstream.Call{Service: "users", Method: http.MethodPost, Path: "/internal/v1/import/profiles",
		Body: map[string]any{"profiles": in}, Out: &out, Idempotent: true}); err != nil {
		return 0, err
	}
	if len(out.Missing) > 0 {
		return 0, fail.New(fail.Conflict, "%d profiles have no account at users (%s): the move stops, nothing is switched", len(out.Missing), strings.Join(first(out.Missing, 5), ", "))
	}
	return len(in), nil
}

// importOrders gives the orders service the monolith's orders as history:
// they ran no saga (the old shop charged and shipped by hand), so orders
// keeps them without asking stock, payments or shipping for anything.
func (f *Facade) importOrders(ctx context.Context, raw []json.RawMessage) (int, error) {
	type item struct {
		ProductID  string `json:"product_id"`
		Quantity   int    `json:"quantity"`
		PriceCents int64  `json:"price_cents"`
	}
	type order struct {
		ID         string        `json:"id"`
		UserID     string        `json:"user_id"`
		Status     string        `json:"status"`
		Items      []item        `json:"items"`
		TotalCents int64         `json:"total_cents"`
		Currency   string        `json:"currency"`
		CreatedAt  time.Time     `json:"created_at"`
		Address    legacyAddress `json:"shipping_address"`
	}
	in := make([]order, 0, len(raw))
	for _, m := range raw {
		var o legacyOrder
		if err := json.Unmarshal(m, &o); err != nil {
			return 0, fmt.Errorf("reading an order of the monolith: %w", err)
		}
		status, err := newStatus(o.Status)
		if err != nil {
			return 0, fmt.Errorf("order %s: %w", o.OrderNo, err)
		}
		items := make([]item, len(o.Lines))
		for i, l := range o.Lines {
			items[i] = item{ProductID: l.ProductID, Quantity: l.Qty, PriceCents: l.UnitPriceCents}
		}
		in = append(in, order{ID: o.OrderNo, UserID: o.CustomerID, Status: status, Items: items,
			TotalCents: o.TotalCents, Currency: o.Currency, CreatedAt: o.PlacedAt, Address: o.DeliverTo})
	}
	var out struct {
		Imported  int      `json:"imported"`
		Conflicts []string `json:"conflicts"`
	}
	if err := f.admin.Do(ctx, upstream.Call{Service: "orders", Method: http.MethodPost, Path: "/internal/v1/import/orders",
		Body: map[string]any{"orders": in}, Out: &out, Idempotent: true}); err != nil {
		return 0, err
	}
	if len(out.Conflicts) > 0 {
		return 0, fail.New(fail.Conflict, "%d orders differ from the copies orders has (%s): the move stops, nothing is switched", len(out.Conflicts), strings.Join(first(out.Conflicts, 5), ", "))
	}
	return len(in), nil
}

// newStatus is a monolith order's status in the orders service's words.
// The old shop confirmed an order on receipt; only its back office could
// cancel one.
func newStatus(legacy string) (string, error) {
	switch legacy {
	case "CONFIRMED":
		return "COMPLETED", nil
	case "CANCELLED":
		return "CANCELLED", nil
	}
	return "", fmt.Errorf("status %q has no counterpart in the orders service", legacy)
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }
