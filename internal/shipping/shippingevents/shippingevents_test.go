package shippingevents_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/bustest"
	"github.com/microshop/microshop/internal/bus/natsbus"
	"github.com/microshop/microshop/internal/bus/natsbus/natsbustest"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/shipping/shippingevents"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// world is shipping consuming from an embedded JetStream through a
// bustest.Thrice, which hands it every event three times at once.
type world struct {
	t   *testing.T
	ctx context.Context
	bus *natsbus.Bus
	sub *bustest.Thrice
	db  *sqldb.DB
	in  *inbox.Inbox
	svc *shipping.Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "shipping", shipmentdb.Migrations)
	b := natsbustest.Embedded(t, "shipping-test")
	w := &world{
		t: t, ctx: context.Background(), bus: b, db: db, in: inbox.New(db, "", nil),
		sub: bustest.NewThrice(b),
		svc: shipping.NewService(shipmentdb.New(db)),
	}
	w.sub.Consume(t, func(ctx context.Context, sub bus.Subscriber) error {
		return shippingevents.Consume(ctx, sub, w.in, w.svc, nil)
	})
	return w
}

// publish sends an event from another service and returns it.
func (w *world) publish(source, topic, typ, orderID string, payload any) event.Event {
	w.t.Helper()
	return bustest.Publish(w.t, w.bus, source, topic, typ, orderID, payload)
}

// announced returns the types of the events shipping put in its outbox
// about orderID, oldest first.
func (w *world) announced(orderID string) []string {
	w.t.Helper()
	var out []string
	for _, e := range sqldbtest.Outbox(w.t, w.db) {
		if e.Key == orderID {
			out = append(out, e.Type)
		}
	}
	return out
}

func (w *world) wantShipment(orderID string, status shipping.Status) shipping.Shipment {
	w.t.Helper()
	sh, err := w.svc.ByOrder(w.ctx, orderID)
	if err != nil || sh.Status != status {
		w.t.Errorf("shipment of %s: got %s, %v; want %s", orderID, sh.Status, err, status)
	}
	return sh
}

func (w *world) wantAnnounced(orderID string, want ...string) {
	w.t.Helper()
	if got := w.announced(orderID); !reflect.DeepEqual(got, want) {
		w.t.Errorf("announced about %s: got %v, want %v", orderID, got, want)
	}
}

var address = map[string]any{
	"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB",
}

func orderCreated(orderID, saga string) map[string]any {
	return map[string]any{
		"order_id": orderID, "user_id": "u1", "saga": saga, "total_cents": 500, "currency": "USD",
		"items":            []map[string]any{{"product_id": "p1", "quantity": 2, "price_cents": 250}},
		"card_token":       "tok-1",
		"shipping_address": address,
		"created_at":       "2026-01-02T03:04:05Z",
	}
}

func TestParallelSchedulesOnceWhateverTheOrder(t *testing.T) {
	w := newWorld(t)
	// Published last-first, on three streams that deliver independently.
	paid := w.publish("payments", shippingevents.TopicPaymentProcessed, "PaymentProcessed", "o1",
		map[string]any{"order_id": "o1", "payment_id": "pay-1", "amount_cents": 500, "currency": "USD", "saga": "parallel"})
	reserved := w.publish("inventory", shippingevents.TopicItemsReserved, "ItemsReserved", "o1",
		map[string]any{"order_id": "o1", "items": []map[string]any{{"product_id": "p1", "quantity": 2}}, "saga": "parallel"})
	created := w.publish("orders", shippingevents.TopicOrderCreated, "OrderCreated", "o1", orderCreated("o1", "parallel"))
	w.sub.WaitHandled(t, paid, reserved, created)
	sh := w.wantShipment("o1", shipping.StatusScheduled)
	if sh.UserID != "u1" || sh.Address.City != "London" {
		t.Errorf("shipment: got %+v, want it for u1 to London", sh)
	}
	w.wantAnnounced("o1", "DeliveryScheduled")

	cancelled := w.publish("orders", shippingevents.TopicOrderCancelled, "OrderCancelled", "o1",
		map[string]any{"order_id": "o1", "user_id": "u1", "saga": "parallel", "reason": "changed my mind"})
	w.sub.WaitHandled(t, cancelled)
	w.wantShipment("o1", shipping.StatusCancelled)
	w.wantAnnounced("o1", "DeliveryScheduled", "ShipmentCancelled")
}

