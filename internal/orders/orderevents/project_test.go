package orderevents_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/orders/orderevents"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// readModel is the orders service on a real database, with the projector
// the shop runs and a way to deliver events to it as the orders-view
// group's consumer does.
type readModel struct {
	db    *sqldb.DB
	store *orderdb.Store
	svc   *orders.Service
	proj  *orders.Projector
}

func newReadModel(t *testing.T, d sqldb.Dialect) readModel {
	t.Helper()
	db := sqldbtest.OpenMessagingOn(t, d, "orders", orderdb.Migrations)
	store := orderdb.New(db)
	return readModel{db: db, store: store, svc: orders.NewService(store, nil, nil, orders.ModeParallel, func() {}), proj: orders.NewProjector(store)}
}

// deliver projects e in a transaction of its own, as a consumer applies it.
func (m readModel) deliver(t *testing.T, e event.Event) {
	t.Helper()
	if err := m.db.Atomic(context.Background(), func(ctx context.Context) error { return orderevents.Project(ctx, m.proj, e) }); err != nil {
		t.Fatalf("projecting %s: %v", e.Topic, err)
	}
}

// deliverOutbox projects every event orders has in its outbox.
func (m readModel) deliverOutbox(t *testing.T) {
	t.Helper()
	for _, e := range sqldbtest.Outbox(t, m.db) {
		m.deliver(t, e)
	}
}

func (m readModel) listed(t *testing.T, user string) []orders.Order {
	t.Helper()
	p, err := m.svc.ListByUser(context.Background(), user, orders.AnyOrigin, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	return p.Orders
}

// userEvent is a users event as the users service publishes it, at a time.
func userEvent(t *testing.T, topic, typ, user, name string, at time.Time) event.Event {
	t.Helper()
	e, err := event.New("users", topic, typ, 1, user, map[string]string{"user_id": user, "name": name})
	if err != nil {
		t.Fatal(err)
	}
	e.Time = at
	return e
}

// TestImportedOrdersAreListedAndSurviveARebuild imports an order through
// the service: it is listed at once, before any delivery. It then delivers
// what the import published to the read model, twice, and rebuilds the
// model from the log: the order is listed alike each time.
func TestImportedOrdersAreListedAndSurviveARebuild(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		m := newReadModel(t, d)
		ctx := context.Background()
		placed := time.Date(2019, 5, 4, 10, 30, 0, 0, time.UTC)
		o := orders.Order{
			ID: uuid.Must(uuid.NewV7()).String(), UserID: "u1", Status: orders.Completed,
			Items: []orders.Item{{ProductID: "p1", Quantity: 3, PriceCents: 700}}, TotalCents: 2100, Currency: "USD",
			Address:   orders.Address{Name: "Ada", Line1: "1 Main", City: "London", PostalCode: "N1", Country: "GB"},
			CreatedAt: placed,
		}
		m.deliver(t, userEvent(t, "users.user.created", "UserCreated", "u1", "Ada", placed.Add(-time.Hour)))
		if _, err := m.svc.Import(ctx, []orders.Order{o}); err != nil {
			t.Fatal(err)
		}

		check := func(when string) {
			t.Helper()
			list := m.listed(t, "u1")
			if len(list) != 1 {
				t.Fatalf("%s: listed %d orders, want the imported one", when, len(list))
			}
			v := list[0]
			if v.ID != o.ID || v.Status != orders.Completed || v.Origin != orders.OriginLegacy || v.Saga != orders.SagaNone ||
				v.TotalCents != 2100 || len(v.Items) != 1 || v.Items[0] != o.Items[0] || !v.CreatedAt.Equal(placed) ||
				!v.UpdatedAt.Equal(placed) || v.CustomerName != "Ada" {
				t.Errorf("%s: listed %+v, want the imported order, completed, of origin legacy, for Ada", when, v)
			}
		}
		check("right after the import, nothing delivered yet")
		m.deliverOutbox(t)
		check("after delivery")
		m.deliverOutbox(t)
		check("after a redelivery")
		n, err := m.store.RebuildViews(ctx, func(ctx context.Context, e event.Event) error { return orderevents.Project(ctx, m.proj, e) })
		if err != nil || n != 1 {
			t.Fatalf("rebuild = %d events, %v; want the one OrderImported", n, err)
		}
		check("after a rebuild")
	})
}

// TestRenamesChangeTheCustomerNameInAnyOrder delivers a user's creation and
// renames in every order they may arrive in: the listings show the newest.
func TestRenamesChangeTheCustomerNameInAnyOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		m := newReadModel(t, d)
		ctx := context.Background()
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var events []event.Event
		var users []string
		for i, arrival := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}} {
			user := "u" + string(rune('a'+i))
			users = append(users, user)
			history := []event.Event{
				userEvent(t, "users.user.created", "UserCreated", user, "Ada", at),
				userEvent(t, "users.user.renamed", "UserRenamed", user, "Ada Byron", at.Add(time.Minute)),
				userEvent(t, "users.user.renamed", "UserRenamed", user, "Ada King", at.Add(2*time.Minute)),
			}
			for _, k := range arrival {
				events = append(events, history[k])
			}
			if _, err := m.svc.Import(ctx, []orders.Order{{
				ID: uuid.Must(uuid.NewV7()).String(), UserID: user, Status: orders.Cancelled,
				Items: []orders.Item{{ProductID: "p1", Quantity: 1, PriceCents: 100}}, TotalCents: 100, Currency: "USD",
				Address:   orders.Address{Name: "Ada", Line1: "1 Main", City: "London", PostalCode: "N1", Country: "GB"},
				CreatedAt: at,
			}}); err != nil {
				t.Fatal(err)
			}
		}
		m.deliverOutbox(t)
		for _, e := range events {
			m.deliver(t, e)
		}
		for _, user := range users {
			if list := m.listed(t, user); len(list) != 1 || list[0].CustomerName != "Ada King" {
				t.Errorf("%s's orders = %+v, want one for customer Ada King", user, list)
			}
		}
		// A rebuild replays orders' own events only: the names stay.
		if _, err := m.store.RebuildViews(ctx, func(ctx context.Context, e event.Event) error { return orderevents.Project(ctx, m.proj, e) }); err != nil {
			t.Fatal(err)
		}
		if list := m.listed(t, users[0]); len(list) != 1 || list[0].CustomerName != "Ada King" {
			t.Errorf("after a rebuild: %+v, want one order for customer Ada King", list)
		}
	})
}
