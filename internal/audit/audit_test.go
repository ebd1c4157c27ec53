package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
)

var (
	now   = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	grace = 2 * time.Minute
)

// order builds an audit.Order placed here from JSON, the way the audit
// reads it from the orders service's v2 listing.
func order(t *testing.T, id, status string, total int64, created time.Time, items ...string) audit.Order {
	t.Helper()
	return decode[audit.Order](t, fmt.Sprintf(`{"id":%q,"status":%q,"origin":"shop","total_cents":%d,"created_at":%q,"items":[%s]}`,
		id, status, total, created.Format(time.RFC3339Nano), strings.Join(items, ",")))
}

func reservation(t *testing.T, orderID, status string, items ...string) audit.Reservation {
	t.Helper()
	return decode[audit.Reservation](t, fmt.Sprintf(`{"order_id":%q,"status":%q,"items":[%s]}`, orderID, status, strings.Join(items, ",")))
}

func item(product string, quantity int) string {
	return fmt.Sprintf(`{"product_id":%q,"quantity":%d}`, product, quantity)
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return v
}

// cleanShop is a shop in which every invariant holds: a completed order, a
// refunded cancelled one, a declined cancelled one, and one still in flight
// well within the grace period.
func cleanShop(t *testing.T) audit.Snapshot {
	t.Helper()
	return audit.Snapshot{
		Orders: []audit.Order{
			order(t, "o1", "COMPLETED", 2000, now.Add(-time.Hour), item("p1", 2)),
			order(t, "o2", "CANCELLED", 500, now.Add(-time.Hour), item("p2", 1)),
			order(t, "o3", "CANCELLED", 700, now.Add(-time.Hour), item("p1", 1)),
			order(t, "o4", "PENDING", 1000, now.Add(-30*time.Second), item("p2", 2)),
		},
		Payments: []audit.Payment{
			{ID: "pay1", OrderID: "o1", AmountCents: 2000, Status: "CAPTURED"},
			{ID: "pay2", OrderID: "o2", AmountCents: 500, Status: "REFUNDED"},
			{ID: "pay3", OrderID: "o3", AmountCents: 700, Status: "DECLINED"},
			{ID: "pay4", OrderID: "o4", AmountCents: 1000, Status: "CAPTURED"},
		},
		Reservations: []audit.Reservation{
			reservation(t, "o1", "COMMITTED", item("p1", 2)),
			reservation(t, "o2", "RELEASED", item("p2", 1)),
			reservation(t, "o3", "REJECTED", item("p1", 1)),
			reservation(t, "o4", "RESERVED", item("p2", 2)),
		},
		Shipments: []audit.Shipment{
			{ID: "s1", OrderID: "o1", Status: "SCHEDULED"},
		},
		Stock: []audit.Stock{
			{ProductID: "p1", Available: 8, Reserved: 0, Sold: 2, Supplied: 10},
			{ProductID: "p2", Available: 3, Reserved: 2, Sold: 0, Supplied: 5},
		},
	}
}

var cleanCounts = audit.Counts{Orders: 4, Completed: 1, Cancelled: 2, Pending: 1}

var checkNames = []string{"orders_end", "completed_orders", "cancelled_orders", "no_double_charge", "no_unexpected_effects", "stock_ledger", "no_duplicated_orders"}

func TestACleanShopPassesEveryCheck(t *testing.T) {
	rep := audit.Run(cleanShop(t), now, grace)
	if !rep.OK {
		t.Errorf("OK = false for a clean shop: %+v", rep.Checks)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
		if !c.OK || c.Detail == "" {
			t.Errorf("check %+v, want ok with a detail", c)
		}
	}
	if !slices.Equal(names, checkNames) {
		t.Errorf("checks = %v, want %v", names, checkNames)
	}
	if rep.Counts != cleanCounts {
		t.Errorf("counts = %+v, want %+v", rep.Counts, cleanCounts)
	}
	if empty := audit.Run(audit.Snapshot{}, now, grace); !empty.OK {
		t.Errorf("an empty shop fails: %+v", empty.Checks)
	}
}

