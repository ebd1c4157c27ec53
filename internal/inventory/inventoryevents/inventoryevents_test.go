package inventoryevents_test

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
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/inventory/inventoryevents"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// world is inventory consuming from an embedded JetStream through a
// bustest.Thrice, which hands it every event three times at once, and
// stocked with 10 of p1.
type world struct {
	t   *testing.T
	ctx context.Context
	bus *natsbus.Bus
	sub *bustest.Thrice
	db  *sqldb.DB
	in  *inbox.Inbox
	svc *inventory.Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "inventory", inventorydb.Migrations)
	b := natsbustest.Embedded(t, "inventory-test")
	w := &world{
		t: t, ctx: context.Background(), bus: b, db: db, in: inbox.New(db, "", nil),
		sub: bustest.NewThrice(b),
		svc: inventory.NewService(inventorydb.New(db)),
	}
	if _, err := w.svc.SetAvailable(w.ctx, "p1", 10); err != nil {
		t.Fatal(err)
	}
	w.sub.Consume(t, func(ctx context.Context, sub bus.Subscriber) error {
		return inventoryevents.Consume(ctx, sub, w.in, w.svc, nil)
	})
	return w
}

// publish sends an event from another service and returns it.
func (w *world) publish(source, topic, typ, orderID string, payload any) event.Event {
	w.t.Helper()
	return bustest.Publish(w.t, w.bus, source, topic, typ, orderID, payload)
}

// announced returns the types of the events inventory put in its outbox
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

func (w *world) wantReservation(orderID string, status inventory.Status) {
	w.t.Helper()
	r, err := w.svc.Reservation(w.ctx, orderID)
	if err != nil || r.Status != status {
		w.t.Errorf("reservation of %s: got %s, %v; want %s", orderID, r.Status, err, status)
	}
}

func (w *world) wantP1(available, reserved, sold int64) {
	w.t.Helper()
	st, err := w.svc.Stock(w.ctx, "p1")
	if err != nil {
		w.t.Fatal(err)
	}
	if st.Available != available || st.Reserved != reserved || st.Sold != sold || !st.Balanced() {
		w.t.Errorf("p1: got %+v, want available %d reserved %d sold %d", st, available, reserved, sold)
	}
}

func (w *world) wantAnnounced(orderID string, want ...string) {
	w.t.Helper()
	if got := w.announced(orderID); !reflect.DeepEqual(got, want) {
		w.t.Errorf("announced about %s: got %v, want %v", orderID, got, want)
	}
}

type item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

