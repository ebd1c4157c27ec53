// Package orderevents connects the orders service to the bus: the replies
// and events of the saga's participants, the catalog's prices, and the
// events its own read model is built from (its own, and the users
// service's names of customers). Each payload is declared here
// with only the fields orders reads.
package orderevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/orders"
)

// Groups orders consumes as: one per purpose, so a slow read model never
// holds up a saga.
const (
	GroupSaga    = "orders"
	GroupCatalog = "orders-catalog"
	GroupView    = "orders-view"
)

// sagaKinds maps each participant topic to what orders observes in it.
var sagaKinds = map[string]orders.Kind{
	"payments.payment.processed":   orders.PaymentProcessed,
	"payments.payment.failed":      orders.PaymentFailed,
	"payments.payment.refunded":    orders.PaymentRefunded,
	"inventory.items.reserved":     orders.ItemsReserved,
	"inventory.reservation.failed": orders.ReservationFailed,
	"inventory.items.released":     orders.ItemsReleased,
	"inventory.items.committed":    orders.ItemsCommitted,
	"inventory.commit.failed":      orders.CommitFailed,
	"shipping.delivery.scheduled":  orders.DeliveryScheduled,
	"shipping.shipment.refused":    orders.ShipmentRefused,
	"shipping.shipment.cancelled":  orders.ShipmentCancelled,
}

// Reads is what orders requires of each topic it consumes: the payload
// fields it cannot apply an event without (a participant's reason is read
// when there is one, and not required). Every event is checked against it
// before its effect, and the contract tests check that each field is one
// its producer always sends.
var Reads = event.Reads{
	"payments.payment.processed":    {"order_id"},
	"payments.payment.failed":       {"order_id"},
	"payments.payment.refunded":     {"order_id"},
	"inventory.items.reserved":      {"order_id"},
	"inventory.reservation.failed":  {"order_id"},
	"inventory.items.released":      {"order_id"},
	"inventory.items.committed":     {"order_id"},
	"inventory.commit.failed":       {"order_id"},
	"shipping.delivery.scheduled":   {"order_id"},
	"shipping.shipment.refused":     {"order_id"},
	"shipping.shipment.cancelled":   {"order_id"},
	"catalog.product.created":       {"product_id", "price_cents", "currency"},
	"catalog.product.price_changed": {"product_id", "price_cents", "currency"},
	orders.TopicOrderCreated:        {"order_id", "user_id", "saga", "items", "total_cents", "currency", "created_at"},
	orders.TopicOrderCompleted:      {"order_id", "user_id", "saga", "updated_at"},
	orders.TopicOrderCancelled:      {"order_id", "user_id", "saga", "updated_at"},
	orders.TopicOrderImported:       {"order_id", "user_id", "status", "saga", "origin", "items", "total_cents", "currency", "created_at", "updated_at"},
	topicUserCreated:                {"user_id", "name"},
	topicUserRenamed:                {"user_id", "name"},
}

// The users service's topics the read model takes customers' names from.
const (
	topicUserCreated = "users.user.created"
	topicUserRenamed = "users.user.renamed"
)

// viewTopics are what the read model is built from: orders' own events and
// the customers' names.
var viewTopics = []string{orders.TopicOrderCreated, orders.TopicOrderCompleted, orders.TopicOrderCancelled, orders.TopicOrderImported,
	topicUserCreated, topicUserRenamed}

// outcome is what orders reads of a participant's event.
type outcome struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