// TestEachBrokenInvariantFlipsItsCheck breaks one invariant at a time in the
// clean shop and expects exactly the named checks to fail, the counts to move
// by exactly what was broken, and the detail to name the culprit.
func TestEachBrokenInvariantFlipsItsCheck(t *testing.T) {
	payment := func(s *audit.Snapshot, orderID string) *audit.Payment {
		for i := range s.Payments {
			if s.Payments[i].OrderID == orderID {
				return &s.Payments[i]
			}
		}
		t.Fatalf("no payment for %s", orderID)
		return nil
	}
	stock := func(s *audit.Snapshot, product string) *audit.Stock {
		for i := range s.Stock {
			if s.Stock[i].ProductID == product {
				return &s.Stock[i]
			}
		}
		t.Fatalf("no stock for %s", product)
		return nil
	}
	setReservation := func(s *audit.Snapshot, orderID, status string) {
		for i := range s.Reservations {
			if s.Reservations[i].OrderID == orderID {
				s.Reservations[i].Status = status
				return
			}
		}
		t.Fatalf("no reservation for %s", orderID)
	}
	dropReservation := func(s *audit.Snapshot, orderID string) {
		s.Reservations = slices.DeleteFunc(s.Reservations, func(r audit.Reservation) bool { return r.OrderID == orderID })
	}

	tests := []struct {
		name    string
		breakIt func(s *audit.Snapshot)
		failing []string
		counts  func(c *audit.Counts)
		stock   []audit.ProductMismatch // the products listed as off, none if nil
		culprit string                  // must appear in a failing check's detail
	}{
		{
			name:    "completed without capture",
			breakIt: func(s *audit.Snapshot) { payment(s, "o1").Status = "DECLINED" },
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "o1",
		},
		{
			name:    "completed with no payment at all",
			breakIt: func(s *audit.Snapshot) { s.Payments = slices.Delete(s.Payments, 0, 1) },
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "o1",
		},
		{
			name:    "completed with its capture refunded",
			breakIt: func(s *audit.Snapshot) { payment(s, "o1").Status = "REFUNDED" },
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "o1",
		},
		{
			name: "completed captured twice",
			breakIt: func(s *audit.Snapshot) {
				s.Payments = append(s.Payments, audit.Payment{ID: "pay1b", OrderID: "o1", AmountCents: 2000, Status: "CAPTURED"})
			},
			failing: []string{"completed_orders", "no_double_charge"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.DoubleCharged, c.UnexpectedOrders = 1, 1, 1 },
			culprit: "o1",
		},
		{
			name: "completed captured twice in halves of its total",
			breakIt: func(s *audit.Snapshot) {
				payment(s, "o1").AmountCents = 1000
				s.Payments = append(s.Payments, audit.Payment{ID: "pay1b", OrderID: "o1", AmountCents: 1000, Status: "CAPTURED"})
			},
			failing: []string{"completed_orders", "no_double_charge"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.DoubleCharged, c.UnexpectedOrders = 1, 1, 1 },
			culprit: "captures=2",
		},
		{
			name: "cancelled captured twice, refunded once",
			breakIt: func(s *audit.Snapshot) {
				s.Payments = append(s.Payments, audit.Payment{ID: "pay2b", OrderID: "o2", AmountCents: 500, Status: "CAPTURED"})
			},
			failing: []string{"cancelled_orders"},
			counts:  func(c *audit.Counts) { c.BadCancelled, c.UnexpectedOrders = 1, 1 },
			culprit: "net_charge=500",
		},
		{
			name:    "completed with amount not the total",
			breakIt: func(s *audit.Snapshot) { payment(s, "o1").AmountCents = 1999 },
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "amount=1999/2000",
		},
		{
			name: "completed with stock only reserved, not committed",
			breakIt: func(s *audit.Snapshot) {
				setReservation(s, "o1", "RESERVED")
				p1 := stock(s, "p1")
				p1.Reserved, p1.Sold = 2, 0 // the ledger agrees, so only the order is wrong
			},
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "reservation=RESERVED",
		},
		{
			name: "completed without reservation",
			breakIt: func(s *audit.Snapshot) {
				dropReservation(s, "o1")
				p1 := stock(s, "p1")
				p1.Available, p1.Sold = 10, 0
			},
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "o1",
		},
		{
			name:    "completed without shipment",
			breakIt: func(s *audit.Snapshot) { s.Shipments = nil },
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "shipments=0",
		},
		{
			name:    "completed with its shipment cancelled",
			breakIt: func(s *audit.Snapshot) { s.Shipments[0].Status = "CANCELLED" },
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "shipments=0",
		},
		{
			name: "completed shipped twice",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "s1b", OrderID: "o1", Status: "SCHEDULED"})
			},
			failing: []string{"completed_orders", "no_duplicated_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders, c.Duplicated = 1, 1, 1 },
			culprit: "shipments=2",
		},
		{
			name:    "cancelled with a capture not refunded",
			breakIt: func(s *audit.Snapshot) { payment(s, "o2").Status = "CAPTURED" },
			failing: []string{"cancelled_orders"},
			counts:  func(c *audit.Counts) { c.BadCancelled, c.UnexpectedOrders = 1, 1 },
			culprit: "net_charge=500",
		},
		{
			name: "cancelled with stock still reserved",
			breakIt: func(s *audit.Snapshot) {
				setReservation(s, "o2", "RESERVED")
				p2 := stock(s, "p2")
				p2.Available, p2.Reserved = 2, 3
			},
			failing: []string{"cancelled_orders"},
			counts:  func(c *audit.Counts) { c.BadCancelled, c.UnexpectedOrders = 1, 1 },
			culprit: "reservation=RESERVED",
		},
		{
			name: "cancelled with stock sold",
			breakIt: func(s *audit.Snapshot) {
				setReservation(s, "o2", "COMMITTED")
				p2 := stock(s, "p2")
				p2.Available, p2.Sold = 2, 1
			},
			failing: []string{"cancelled_orders"},
			counts:  func(c *audit.Counts) { c.BadCancelled, c.UnexpectedOrders = 1, 1 },
			culprit: "reservation=COMMITTED",
		},
		{
			name: "cancelled with a scheduled shipment",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "s2", OrderID: "o2", Status: "SCHEDULED"})
			},
			failing: []string{"cancelled_orders"},
			counts:  func(c *audit.Counts) { c.BadCancelled, c.UnexpectedOrders = 1, 1 },
			culprit: "shipments=1",
		},
		{
			name: "payment for an unknown order",
			breakIt: func(s *audit.Snapshot) {
				s.Payments = append(s.Payments, audit.Payment{ID: "pay9", OrderID: "ghost", AmountCents: 100, Status: "CAPTURED"})
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.Lost = 1, 1 },
			culprit: "payment for ghost",
		},
		{
			name: "reservation held for an unknown order",
			breakIt: func(s *audit.Snapshot) {
				s.Reservations = append(s.Reservations, reservation(t, "ghost", "RESERVED", item("p1", 1)))
				p1 := stock(s, "p1")
				p1.Available, p1.Reserved = 7, 1
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.Lost = 1, 1 },
			culprit: "reservation for ghost",
		},
		{
			name: "shipment for an unknown order",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "s9", OrderID: "ghost", Status: "SCHEDULED"})
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.Lost = 1, 1 },
			culprit: "shipment for ghost",
		},
		{
			name:    "stock not balanced",
			breakIt: func(s *audit.Snapshot) { stock(s, "p1").Available = 9 },
			failing: []string{"stock_ledger"},
			counts:  func(c *audit.Counts) { c.StockMismatch = 1 },
			stock:   []audit.ProductMismatch{{ProductID: "p1", Detail: "available 9 + reserved 0 + sold 2 != supplied 10"}},
			culprit: "p1: available 9",
		},
		{
			name: "stock figure negative though balanced",
			breakIt: func(s *audit.Snapshot) {
				p1 := stock(s, "p1")
				p1.Available, p1.Supplied = -1, 1
			},
			failing: []string{"stock_ledger"},
			counts:  func(c *audit.Counts) { c.StockMismatch = 1 },
			stock:   []audit.ProductMismatch{{ProductID: "p1", Detail: "a negative figure: available -1, reserved 0, sold 2"}},
			culprit: "p1: a negative figure",
		},
		{
			name: "reserved figure not matching the reservations",
			breakIt: func(s *audit.Snapshot) {
				p2 := stock(s, "p2")
				p2.Available, p2.Reserved = 4, 1 // balanced, but o4 holds 2
			},
			failing: []string{"stock_ledger"},
			counts:  func(c *audit.Counts) { c.StockMismatch = 1 },
			stock:   []audit.ProductMismatch{{ProductID: "p2", Detail: "reserved 1 and sold 0, reservations say 2 and 0"}},
			culprit: "p2: reserved 1",
		},
		{
			name: "sold figure not matching the reservations",
			breakIt: func(s *audit.Snapshot) {
				p1 := stock(s, "p1")
				p1.Available, p1.Sold = 7, 3 // balanced, but only o1's 2 were committed
			},
			failing: []string{"stock_ledger"},
			counts:  func(c *audit.Counts) { c.StockMismatch = 1 },
			stock:   []audit.ProductMismatch{{ProductID: "p1", Detail: "reserved 0 and sold 3, reservations say 0 and 2"}},
			culprit: "sold 3",
		},
		{
			name:    "pending order older than the grace",
			breakIt: func(s *audit.Snapshot) { s.Orders[3].CreatedAt = now.Add(-grace - time.Second) },
			failing: []string{"orders_end"},
			counts:  func(c *audit.Counts) { c.Stuck, c.Lost = 1, 1 },
			culprit: "o4",
		},
		{
			name:    "pending order just younger than the grace",
			breakIt: func(s *audit.Snapshot) { s.Orders[3].CreatedAt = now.Add(-grace + time.Second) },
			counts:  func(*audit.Counts) {},
		},
		{
			name:    "order in an intermediate status older than the grace",
			breakIt: func(s *audit.Snapshot) { s.Orders[3].Status, s.Orders[3].CreatedAt = "PAID", now.Add(-time.Hour) },
			failing: []string{"orders_end"},
			counts:  func(c *audit.Counts) { c.Stuck, c.Lost = 1, 1 },
			culprit: "o4",
		},
		{
			name: "order in flight shipped twice",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments,
					audit.Shipment{ID: "s4", OrderID: "o4", Status: "SCHEDULED"},
					audit.Shipment{ID: "s4b", OrderID: "o4", Status: "SCHEDULED"})
			},
			failing: []string{"no_duplicated_orders"},
			counts:  func(c *audit.Counts) { c.Duplicated = 1 },
			culprit: "o4 (2 shipments scheduled)",
		},
		{
			name: "order in flight with a second shipment cancelled: one goes out",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments,
					audit.Shipment{ID: "s4", OrderID: "o4", Status: "SCHEDULED"},
					audit.Shipment{ID: "s4b", OrderID: "o4", Status: "CANCELLED"})
			},
			counts: func(*audit.Counts) {},
		},
		{
			name: "order in flight with its stock committed twice",
			breakIt: func(s *audit.Snapshot) {
				setReservation(s, "o4", "COMMITTED")
				s.Reservations = append(s.Reservations, reservation(t, "o4", "COMMITTED", item("p2", 2)))
				p2 := stock(s, "p2")
				p2.Available, p2.Reserved, p2.Sold = 1, 0, 4 // the ledger agrees with both
			},
			failing: []string{"no_duplicated_orders"},
			counts:  func(c *audit.Counts) { c.Duplicated = 1 },
			culprit: "o4 (2 reservations committed)",
		},
		{
			name: "completed with its stock committed twice",
			breakIt: func(s *audit.Snapshot) {
				s.Reservations = append(s.Reservations, reservation(t, "o1", "COMMITTED", item("p1", 2)))
				p1 := stock(s, "p1")
				p1.Available, p1.Sold = 6, 4
			},
			failing: []string{"completed_orders", "no_duplicated_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders, c.Duplicated = 1, 1, 1 },
			culprit: "reservation=COMMITTED,COMMITTED",
		},
		{
			name: "an unknown order acted on by every service is one lost order",
			breakIt: func(s *audit.Snapshot) {
				s.Payments = append(s.Payments, audit.Payment{ID: "pay9", OrderID: "ghost", AmountCents: 100, Status: "DECLINED"})
				s.Reservations = append(s.Reservations, reservation(t, "ghost", "COMMITTED", item("p1", 1)))
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "s9", OrderID: "ghost", Status: "SCHEDULED"})
				p1 := stock(s, "p1")
				p1.Available, p1.Sold = 7, 3
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.Lost = 3, 1 },
			culprit: "reservation for ghost",
		},
		{
			name: "an unknown order's released reservation and cancelled shipment hold nothing",
			breakIt: func(s *audit.Snapshot) {
				s.Reservations = append(s.Reservations, reservation(t, "ghost", "RELEASED", item("p1", 1)))
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "s9", OrderID: "ghost", Status: "CANCELLED"})
			},
			counts: func(*audit.Counts) {},
		},
		{
			name: "a stuck order and a gone one are two lost orders",
			breakIt: func(s *audit.Snapshot) {
				s.Orders[3].CreatedAt = now.Add(-time.Hour)
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "s9", OrderID: "ghost", Status: "SCHEDULED"})
			},
			failing: []string{"no_unexpected_effects", "orders_end"},
			counts:  func(c *audit.Counts) { c.Stuck, c.Unexpected, c.Lost = 1, 1, 2 },
			culprit: "shipment for ghost",
		},
		{
			name: "an order broken three ways is one unexpected order",
			breakIt: func(s *audit.Snapshot) {
				payment(s, "o1").AmountCents = 1
				s.Shipments = nil
				setReservation(s, "o1", "RELEASED")
				p1 := stock(s, "p1")
				p1.Available, p1.Sold = 10, 0
			},
			failing: []string{"completed_orders"},
			counts:  func(c *audit.Counts) { c.BadCompleted, c.UnexpectedOrders = 1, 1 },
			culprit: "o1 (captures=1 amount=1/2000 reservation=RELEASED shipments=0)",
		},
		{
			name: "stock mismatches listed per product, by id",
			breakIt: func(s *audit.Snapshot) {
				s.Stock[0], s.Stock[1] = s.Stock[1], s.Stock[0]
				stock(s, "p2").Supplied = 6
				stock(s, "p1").Sold = -1
			},
			failing: []string{"stock_ledger"},
			counts:  func(c *audit.Counts) { c.StockMismatch = 2 },
			stock: []audit.ProductMismatch{
				{ProductID: "p1", Detail: "a negative figure: available 8, reserved 0, sold -1"},
				{ProductID: "p2", Detail: "available 3 + reserved 2 + sold 0 != supplied 6"},
			},
			culprit: "2 stock mismatch",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := cleanShop(t)
			tc.breakIt(&s)
			rep := audit.Run(s, now, grace)

			var failing []string
			details := ""
			for _, c := range rep.Checks {
				if !c.OK {
					failing = append(failing, c.Name)
					details += c.Detail + "\n"
				}
			}
			sort.Strings(failing)
			want := slices.Clone(tc.failing)
			sort.Strings(want)
			if !slices.Equal(failing, want) {
				t.Errorf("failing checks = %v, want %v\n%s", failing, want, details)
			}
			if rep.OK != (len(want) == 0) {
				t.Errorf("OK = %v with failing checks %v", rep.OK, failing)
			}
			wantCounts := cleanCounts
			tc.counts(&wantCounts)
			if rep.Counts != wantCounts {
				t.Errorf("counts = %+v, want %+v", rep.Counts, wantCounts)
			}
			if wantStock := append([]audit.ProductMismatch{}, tc.stock...); !reflect.DeepEqual(rep.StockMismatches, wantStock) {
				t.Errorf("stock mismatches = %+v, want %+v", rep.StockMismatches, wantStock)
			}
			checkFiguresAgreeWithOK(t, rep)
			if tc.culprit != "" && !strings.Contains(details, tc.culprit) {
				t.Errorf("details do not mention %q:\n%s", tc.culprit, details)
			}
		})
	}
}