func TestChoreographyDoesNotWaitForThePayment(t *testing.T) {
	w := newWorld(t)
	reserved := w.publish("inventory", shippingevents.TopicItemsReserved, "ItemsReserved", "o1",
		map[string]any{"order_id": "o1", "saga": "choreography"})
	created := w.publish("orders", shippingevents.TopicOrderCreated, "OrderCreated", "o1", orderCreated("o1", "choreography"))
	w.sub.WaitHandled(t, reserved, created)
	w.wantShipment("o1", shipping.StatusScheduled)
	w.wantAnnounced("o1", "DeliveryScheduled")
}

func TestCommandsAreAnsweredEveryTime(t *testing.T) {
	w := newWorld(t)
	schedule := map[string]any{"order_id": "o1", "user_id": "u1", "shipping_address": address, "saga": "orchestration"}
	first := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1", schedule)
	w.sub.WaitHandled(t, first)
	again := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1", schedule)
	w.sub.WaitHandled(t, again)
	scheduled := w.wantShipment("o1", shipping.StatusScheduled)
	w.wantAnnounced("o1", "DeliveryScheduled", "DeliveryScheduled")

	cancel := w.publish("orders", shippingevents.TopicCommandCancel, "CancelShipment", "o1",
		map[string]any{"order_id": "o1", "saga": "orchestration"})
	w.sub.WaitHandled(t, cancel)
	late := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1", schedule)
	w.sub.WaitHandled(t, late)
	if sh := w.wantShipment("o1", shipping.StatusCancelled); sh.ID != scheduled.ID {
		t.Errorf("shipment after the cancel: got %s, want the one scheduled, %s", sh.ID, scheduled.ID)
	}
	w.wantAnnounced("o1", "DeliveryScheduled", "DeliveryScheduled", "ShipmentCancelled", "ShipmentRefused")

	// An orchestrated order's events are the orchestrator's business.
	ignored := w.publish("orders", shippingevents.TopicOrderCreated, "OrderCreated", "o2", orderCreated("o2", "orchestration"))
	reserved := w.publish("inventory", shippingevents.TopicItemsReserved, "ItemsReserved", "o2",
		map[string]any{"order_id": "o2", "saga": "orchestration"})
	w.sub.WaitHandled(t, ignored, reserved)
	w.wantAnnounced("o2")
}

func TestPoisonEndsInTheDeadLetters(t *testing.T) {
	w := newWorld(t)
	bad := map[string]any{"name": "Ada", "line1": "1 Road", "city": "London", "postal_code": "N1", "country": "gb"}
	poison := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1",
		map[string]any{"order_id": "o1", "user_id": "u1", "shipping_address": bad, "saga": "orchestration"})
	var letters []inbox.DeadLetter
	bustest.WaitFor(t, "the poison event dead-lettered", func() bool {
		var err error
		letters, _, err = w.in.List(w.ctx, "", 10)
		if err != nil {
			t.Fatalf("listing dead letters: %v", err)
		}
		return len(letters) > 0
	})
	if len(letters) != 1 || letters[0].EventID != poison.ID || letters[0].Group != shippingevents.Group {
		t.Errorf("dead letters: got %+v, want the poison event once, for group %s", letters, shippingevents.Group)
	}
	if _, err := w.svc.ByOrder(w.ctx, "o1"); err == nil {
		t.Errorf("a shipment exists after a poison command")
	}
	w.wantAnnounced("o1")
}
