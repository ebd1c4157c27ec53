// Package audit checks the shop's invariants across services, through their
// public admin APIs only: every order ended or still in time, each completed
// order charged once and shipped once with its stock sold, each cancelled
// order with no net charge, no stock held and no shipment, and every
// product's stock ledger balanced. Orders imported from the legacy monolith
// ran no saga (the old shop charged and shipped by hand): they must have
// ended, and nothing here may have acted on them.
//
// The verdict is given twice over the same findings: as checks, each with
// the first offenders, and as the invariants by name, each a count that must
// be 0 (Counts.Figures):
//
//   - lost orders: orders the shop lost track of. An order still pending
//     past the saga's grace (it will never end by itself; an imported one
//     ran no saga, so it gets no grace), or a payment, a held reservation
//     or a scheduled shipment that names an order the orders service does
//     not have (a service acted on an order that is gone).
//   - duplicated orders: one order fulfilled twice. More than one shipment
//     scheduled for it, or more than one reservation committed for it.
//   - unexpected orders: an order whose end contradicts its effects.
//     Completed without exactly one capture of its total, its stock
//     committed and one shipment; cancelled with a net charge, stock still
//     held or a shipment scheduled; imported from the monolith, and charged,
//     its stock held or shipped here.
//   - double charges: orders captured more than once.
//   - stock mismatches, per product: each product whose ledger does not
//     balance (available + reserved + sold != supplied, or a negative
//     figure) or whose reserved and sold figures do not match its
//     reservations, listed with what is off (Report.StockMismatches).
//
// A released or rejected reservation and a cancelled shipment hold nothing:
// they are no offence, even for an order not placed here. Any payment for
// such an order is, whatever its status: payments acted on it.
package audit

import (
	"context"
	"fmt"
	"slices"
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
//
// Lost, Duplicated, UnexpectedOrders, DoubleCharged and StockMismatch are
// the invariants by name, each of which must be 0: see Figures. They count
// orders (products, for the stock), not offences, and overlap where one
// order breaks two of them: an order captured twice is a double charge and,
// if it completed, an unexpected order too. The other figures (Stuck,
// BadCompleted, BadCancelled, Unexpected) stay as they were published; the
// named ones are built from the same findings, so the report is OK exactly
// when every named figure is 0. Every count is an integer, so that a client
// may read them all as one map of numbers.
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
	// StockMismatch counts the products whose stock does not add up, each
	// listed, with what is off, in Report.StockMismatches.
	StockMismatch int `json:"stock_mismatch"`

	// Lost counts the orders the shop lost track of: one still pending past
	// the grace (placed here; an imported one not ended, at once), which
	// will never end by itself, or one that a payment, a held reservation or
	// a scheduled shipment names but the orders service does not have: a
	// service acted on an order that is gone.
	Lost int `json:"lost"`
	// Duplicated counts the orders fulfilled twice: more than one shipment
	// scheduled for one order, or more than one reservation committed for
	// it (inventory keys reservations by order, so only a listing that
	// contradicts that shows the second).
	Duplicated int `json:"duplicated"`
	// UnexpectedOrders counts the orders whose end contradicts their
	// effects: completed without exactly one capture of its total, its stock
	// committed once and one shipment; cancelled with a net charge, stock
	// still held or a shipment scheduled; or imported from the monolith and
	// then charged, its stock held or shipped here.
	UnexpectedOrders int `json:"unexpected_orders"`
}

// ProductMismatch is one product whose stock does not add up, and what is
// off with it.
type ProductMismatch struct {
	ProductID string `json:"product_id"`
	Detail    string `json:"detail"`
}

// Figure is one invariant's figure, by name; it must be 0.
type Figure struct {
	Name  string // its key in Counts' JSON, e.g. "lost"
	Label string // what it counts, for a person, e.g. "lost orders"
	Count int
}

