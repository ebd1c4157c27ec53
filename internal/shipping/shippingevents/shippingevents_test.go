package shippingevents_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/natsbus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/shipping/shippingevents"
	"github.com/microshop/microshop/internal/sqldb"
)

// tripled is a bus.Subscriber that hands every delivery to the handler three
// times at once, as a broker redelivering and a relay republishing might,
// and counts the handler calls that have returned, by event id.
type tripled struct {
	bus.Subscriber
	ready chan struct{}

	mu    sync.Mutex
	calls map[string]int
}

func (s *tripled) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	sub.Ready = func() { close(s.ready) }
	return s.Subscriber.Subscribe(ctx, sub, func(ctx context.Context, d bus.Delivery) error {
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = h(ctx, d) })
		}
		wg.Wait()
		s.mu.Lock()
		s.calls[d.Event.ID] += len(errs)
		s.mu.Unlock()
		return errors.Join(errs...)
	})
}

func (s *tripled) handled(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// world is shipping consuming from an embedded JetStream.
type world struct {
	t   *testing.T
	ctx context.Context
	bus *natsbus.Bus
	sub *tripled
	db  *sqldb.DB
	in  *inbox.Inbox
	svc *shipping.Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "shipping.db"))
	if err != nil {
		t.Fatalf("opening database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx, shipmentdb.Migrations); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating messaging tables: %v", err)
	}
	srv, err := natsbus.Embedded(ctx, t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("starting the broker: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := natsbus.Connect(ctx, srv.ClientURL(), natsbus.Options{Name: "shipping-test"})
	if err != nil {
		t.Fatalf("connecting to the broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })

	w := &world{
		t: t, ctx: ctx, bus: b, db: db, in: inbox.New(db, "", nil),
		sub: &tripled{Subscriber: b, ready: make(chan struct{}), calls: map[string]int{}},
		svc: shipping.NewService(shipmentdb.New(db)),
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- shippingevents.Consume(cctx, w.sub, w.in, w.svc, nil) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Consume: got %v, want nil once its context ends", err)
		}
	})
	select {
	case <-w.sub.ready:
	case err := <-done:
		t.Fatalf("Consume ended before subscribing: %v", err)
	}
	return w
}

// publish sends an event from another service and returns it.
func (w *world) publish(source, topic, typ, orderID string, payload any) event.Event {
	w.t.Helper()
	e, err := event.New(source, topic, typ, 1, orderID, payload)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.bus.Publish(w.ctx, e); err != nil {
		w.t.Fatalf("publishing %s: %v", typ, err)
	}
	return e
}

// waitHandled waits until every delivery of events has been handled three
// times.
func (w *world) waitHandled(events ...event.Event) {
	w.t.Helper()
	for _, e := range events {
		w.waitFor(e.Type+" handled three times", func() bool { return w.sub.handled(e.ID) >= 3 })
	}
}

func (w *world) waitFor(what string, ok func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			w.t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// announced returns the types of the events shipping put in its outbox
// about orderID, oldest first.
func (w *world) announced(orderID string) []string {
	w.t.Helper()
	rows, err := w.db.QueryContext(w.ctx, `SELECT envelope FROM outbox ORDER BY seq`)
	if err != nil {
		w.t.Fatalf("reading the outbox: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var raw string
		var e event.Event
		if err := rows.Scan(&raw); err != nil {
			w.t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			w.t.Fatal(err)
		}
		if e.Key == orderID {
			out = append(out, e.Type)
		}
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
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
	w.waitHandled(paid, reserved, created)
	sh := w.wantShipment("o1", shipping.StatusScheduled)
	if sh.UserID != "u1" || sh.Address.City != "London" {
		t.Errorf("shipment: got %+v, want it for u1 to London", sh)
	}
	w.wantAnnounced("o1", "DeliveryScheduled")

	cancelled := w.publish("orders", shippingevents.TopicOrderCancelled, "OrderCancelled", "o1",
		map[string]any{"order_id": "o1", "user_id": "u1", "saga": "parallel", "reason": "changed my mind"})
	w.waitHandled(cancelled)
	w.wantShipment("o1", shipping.StatusCancelled)
	w.wantAnnounced("o1", "DeliveryScheduled", "ShipmentCancelled")
}

func TestChoreographyDoesNotWaitForThePayment(t *testing.T) {
	w := newWorld(t)
	reserved := w.publish("inventory", shippingevents.TopicItemsReserved, "ItemsReserved", "o1",
		map[string]any{"order_id": "o1", "saga": "choreography"})
	created := w.publish("orders", shippingevents.TopicOrderCreated, "OrderCreated", "o1", orderCreated("o1", "choreography"))
	w.waitHandled(reserved, created)
	w.wantShipment("o1", shipping.StatusScheduled)
	w.wantAnnounced("o1", "DeliveryScheduled")
}

func TestCommandsAreAnsweredEveryTime(t *testing.T) {
	w := newWorld(t)
	schedule := map[string]any{"order_id": "o1", "user_id": "u1", "shipping_address": address, "saga": "orchestration"}
	first := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1", schedule)
	w.waitHandled(first)
	again := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1", schedule)
	w.waitHandled(again)
	scheduled := w.wantShipment("o1", shipping.StatusScheduled)
	w.wantAnnounced("o1", "DeliveryScheduled", "DeliveryScheduled")

	cancel := w.publish("orders", shippingevents.TopicCommandCancel, "CancelShipment", "o1",
		map[string]any{"order_id": "o1", "saga": "orchestration"})
	w.waitHandled(cancel)
	late := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1", schedule)
	w.waitHandled(late)
	if sh := w.wantShipment("o1", shipping.StatusCancelled); sh.ID != scheduled.ID {
		t.Errorf("shipment after the cancel: got %s, want the one scheduled, %s", sh.ID, scheduled.ID)
	}
	w.wantAnnounced("o1", "DeliveryScheduled", "DeliveryScheduled", "ShipmentCancelled", "ShipmentRefused")

	// An orchestrated order's events are the orchestrator's business.
	ignored := w.publish("orders", shippingevents.TopicOrderCreated, "OrderCreated", "o2", orderCreated("o2", "orchestration"))
	reserved := w.publish("inventory", shippingevents.TopicItemsReserved, "ItemsReserved", "o2",
		map[string]any{"order_id": "o2", "saga": "orchestration"})
	w.waitHandled(ignored, reserved)
	w.wantAnnounced("o2")
}

func TestPoisonEndsInTheDeadLetters(t *testing.T) {
	w := newWorld(t)
	bad := map[string]any{"name": "Ada", "line1": "1 Road", "city": "London", "postal_code": "N1", "country": "gb"}
	poison := w.publish("orders", shippingevents.TopicCommandSchedule, "ScheduleDelivery", "o1",
		map[string]any{"order_id": "o1", "user_id": "u1", "shipping_address": bad, "saga": "orchestration"})
	var letters []inbox.DeadLetter
	w.waitFor("the poison event dead-lettered", func() bool {
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