// checkFiguresAgreeWithOK holds the report to its promise: OK exactly when
// every invariant's figure is 0.
func checkFiguresAgreeWithOK(t *testing.T, rep audit.Report) {
	t.Helper()
	zero := true
	for _, f := range rep.Counts.Figures() {
		zero = zero && f.Count == 0
	}
	if rep.OK != zero {
		t.Errorf("OK = %v but figures %+v: OK must be true exactly when every figure is 0", rep.OK, rep.Counts.Figures())
	}
}

// TestFiguresNameTheInvariants: the figures come in the promised order,
// each named by its key in the counts' JSON, every count is a number (as
// clients read them, into one map), and an empty list of stock mismatches
// is [] in the report, not null.
func TestFiguresNameTheInvariants(t *testing.T) {
	rep := audit.Run(cleanShop(t), now, grace)
	var names, labels []string
	for _, f := range rep.Counts.Figures() {
		names, labels = append(names, f.Name), append(labels, f.Label)
	}
	wantNames := []string{"lost", "duplicated", "unexpected_orders", "double_charged", "stock_mismatch"}
	wantLabels := []string{"lost orders", "duplicated orders", "unexpected orders", "double charges", "stock mismatches"}
	if !slices.Equal(names, wantNames) || !slices.Equal(labels, wantLabels) {
		t.Errorf("figures %v %v, want %v %v", names, labels, wantNames, wantLabels)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Counts          map[string]int  `json:"counts"`
		StockMismatches json.RawMessage `json:"stock_mismatches"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the report %s does not decode with its counts as a map of numbers: %v", b, err)
	}
	for _, name := range wantNames {
		if _, ok := doc.Counts[name]; !ok {
			t.Errorf("counts JSON %s has no %q", b, name)
		}
	}
	if got := string(doc.StockMismatches); got != "[]" {
		t.Errorf("stock_mismatches = %s, want []", got)
	}
	if empty := audit.Run(audit.Snapshot{}, now, grace); empty.StockMismatches == nil {
		t.Errorf("an empty shop's stock mismatches are nil, want empty")
	}
}

func TestDetailsAreBoundedButCountEverything(t *testing.T) {
	s := cleanShop(t)
	for i := range 8 {
		s.Payments = append(s.Payments, audit.Payment{ID: fmt.Sprint("x", i), OrderID: fmt.Sprint("ghost", i), AmountCents: 1, Status: "CAPTURED"})
	}
	rep := audit.Run(s, now, grace)
	if rep.Counts.Unexpected != 8 {
		t.Errorf("Unexpected = %d, want 8", rep.Counts.Unexpected)
	}
	for _, c := range rep.Checks {
		if c.Name != "no_unexpected_effects" {
			continue
		}
		if !strings.HasPrefix(c.Detail, "8 ") || !strings.HasSuffix(c.Detail, "and 3 more") || strings.Count(c.Detail, "payment for") != 5 {
			t.Errorf("detail = %q, want 8 counted, 5 shown, 3 more", c.Detail)
		}
	}
}

// pagedCaller serves the services' admin listings two items a page, and
// places new orders once the payments have been listed, as a live shop would.
type pagedCaller struct {
	t        *testing.T
	lists    map[string][]map[string]any // by service+path
	calls    []upstream.Call
	lateOnce bool
	late     []map[string]any
	failOn   string
}

func (f *pagedCaller) Do(_ context.Context, c upstream.Call) error {
	f.calls = append(f.calls, c)
	path, rawQuery, _ := strings.Cut(c.Path, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		f.t.Fatalf("bad query in %s: %v", c.Path, err)
	}
	if q.Get("limit") == "" {
		f.t.Errorf("%s has no limit", c.Path)
	}
	key := c.Service + " " + path
	if key == f.failOn {
		return fail.New(fail.Unavailable, "%s is down", c.Service)
	}
	if key == "payments /api/v1/payments" && !f.lateOnce {
		f.lateOnce = true
		f.lists["orders /api/v2/admin/orders"] = append(f.lists["orders /api/v2/admin/orders"], f.late...)
	}
	all, ok := f.lists[key]
	if !ok {
		f.t.Fatalf("unexpected call %s", key)
	}
	after := q.Get("after")
	start := 0
	if after != "" {
		start = slices.IndexFunc(all, func(m map[string]any) bool { return m["id"] == after }) + 1
		if start == 0 {
			f.t.Fatalf("%s: cursor %q is not an id served", key, after)
		}
	}
	end := min(start+2, len(all))
	page := map[string]any{"items": all[start:end], "next": ""}
	if end < len(all) {
		page["next"] = all[end-1]["id"]
	}
	b, err := json.Marshal(page)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, c.Out)
}

func ids(prefix string, n int, extra func(i int) map[string]any) []map[string]any {
	var out []map[string]any
	for i := range n {
		m := map[string]any{"id": fmt.Sprintf("%s%02d", prefix, i)}
		for k, v := range extra(i) {
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

func newPagedCaller(t *testing.T) *pagedCaller {
	orders := ids("o", 5, func(int) map[string]any { return map[string]any{"status": "COMPLETED", "origin": "shop"} })
	return &pagedCaller{
		t: t,
		lists: map[string][]map[string]any{
			"orders /api/v2/admin/orders": orders,
			"payments /api/v1/payments":   ids("pay", 5, func(i int) map[string]any { return map[string]any{"order_id": fmt.Sprintf("o%02d", i)} }),
			"inventory /api/v1/inventory/reservations": ids("r", 3, func(i int) map[string]any {
				return map[string]any{"order_id": fmt.Sprintf("o%02d", i), "status": "COMMITTED"}
			}),
			"shipping /api/v1/shipments":  ids("s", 4, func(i int) map[string]any { return map[string]any{"order_id": fmt.Sprintf("o%02d", i)} }),
			"inventory /api/v1/inventory": ids("st", 3, func(i int) map[string]any { return map[string]any{"product_id": fmt.Sprintf("p%d", i)} }),
		},
		late: ids("o", 8, func(int) map[string]any { return map[string]any{"status": "PENDING", "origin": "shop"} })[5:],
	}
}

func TestAPISourceFollowsEveryPageAndRereadsNewOrders(t *testing.T) {
	f := newPagedCaller(t)
	snap, err := audit.APISource{Caller: f, Token: "admin-token"}.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var orderIDs []string
	for _, o := range snap.Orders {
		orderIDs = append(orderIDs, o.ID)
	}
	want := []string{"o00", "o01", "o02", "o03", "o04", "o05", "o06", "o07"}
	if !slices.Equal(orderIDs, want) {
		t.Errorf("orders = %v, want %v: every page, and the orders placed while effects were read, each once", orderIDs, want)
	}
	if snap.Orders[7].Status != "PENDING" || snap.Orders[0].Status != "COMPLETED" {
		t.Errorf("order fields not decoded: %+v", snap.Orders)
	}
	if len(snap.Payments) != 5 || len(snap.Reservations) != 3 || len(snap.Shipments) != 4 || len(snap.Stock) != 3 {
		t.Errorf("read %d payments, %d reservations, %d shipments, %d stock; want 5, 3, 4, 3",
			len(snap.Payments), len(snap.Reservations), len(snap.Shipments), len(snap.Stock))
	}
	if snap.Payments[4].OrderID != "o04" || snap.Reservations[2].Status != "COMMITTED" || snap.Stock[2].ProductID != "p2" {
		t.Errorf("effect fields not decoded: %+v %+v %+v", snap.Payments, snap.Reservations, snap.Stock)
	}
	for _, c := range f.calls {
		if c.Token != "admin-token" || c.Method != "GET" {
			t.Errorf("call %s %s with token %q, want GET with the admin's token", c.Method, c.Path, c.Token)
		}
	}
	// The orders listing is read twice: in full first, and from the last
	// order seen once the effects are in.
	var orderCalls []string
	for _, c := range f.calls {
		if c.Service == "orders" {
			orderCalls = append(orderCalls, c.Path)
		}
	}
	if len(orderCalls) < 4 || !strings.Contains(orderCalls[len(orderCalls)-2], "after=o04") {
		t.Errorf("orders calls = %v, want a re-read after o04", orderCalls)
	}
	if first := f.calls[0]; first.Service != "orders" {
		t.Errorf("first call went to %s, want orders: effects must not be read before their orders", first.Service)
	}
}

func TestAPISourceReportsAFailingService(t *testing.T) {
	f := newPagedCaller(t)
	f.failOn = "shipping /api/v1/shipments"
	_, err := audit.APISource{Caller: f}.Snapshot(context.Background())
	if !fail.Is(err, fail.Unavailable) {
		t.Fatalf("Snapshot error = %v, want the caller's unavailable error", err)
	}
	var fe *fail.Error
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "shipping") {
		t.Errorf("error %v does not say which service failed", err)
	}
}