type orderCreated struct {
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
	Saga       string `json:"saga"`
	Items      []item `json:"items"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
}

type orderRef struct {
	OrderID string `json:"order_id"`
	Saga    string `json:"saga"`
}

func TestChoreographyAppliesEachEventOnce(t *testing.T) {
	w := newWorld(t)
	// The payment comes first: inventory must remember it until the order's
	// items arrive.
	paid := w.publish("payments", inventoryevents.TopicPaymentProcessed, "PaymentProcessed", "o1",
		map[string]any{"order_id": "o1", "payment_id": "pay-1", "amount_cents": 500, "currency": "USD", "saga": "choreography"})
	w.sub.WaitHandled(t, paid)
	created := w.publish("orders", inventoryevents.TopicOrderCreated, "OrderCreated", "o1",
		orderCreated{OrderID: "o1", UserID: "u1", Saga: "choreography", Items: []item{{"p1", 2}}, TotalCents: 500, Currency: "USD"})
	w.sub.WaitHandled(t, created)
	w.wantReservation("o1", inventory.Reserved)
	w.wantP1(8, 2, 0)
	w.wantAnnounced("o1", "ItemsReserved")

	shipped := w.publish("shipping", inventoryevents.TopicDeliveryScheduled, "DeliveryScheduled", "o1",
		map[string]any{"order_id": "o1", "shipment_id": "s1", "saga": "choreography"})
	w.sub.WaitHandled(t, shipped)
	w.wantReservation("o1", inventory.Committed)
	w.wantP1(8, 0, 2)
	w.wantAnnounced("o1", "ItemsReserved", "ItemsCommitted")
}

func TestParallelDeclineReleases(t *testing.T) {
	w := newWorld(t)
	created := w.publish("orders", inventoryevents.TopicOrderCreated, "OrderCreated", "o1",
		orderCreated{OrderID: "o1", Saga: "parallel", Items: []item{{"p1", 3}}})
	declined := w.publish("payments", inventoryevents.TopicPaymentFailed, "PaymentFailed", "o1",
		map[string]any{"order_id": "o1", "reason": "card declined", "saga": "parallel"})
	cancelled := w.publish("orders", inventoryevents.TopicOrderCancelled, "OrderCancelled", "o1",
		map[string]any{"order_id": "o1", "user_id": "u1", "saga": "parallel", "reason": "card declined"})
	w.sub.WaitHandled(t, created, declined, cancelled)
	// The three streams deliver in any order; whichever came first, nothing
	// is held at the end.
	w.wantReservation("o1", inventory.Released)
	w.wantP1(10, 0, 0)
	got := w.announced("o1")
	if len(got) != 3 {
		t.Errorf("announced about o1: got %v, want one answer to each of the three events", got)
	}
}

func TestCommandsAreAnsweredEveryTime(t *testing.T) {
	w := newWorld(t)
	reserve := map[string]any{"order_id": "o1", "items": []item{{"p1", 4}}, "saga": "orchestration"}
	first := w.publish("orders", inventoryevents.TopicCommandReserve, "ReserveItems", "o1", reserve)
	w.sub.WaitHandled(t, first)
	// The orchestrator sends the command again after a crash: a new event,
	// the same outcome, announced again, stock moved once.
	again := w.publish("orders", inventoryevents.TopicCommandReserve, "ReserveItems", "o1", reserve)
	w.sub.WaitHandled(t, again)
	w.wantReservation("o1", inventory.Reserved)
	w.wantP1(6, 4, 0)
	w.wantAnnounced("o1", "ItemsReserved", "ItemsReserved")

	// o2 asks for more than the 6 left; it is handled before o1's release
	// is even sent, so the stock it sees is known.
	short := w.publish("orders", inventoryevents.TopicCommandReserve, "ReserveItems", "o2",
		map[string]any{"order_id": "o2", "items": []item{{"p1", 7}}, "saga": "orchestration"})
	w.sub.WaitHandled(t, short)
	w.wantReservation("o2", inventory.Rejected)
	w.wantAnnounced("o2", "ReservationFailed")
	release := w.publish("orders", inventoryevents.TopicCommandRelease, "ReleaseItems", "o1", orderRef{"o1", "orchestration"})
	w.sub.WaitHandled(t, release)
	w.wantReservation("o1", inventory.Released)
	w.wantAnnounced("o1", "ItemsReserved", "ItemsReserved", "ItemsReleased")

	commit := w.publish("orders", inventoryevents.TopicCommandCommit, "CommitItems", "o1", orderRef{"o1", "orchestration"})
	w.sub.WaitHandled(t, commit)
	w.wantAnnounced("o1", "ItemsReserved", "ItemsReserved", "ItemsReleased", "CommitFailed")
	w.wantP1(10, 0, 0)
}

func TestPoisonEndsInTheDeadLetters(t *testing.T) {
	w := newWorld(t)
	poison := w.publish("orders", inventoryevents.TopicOrderCreated, "OrderCreated", "o1",
		map[string]any{"saga": "parallel", "items": []item{{"p1", 1}}}) // no order_id
	var letters []inbox.DeadLetter
	bustest.WaitFor(t, "the poison event dead-lettered", func() bool {
		var err error
		letters, _, err = w.in.List(w.ctx, "", 10)
		if err != nil {
			t.Fatalf("listing dead letters: %v", err)
		}
		return len(letters) > 0
	})
	if len(letters) != 1 || letters[0].EventID != poison.ID || letters[0].Group != inventoryevents.Group {
		t.Errorf("dead letters: got %+v, want the poison event once, for group %s", letters, inventoryevents.Group)
	}
	w.wantP1(10, 0, 0)
	var n int
	if err := w.db.QueryRowContext(w.ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Errorf("outbox after a poison event: got %d events, %v; want none", n, err)
	}
}
