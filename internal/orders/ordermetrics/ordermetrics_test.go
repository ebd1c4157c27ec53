package ordermetrics_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/orders/ordermetrics"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

type catalog struct{}

func (catalog) Product(_ context.Context, id string) (orders.Product, error) {
	return orders.Product{ID: id, PriceCents: 250, Currency: "USD"}, nil
}

type vault struct{}

func (vault) Tokenize(context.Context, string) (string, error) { return "tok", nil }

func checkout() orders.PlaceRequest {
	return orders.PlaceRequest{Items: []orders.Line{{ProductID: "p1", Quantity: 2}}, Card: "4242424242424242",
		Address: orders.Address{Name: "Ada", Line1: "1 Road", City: "London", PostalCode: "N1", Country: "GB"}}
}

// series returns the samples of family name by their saga and outcome labels.
func series(t *testing.T, m *ordermetrics.Metrics, name string) map[[2]string]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]string]*dto.Metric{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			var key [2]string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "saga":
					key[0] = l.GetValue()
				case "outcome":
					key[1] = l.GetValue()
				case "service":
					if l.GetValue() != "orders" {
						t.Errorf("%s has service %q", name, l.GetValue())
					}
				}
			}
			out[key] = s
		}
	}
	return out
}

func TestEverySeriesExistsAtZero(t *testing.T) {
	m := ordermetrics.New("orders")
	for name, want := range map[string]int{
		"microshop_orders_placed_total":       3,
		"microshop_sagas_total":               6,
		"microshop_checkout_duration_seconds": 6,
	} {
		if got := len(series(t, m, name)); got != want {
			t.Errorf("%s has %d series, want %d (every style, and outcome)", name, got, want)
		}
	}
}

// TestEachOrderIsCountedOnceWhenItEnds places choreographed orders and
// feeds their sagas the participants' events through an inbox, as the
// service does: an end is counted when the event's transaction commits,
// not when it rolls back, and never again for a duplicate delivery.
func TestEachOrderIsCountedOnceWhenItEnds(t *testing.T) {
	db := sqldbtest.OpenMessaging(t, "orders", orderdb.Migrations)
	store := orderdb.New(db)
	m := ordermetrics.New("orders")
	svc := orders.NewService(store, catalog{}, vault{}, orders.ModeChoreography, func() {})
	svc.Measure(m)
	in := inbox.New(db, "orders", nil)
	crash := false
	h := in.Handle("orders", func(ctx context.Context, e event.Event) error {
		var obs orders.Observation
		if err := e.Decode(&obs); err != nil {
			return err
		}
		if err := svc.Observe(ctx, obs); err != nil {
			return err
		}
		if crash {
			return errors.New("crashed after the effect")
		}
		return nil
	})
	deliver := func(orderID string, k orders.Kind) event.Event {
		t.Helper()
		e, err := event.New("test", "test.saga.event", string(k), 1, orderID, orders.Observation{OrderID: orderID, Kind: k, Reason: "because"})
		if err != nil {
			t.Fatal(err)
		}
		if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		return e
	}

	done, _, err := svc.Place(context.Background(), "u1", "", checkout())
	if err != nil {
		t.Fatal(err)
	}
	declined, _, err := svc.Place(context.Background(), "u1", "key-1", checkout())
	if err != nil {
		t.Fatal(err)
	}
	if _, replayed, err := svc.Place(context.Background(), "u1", "key-1", checkout()); err != nil || !replayed {
		t.Fatalf("retry of a placed order: replayed %v, %v", replayed, err)
	}
	if got := series(t, m, "microshop_orders_placed_total")[[2]string{"choreography", ""}].GetCounter().GetValue(); got != 2 {
		t.Errorf("orders placed = %v, want 2 (a replayed retry places nothing)", got)
	}

	for _, k := range []orders.Kind{orders.PaymentProcessed, orders.ItemsReserved, orders.DeliveryScheduled} {
		deliver(done.ID, k)
	}
	// The event that ends the order is applied, then its transaction rolls
	// back: nothing ended, nothing counted. The broker delivers it again.
	ending, err := event.New("test", "test.saga.event", "ItemsCommitted", 1, done.ID,
		orders.Observation{OrderID: done.ID, Kind: orders.ItemsCommitted})
	if err != nil {
		t.Fatal(err)
	}
	crash = true
	if err := h(context.Background(), bus.Delivery{Event: ending, Attempt: 1}); err == nil {
		t.Fatal("the crashing attempt succeeded")
	}
	crash = false
	completed := [2]string{"choreography", "completed"}
	if got := series(t, m, "microshop_sagas_total")[completed].GetCounter().GetValue(); got != 0 {
		t.Fatalf("after a rolled-back end, sagas completed = %v, want 0", got)
	}
	for attempt := 2; attempt <= 3; attempt++ { // the redelivery, then a duplicate
		if err := h(context.Background(), bus.Delivery{Event: ending, Attempt: attempt}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(declined.ID, orders.PaymentFailed)
	deliver(declined.ID, orders.ReservationFailed)

	if o, err := store.Order(context.Background(), done.ID); err != nil || o.Status != orders.Completed {
		t.Fatalf("order = %v, %v; want it completed", o.Status, err)
	}
	sagas := series(t, m, "microshop_sagas_total")
	cancelled := [2]string{"choreography", "cancelled"}
	if got := sagas[completed].GetCounter().GetValue(); got != 1 {
		t.Errorf("sagas completed = %v, want 1: once, however often the ending event came", got)
	}
	if got := sagas[cancelled].GetCounter().GetValue(); got != 1 {
		t.Errorf("sagas cancelled = %v, want 1", got)
	}
	if got := sagas[[2]string{"orchestration", "completed"}].GetCounter().GetValue(); got != 0 {
		t.Errorf("orchestration completed = %v, want 0", got)
	}
	hist := series(t, m, "microshop_checkout_duration_seconds")
	for _, key := range [][2]string{completed, cancelled} {
		h := hist[key].GetHistogram()
		if h.GetSampleCount() != 1 || h.GetSampleSum() <= 0 || h.GetSampleSum() > 60 {
			t.Errorf("checkout duration %v: %d samples summing %vs, want one, of the time since placing", key, h.GetSampleCount(), h.GetSampleSum())
		}
	}
}