type productChange struct {
	ProductID  string `json:"product_id"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
}

// customer is what orders reads of UserCreated and UserRenamed alike.
type customer struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

// Consume runs orders' subscriptions until ctx ends. Every event goes
// through in, so it is applied at most once, in the transaction of its
// effect, and poison ends in in's dead letters.
func Consume(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, svc *orders.Service, proj *orders.Projector, log *slog.Logger) error {
	var sagaTopics []string
	for t := range sagaKinds {
		sagaTopics = append(sagaTopics, t)
	}
	subs := []struct {
		group  string
		topics []string
		handle func(ctx context.Context, e event.Event) error
	}{
		{GroupSaga, sagaTopics, func(ctx context.Context, e event.Event) error { return observe(ctx, svc, e) }},
		{GroupCatalog, []string{"catalog.product.created", "catalog.product.price_changed"}, func(ctx context.Context, e event.Event) error {
			if err := Reads.Check(e); err != nil {
				return err
			}
			var p productChange
			if err := e.Decode(&p); err != nil {
				return err
			}
			if p.ProductID == "" || p.PriceCents <= 0 || p.Currency == "" {
				return fmt.Errorf("%s %s: product_id, price_cents and currency are required", e.Type, e.ID)
			}
			return svc.ProductChanged(ctx, orders.Product{ID: p.ProductID, PriceCents: p.PriceCents, Currency: p.Currency})
		}},
		{GroupView, viewTopics, func(ctx context.Context, e event.Event) error { return Project(ctx, proj, e) }},
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, s := range subs {
		handler := in.Handle(s.group, s.handle)
		wg.Go(func() {
			err := sub.Subscribe(ctx, bus.Subscription{
				Group: s.group, Topics: s.topics, DeadLetter: in.DeadLetters(s.group),
			}.WithDefaults(), handler)
			if err != nil && ctx.Err() == nil {
				log.Error("subscription ended", slog.String("group", s.group), slog.Any("err", err))
				mu.Lock()
				errs = append(errs, fmt.Errorf("subscription %s: %w", s.group, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func observe(ctx context.Context, svc *orders.Service, e event.Event) error {
	kind, ok := sagaKinds[e.Topic]
	if !ok {
		return fmt.Errorf("unexpected topic %s", e.Topic)
	}
	if err := Reads.Check(e); err != nil {
		return err
	}
	var o outcome
	if err := e.Decode(&o); err != nil {
		return err
	}
	if o.OrderID == "" {
		return fmt.Errorf("%s %s has no order_id", e.Type, e.ID)
	}
	return svc.Observe(ctx, orders.Observation{OrderID: o.OrderID, Kind: kind, Reason: o.Reason})
}

// Project applies one event to the read model. Rebuilds call it too, so the
// rebuilt model is made by the very code that made the first.
func Project(ctx context.Context, proj *orders.Projector, e event.Event) error {
	if err := Reads.Check(e); err != nil {
		return err
	}
	switch e.Topic {
	case orders.TopicOrderCreated:
		var c orders.OrderCreated
		if err := e.Decode(&c); err != nil {
			return err
		}
		if c.OrderID == "" || c.UserID == "" {
			return fmt.Errorf("OrderCreated %s lacks order_id or user_id", e.ID)
		}
		return proj.Created(ctx, c)
	case orders.TopicOrderCompleted, orders.TopicOrderCancelled:
		var end orders.OrderEnded
		if err := e.Decode(&end); err != nil {
			return err
		}
		if end.OrderID == "" {
			return fmt.Errorf("%s %s lacks order_id", e.Type, e.ID)
		}
		status := orders.Completed
		if e.Topic == orders.TopicOrderCancelled {
			status = orders.Cancelled
		}
		return proj.Ended(ctx, status, end)
	case orders.TopicOrderImported:
		var im orders.OrderImported
		if err := e.Decode(&im); err != nil {
			return err
		}
		if im.OrderID == "" || im.UserID == "" {
			return fmt.Errorf("OrderImported %s lacks order_id or user_id", e.ID)
		}
		if im.Status != orders.Completed && im.Status != orders.Cancelled {
			return fmt.Errorf("OrderImported %s has status %q; an imported order has ended", e.ID, im.Status)
		}
		return proj.Imported(ctx, im)
	case topicUserCreated, topicUserRenamed:
		// Both carry the name the user had when the event happened: the
		// event's time orders them, whatever order they arrive in.
		var u customer
		if err := e.Decode(&u); err != nil {
			return err
		}
		if u.UserID == "" {
			return fmt.Errorf("%s %s lacks user_id", e.Type, e.ID)
		}
		return proj.Customer(ctx, u.UserID, u.Name, e.Time)
	}
	return fmt.Errorf("unexpected topic %s", e.Topic)
}
