// Package audit checks the shop's invariants across services, through their
// public admin APIs only: every order ended or still in time, each completed
// order charged once and shipped once with its stock sold, each cancelled
// order with no net charge, no stock held and no shipment, and every
// product's stock ledger balanced. Orders imported from the legacy monolith
// ran no saga (the old shop charged and shipped by hand): they must have
// ended, and nothing here may have acted on them.
package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Order is what the audit reads of an order.
type Order struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	Origin     string    `json:"origin"` // "legacy" for an order imported from the monolith, "shop" for one placed here
	TotalCents int64     `json:"total_cents"`
	CreatedAt  time.Time `json:"created_at"`
	Items      []struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
	} `json:"items"`
}

// Payment is what the audit reads of a payment.
type Payment struct {
	ID          string `json:"id"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Status      string `json:"status"`
}

// Reservation is what the audit reads of a stock reservation.
type Reservation struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Items   []struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
	} `json:"items"`
}

// Shipment is what the audit reads of a shipment.
type Shipment struct {
	ID      string `json:"id"`
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

// Stock is what the audit reads of a product's stock.
type Stock struct {
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Supplied  int64  `json:"supplied"`
}

// Snapshot is everything the audit reads, from every service.
type Snapshot struct {
	Orders       []Order
	Payments     []Payment
	Reservations []Reservation
	Shipments    []Shipment
	Stock        []Stock
}

// Source reads a snapshot.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Check is one invariant's verdict.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Counts are the counted figures behind the checks. Orders counts every
// order; Completed, Cancelled and Pending count those placed here, which
// ran a saga; Imported counts those imported from the legacy monolith.
type Counts struct {
	Orders        int `json:"orders"`
	Completed     int `json:"completed"`
	Cancelled     int `json:"cancelled"`
	Pending       int `json:"pending"`
	Imported      int `json:"imported"`
	Stuck         int `json:"stuck"`
	DoubleCharged int `json:"double_charged"`
	BadCompleted  int `json:"bad_completed"`
	BadCancelled  int `json:"bad_cancelled"`
	Unexpected    int `json:"unexpected"`
	StockMismatch int `json:"stock_mismatch"`
}

// Report is the audit's answer.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
	Counts Counts  `json:"counts"`
}

// Run checks every invariant on s. Orders still pending and younger than
// grace are in flight, not stuck.
func Run(s Snapshot, now time.Time, grace time.Duration) Report {
	var c Counts
	orders := map[string]Order{}
	for _, o := range s.Orders {
		orders[o.ID] = o
	}
	pays := map[string][]Payment{}
	for _, p := range s.Payments {
		pays[p.OrderID] = append(pays[p.OrderID], p)
	}
	res := map[string]Reservation{}
	for _, r := range s.Reservations {
		res[r.OrderID] = r
	}
	ships := map[string][]Shipment{}
	for _, sh := range s.Shipments {
		ships[sh.OrderID] = append(ships[sh.OrderID], sh)
	}

	var stuck, badDone, badCancel, doubles, unexpected []string
	for _, o := range s.Orders {
		c.Orders++
		if o.Origin == OriginLegacy {
			// Charged and shipped by hand in the old shop: no payment,
			// reservation or shipment to check here, but it has ended; it
			// never ran here, so no grace applies.
			c.Imported++
			if o.Status != "COMPLETED" && o.Status != "CANCELLED" {
				stuck = append(stuck, fmt.Sprintf("%s (imported, %s)", o.ID, o.Status))
			}
			continue
		}
		captured := 0
		var capturedAmount, net int64
		for _, p := range pays[o.ID] {
			if p.Status == "CAPTURED" {
				captured++
				capturedAmount += p.AmountCents
				net += p.AmountCents
			}
		}
		if captured > 1 {
			doubles = append(doubles, o.ID)
		}
		scheduled := 0
		for _, sh := range ships[o.ID] {
			if sh.Status == "SCHEDULED" {
				scheduled++
			}
		}
		r, hasRes := res[o.ID]
		switch o.Status {
		case "COMPLETED":
			c.Completed++
			if captured != 1 || capturedAmount != o.TotalCents || !hasRes || r.Status != "COMMITTED" || scheduled != 1 {
				badDone = append(badDone, fmt.Sprintf("%s (captures=%d amount=%d/%d reservation=%s shipments=%d)",
					o.ID, captured, capturedAmount, o.TotalCents, r.Status, scheduled))
			}
		case "CANCELLED":
			c.Cancelled++
			held := hasRes && (r.Status == "RESERVED" || r.Status == "COMMITTED")
			if net != 0 || held || scheduled != 0 {
				badCancel = append(badCancel, fmt.Sprintf("%s (net_charge=%d reservation=%s shipments=%d)", o.ID, net, r.Status, scheduled))
			}
		default:
			c.Pending++
			if now.Sub(o.CreatedAt) > grace {
				stuck = append(stuck, o.ID)
			}
		}
	}
	// An effect belongs to an order placed here. One for an imported order
	// means a service acted on an order that ran no saga: as unexpected as
	// one for no order at all.
	placedHere := func(id string) bool {
		o, ok := orders[id]
		return ok && o.Origin != OriginLegacy
	}
	for id := range pays {
		if !placedHere(id) {
			unexpected = append(unexpected, "payment for "+id)
		}
	}
	for id, r := range res {
		if !placedHere(id) && r.Status != "RELEASED" && r.Status != "REJECTED" {
			unexpected = append(unexpected, "reservation for "+id)
		}
	}
	for id, list := range ships {
		if !placedHere(id) {
			for _, sh := range list {
				if sh.Status == "SCHEDULED" {
					unexpected = append(unexpected, "shipment for "+id)
				}
			}
		}
	}

	// The stock ledger: available + reserved + sold = supplied, none
	// negative, and the reserved and sold figures match the reservations.
	reserved, sold := map[string]int64{}, map[string]int64{}
	for _, r := range s.Reservations {
		for _, it := range r.Items {
			switch r.Status {
			case "RESERVED":
				reserved[it.ProductID] += int64(it.Quantity)
			case "COMMITTED":
				sold[it.ProductID] += int64(it.Quantity)
			}
		}
	}
	var stockBad []string
	for _, st := range s.Stock {
		switch {
		case st.Available < 0 || st.Reserved < 0 || st.Sold < 0:
			stockBad = append(stockBad, st.ProductID+" has a negative figure")
		case st.Available+st.Reserved+st.Sold != st.Supplied:
			stockBad = append(stockBad, fmt.Sprintf("%s: available %d + reserved %d + sold %d != supplied %d", st.ProductID, st.Available, st.Reserved, st.Sold, st.Supplied))
		case st.Reserved != reserved[st.ProductID] || st.Sold != sold[st.ProductID]:
			stockBad = append(stockBad, fmt.Sprintf("%s: reserved %d and sold %d, reservations say %d and %d", st.ProductID, st.Reserved, st.Sold, reserved[st.ProductID], sold[st.ProductID]))
		}
	}

	c.Stuck, c.BadCompleted, c.BadCancelled = len(stuck), len(badDone), len(badCancel)
	c.DoubleCharged, c.Unexpected, c.StockMismatch = len(doubles), len(unexpected), len(stockBad)
	checks := []Check{
		verdict("orders_end", stuck, fmt.Sprintf("%d orders: %d completed, %d cancelled, %d pending, %d imported and ended", c.Orders, c.Completed, c.Cancelled, c.Pending, c.Imported),
			"pending longer than "+grace.String()+" (or imported and not ended)"),
		verdict("completed_orders", badDone, fmt.Sprintf("%d completed orders each captured once for their total, stock committed, one shipment", c.Completed), "completed but inconsistent"),
		verdict("cancelled_orders", badCancel, fmt.Sprintf("%d cancelled orders with no net charge, no stock held, no shipment", c.Cancelled), "cancelled but inconsistent"),
		verdict("no_double_charge", doubles, "no order captured more than once", "captured more than once"),
		verdict("no_unexpected_effects", unexpected, "every payment, reservation and shipment belongs to an order placed here", "effects without an order placed here"),
		verdict("stock_ledger", stockBad, fmt.Sprintf("%d products: available + reserved + sold = supplied, matching the reservations", len(s.Stock)), "stock mismatch"),
	}
	rep := Report{OK: true, Checks: checks, Counts: c}
	for _, ch := range checks {
		rep.OK = rep.OK && ch.OK
	}
	return rep
}

func verdict(name string, bad []string, okDetail, badDetail string) Check {
	if len(bad) == 0 {
		return Check{Name: name, OK: true, Detail: okDetail}
	}
	sort.Strings(bad)
	shown := bad[:min(len(bad), 5)]
	more := ""
	if len(bad) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(bad)-len(shown))
	}
	return Check{Name: name, OK: false, Detail: fmt.Sprintf("%d %s: %s%s", len(bad), badDetail, strings.Join(shown, "; "), more)}
}

// OriginLegacy is the origin of an order imported from the legacy monolith.
const OriginLegacy = "legacy"

// DefaultGrace is how long an order may stay pending before the audit calls
// it stuck: longer than the saga's whole retry budget.
const DefaultGrace = 2 * time.Minute