// Figures lists the invariants by name, in the order the shop promises
// them: lost orders, duplicated orders, unexpected orders, double charges
// and stock mismatches (products).
func (c Counts) Figures() []Figure {
	return []Figure{
		{Name: "lost", Label: "lost orders", Count: c.Lost},
		{Name: "duplicated", Label: "duplicated orders", Count: c.Duplicated},
		{Name: "unexpected_orders", Label: "unexpected orders", Count: c.UnexpectedOrders},
		{Name: "double_charged", Label: "double charges", Count: c.DoubleCharged},
		{Name: "stock_mismatch", Label: "stock mismatches", Count: c.StockMismatch},
	}
}

// Report is the audit's answer.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
	Counts Counts  `json:"counts"`
	// StockMismatches lists, by product id, each product whose stock ledger
	// does not balance (available + reserved + sold != supplied, or a
	// negative figure) or whose reserved and sold figures do not match its
	// reservations, and what is off. Never nil, so that it is [] in JSON.
	StockMismatches []ProductMismatch `json:"stock_mismatches"`
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
	// Inventory keeps one reservation per order; a list keeps a second one
	// visible, should a listing ever show it, rather than hiding it.
	res := map[string][]Reservation{}
	for _, r := range s.Reservations {
		res[r.OrderID] = append(res[r.OrderID], r)
	}
	ships := map[string][]Shipment{}
	for _, sh := range s.Shipments {
		ships[sh.OrderID] = append(ships[sh.OrderID], sh)
	}
	// The named figures count orders, each once however many ways it is
	// wrong.
	lost, duplicated, unexpectedOrders := map[string]bool{}, map[string]bool{}, map[string]bool{}

	var stuck, badDone, badCancel, doubles, dups, unexpected []string
	for _, o := range s.Orders {
		c.Orders++
		if o.Origin == OriginLegacy {
			// Charged and shipped by hand in the old shop: no payment,
			// reservation or shipment to check here, but it has ended; it
			// never ran here, so no grace applies.
			c.Imported++
			if o.Status != "COMPLETED" && o.Status != "CANCELLED" {
				stuck = append(stuck, fmt.Sprintf("%s (imported, %s)", o.ID, o.Status))
				lost[o.ID] = true
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
		scheduled := scheduledShipments(ships[o.ID])
		var statuses []string
		committed, held := 0, false
		for _, r := range res[o.ID] {
			statuses = append(statuses, r.Status)
			committed += btoi(r.Status == "COMMITTED")
			held = held || holds(r)
		}
		reservation := strings.Join(statuses, ",")
		switch o.Status {
		case "COMPLETED":
			c.Completed++
			if captured != 1 || capturedAmount != o.TotalCents || len(statuses) != 1 || committed != 1 || scheduled != 1 {
				badDone = append(badDone, fmt.Sprintf("%s (captures=%d amount=%d/%d reservation=%s shipments=%d)",
					o.ID, captured, capturedAmount, o.TotalCents, reservation, scheduled))
				unexpectedOrders[o.ID] = true
			}
		case "CANCELLED":
			c.Cancelled++
			if net != 0 || held || scheduled != 0 {
				badCancel = append(badCancel, fmt.Sprintf("%s (net_charge=%d reservation=%s shipments=%d)", o.ID, net, reservation, scheduled))
				unexpectedOrders[o.ID] = true
			}
		default:
			c.Pending++
			if now.Sub(o.CreatedAt) > grace {
				stuck = append(stuck, o.ID)
				lost[o.ID] = true
			}
		}
	}
	// An effect belongs to an order placed here. One for an imported order
	// means a service acted on an order that ran no saga: an unexpected
	// order. One for no order at all means a service acted on an order the
	// shop lost. Either way, as the check no_unexpected_effects says.
	strays := func(id, effect string) {
		unexpected = append(unexpected, effect+" for "+id)
		if _, known := orders[id]; known {
			unexpectedOrders[id] = true
		} else {
			lost[id] = true
		}
	}
	placedHere := func(id string) bool {
		o, ok := orders[id]
		return ok && o.Origin != OriginLegacy
	}
	for id := range pays {
		if !placedHere(id) {
			strays(id, "payment")
		}
	}
	for id, list := range res {
		if !placedHere(id) && slices.ContainsFunc(list, holds) {
			strays(id, "reservation")
		}
	}
	for id, list := range ships {
		if !placedHere(id) {
			for range scheduledShipments(list) {
				strays(id, "shipment")
			}
		}
	}
	// One order fulfilled twice, whatever its status: no saga ships an
	// order twice or sells its stock twice.
	for id, list := range ships {
		if n := scheduledShipments(list); n > 1 {
			dups = append(dups, fmt.Sprintf("%s (%d shipments scheduled)", id, n))
			duplicated[id] = true
		}
	}
	for id, list := range res {
		committed := 0
		for _, r := range list {
			committed += btoi(r.Status == "COMMITTED")
		}
		if committed > 1 {
			dups = append(dups, fmt.Sprintf("%s (%d reservations committed)", id, committed))
			duplicated[id] = true
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
	mismatches := []ProductMismatch{}
	var stockBad []string
	for _, st := range s.Stock {
		detail := ""
		switch {
		case st.Available < 0 || st.Reserved < 0 || st.Sold < 0:
			detail = fmt.Sprintf("a negative figure: available %d, reserved %d, sold %d", st.Available, st.Reserved, st.Sold)
		case st.Available+st.Reserved+st.Sold != st.Supplied:
			detail = fmt.Sprintf("available %d + reserved %d + sold %d != supplied %d", st.Available, st.Reserved, st.Sold, st.Supplied)
		case st.Reserved != reserved[st.ProductID] || st.Sold != sold[st.ProductID]:
			detail = fmt.Sprintf("reserved %d and sold %d, reservations say %d and %d", st.Reserved, st.Sold, reserved[st.ProductID], sold[st.ProductID])
		default:
			continue
		}
		mismatches = append(mismatches, ProductMismatch{ProductID: st.ProductID, Detail: detail})
		stockBad = append(stockBad, st.ProductID+": "+detail)
	}
	slices.SortFunc(mismatches, func(a, b ProductMismatch) int { return strings.Compare(a.ProductID, b.ProductID) })

	c.Stuck, c.BadCompleted, c.BadCancelled = len(stuck), len(badDone), len(badCancel)
	c.DoubleCharged, c.Unexpected, c.StockMismatch = len(doubles), len(unexpected), len(stockBad)
	c.Lost, c.Duplicated, c.UnexpectedOrders = len(lost), len(duplicated), len(unexpectedOrders)
	checks := []Check{
		verdict("orders_end", stuck, fmt.Sprintf("%d orders: %d completed, %d cancelled, %d pending, %d imported and ended", c.Orders, c.Completed, c.Cancelled, c.Pending, c.Imported),
			"pending longer than "+grace.String()+" (or imported and not ended)"),
		verdict("completed_orders", badDone, fmt.Sprintf("%d completed orders each captured once for their total, stock committed, one shipment", c.Completed), "completed but inconsistent"),
		verdict("cancelled_orders", badCancel, fmt.Sprintf("%d cancelled orders with no net charge, no stock held, no shipment", c.Cancelled), "cancelled but inconsistent"),
		verdict("no_double_charge", doubles, "no order captured more than once", "captured more than once"),
		verdict("no_unexpected_effects", unexpected, "every payment, reservation and shipment belongs to an order placed here", "effects without an order placed here"),
		verdict("stock_ledger", stockBad, fmt.Sprintf("%d products: available + reserved + sold = supplied, matching the reservations", len(s.Stock)), "stock mismatch"),
		// Last, since it came last: a pending order shipped twice breaks
		// none of the checks above, which judge orders once they end.
		verdict("no_duplicated_orders", dups, "no order shipped twice or its stock committed twice", "fulfilled more than once"),
	}
	rep := Report{OK: true, Checks: checks, Counts: c, StockMismatches: mismatches}
	for _, ch := range checks {
		rep.OK = rep.OK && ch.OK
	}
	return rep
}

// holds reports whether a reservation still holds stock, reserved or sold.
func holds(r Reservation) bool { return r.Status == "RESERVED" || r.Status == "COMMITTED" }

// scheduledShipments counts the shipments that will go out; a cancelled one
// will not.
func scheduledShipments(list []Shipment) int {
	n := 0
	for _, sh := range list {
		n += btoi(sh.Status == "SCHEDULED")
	}
	return n
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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
