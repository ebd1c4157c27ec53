package audit_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
)

// imported builds an order imported from the legacy monolith, from JSON as
// the orders service lists it.
func imported(t *testing.T, id, status string, total int64, created time.Time, items ...string) audit.Order {
	t.Helper()
	return decode[audit.Order](t, fmt.Sprintf(`{"id":%q,"status":%q,"origin":"legacy","total_cents":%d,"created_at":%q,"items":[%s]}`,
		id, status, total, created.Format(time.RFC3339Nano), strings.Join(items, ",")))
}

// migratedShop is the clean shop with two orders imported from the
// monolith: years old, ended, with no payment, reservation or shipment.
func migratedShop(t *testing.T) audit.Snapshot {
	t.Helper()
	s := cleanShop(t)
	long := now.AddDate(-3, 0, 0)
	s.Orders = append(s.Orders,
		imported(t, "L1", "COMPLETED", 3000, long, item("p1", 3)),
		imported(t, "L2", "CANCELLED", 100, long, item("p2", 1)),
	)
	return s
}

var migratedCounts = func() audit.Counts {
	c := cleanCounts
	c.Orders, c.Imported = cleanCounts.Orders+2, 2
	return c
}()

func TestImportedOrdersAreCountedAndNeedNoEffects(t *testing.T) {
	rep := audit.Run(migratedShop(t), now, grace)
	if !rep.OK {
		t.Errorf("OK = false for a clean shop with imported orders: %+v", rep.Checks)
	}
	if rep.Counts != migratedCounts {
		t.Errorf("counts = %+v, want %+v: imported orders counted apart from the ones that ran a saga", rep.Counts, migratedCounts)
	}
	for _, c := range rep.Checks {
		if c.Name == "orders_end" && !strings.Contains(c.Detail, "2 imported") {
			t.Errorf("orders_end detail %q does not count the imported orders", c.Detail)
		}
	}
	if o := migratedShop(t).Orders[4]; o.Origin != audit.OriginLegacy {
		t.Errorf("origin decoded as %q, want %q", o.Origin, audit.OriginLegacy)
	}
}

// TestImportedOrdersBreakTheirOwnInvariants: an imported order must have
// ended, and no service may have acted on it.
func TestImportedOrdersBreakTheirOwnInvariants(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(s *audit.Snapshot)
		failing []string
		counts  func(c *audit.Counts)
		culprit string
	}{
		{
			name:    "imported still pending",
			breakIt: func(s *audit.Snapshot) { s.Orders[4].Status = "PENDING" },
			failing: []string{"orders_end"},
			counts:  func(c *audit.Counts) { c.Stuck, c.Lost = 1, 1 },
			culprit: "L1 (imported, PENDING)",
		},
		{
			name: "imported pending, placed a moment ago: no grace",
			breakIt: func(s *audit.Snapshot) {
				s.Orders[4].Status, s.Orders[4].CreatedAt = "CONFIRMED", now.Add(-time.Second)
			},
			failing: []string{"orders_end"},
			counts:  func(c *audit.Counts) { c.Stuck, c.Lost = 1, 1 },
			culprit: "L1 (imported, CONFIRMED)",
		},
		{
			name: "imported and charged here",
			breakIt: func(s *audit.Snapshot) {
				s.Payments = append(s.Payments, audit.Payment{ID: "payL", OrderID: "L1", AmountCents: 3000, Status: "CAPTURED"})
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.UnexpectedOrders = 1, 1 },
			culprit: "payment for L1",
		},
		{
			name: "imported and its stock held here",
			breakIt: func(s *audit.Snapshot) {
				s.Reservations = append(s.Reservations, reservation(t, "L2", "RESERVED", item("p2", 1)))
				for i := range s.Stock {
					if s.Stock[i].ProductID == "p2" {
						s.Stock[i].Available, s.Stock[i].Reserved = 2, 3
					}
				}
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.UnexpectedOrders = 1, 1 },
			culprit: "reservation for L2",
		},
		{
			name: "imported and shipped here",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "sL", OrderID: "L1", Status: "SCHEDULED"})
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.UnexpectedOrders = 1, 1 },
			culprit: "shipment for L1",
		},
		{
			name: "imported and shipped twice here",
			breakIt: func(s *audit.Snapshot) {
				s.Shipments = append(s.Shipments,
					audit.Shipment{ID: "sL", OrderID: "L1", Status: "SCHEDULED"},
					audit.Shipment{ID: "sLb", OrderID: "L1", Status: "SCHEDULED"})
			},
			failing: []string{"no_unexpected_effects", "no_duplicated_orders"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.UnexpectedOrders, c.Duplicated = 2, 1, 1 },
			culprit: "L1 (2 shipments scheduled)",
		},
		{
			name: "imported with a declined payment here: payments acted on it",
			breakIt: func(s *audit.Snapshot) {
				s.Payments = append(s.Payments, audit.Payment{ID: "payL", OrderID: "L2", AmountCents: 100, Status: "DECLINED"})
			},
			failing: []string{"no_unexpected_effects"},
			counts:  func(c *audit.Counts) { c.Unexpected, c.UnexpectedOrders = 1, 1 },
			culprit: "payment for L2",
		},
		{
			name: "imported with a released reservation and a cancelled shipment: nothing held",
			breakIt: func(s *audit.Snapshot) {
				s.Reservations = append(s.Reservations, reservation(t, "L2", "RELEASED", item("p2", 1)))
				s.Shipments = append(s.Shipments, audit.Shipment{ID: "sL", OrderID: "L2", Status: "CANCELLED"})
			},
			counts: func(*audit.Counts) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := migratedShop(t)
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
			if !slices.Equal(failing, tc.failing) {
				t.Errorf("failing checks = %v, want %v\n%s", failing, tc.failing, details)
			}
			want := migratedCounts
			tc.counts(&want)
			if rep.Counts != want {
				t.Errorf("counts = %+v, want %+v", rep.Counts, want)
			}
			if tc.culprit != "" && !strings.Contains(details, tc.culprit) {
				t.Errorf("details do not mention %q:\n%s", tc.culprit, details)
			}
			checkFiguresAgreeWithOK(t, rep)
		})
	}
}

// TestAPISourceReadsEveryOrderFromV2 serves the audit the orders
// service's v2 admin listing, which alone holds imported orders: the
// snapshot holds them with their origin, and the audit counts them.
func TestAPISourceReadsEveryOrderFromV2(t *testing.T) {
	f := newPagedCaller(t)
	f.lists["orders /api/v2/admin/orders"][1]["origin"] = "legacy"
	snap, err := audit.APISource{Caller: f}.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Orders[1].Origin != audit.OriginLegacy || snap.Orders[0].Origin != "shop" {
		t.Errorf("origins = %q, %q; want legacy for the imported order, shop for the one placed here", snap.Orders[1].Origin, snap.Orders[0].Origin)
	}
	for _, c := range f.calls {
		if c.Service == "orders" && !strings.HasPrefix(c.Path, "/api/v2/admin/orders?") {
			t.Errorf("the audit read orders from %s, want the v2 admin listing, which holds imported orders", c.Path)
		}
	}
	if rep := audit.Run(snap, now, grace); rep.Counts.Imported != 1 || rep.Counts.Orders != len(snap.Orders) {
		t.Errorf("counts = %+v, want %d orders, 1 of them imported", rep.Counts, len(snap.Orders))
	}
}
