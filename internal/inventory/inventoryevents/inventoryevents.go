// Package inventoryevents connects the inventory service to the bus: it
// consumes the saga events and the orchestrator's commands that inventory
// reacts to, each applied at most once through the inbox, in the transaction
// of its effect.
package inventoryevents

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/inventory"
)

// Group is inventory's consumer group: every instance of the service shares
// one durable subscription and one set of inbox records.
const Group = "inventory"

// The topics inventory consumes (docs/events.md).
const (
	TopicOrderCreated      = "orders.order.created"
	TopicOrderCancelled    = "orders.order.cancelled"
	TopicPaymentProcessed  = "payments.payment.processed"
	TopicPaymentFailed     = "payments.payment.failed"
	TopicDeliveryScheduled = "shipping.delivery.scheduled"
	TopicCommandReserve    = "inventory.command.reserve"
	TopicCommandCommit     = "inventory.command.commit"
	TopicCommandRelease    = "inventory.command.release"
)

// Reads is what inventory requires of each topic it consumes: the payload
// fields it cannot apply an event without. Every event is checked against
// it before its effect, and the contract tests check that each field is one
// its producer always sends.
var Reads = event.Reads{
	TopicOrderCreated:      {"order_id", "saga", "items"},
	TopicCommandReserve:    {"order_id", "saga", "items"},
	TopicOrderCancelled:    {"order_id", "saga"},
	TopicPaymentProcessed:  {"order_id", "saga"},
	TopicPaymentFailed:     {"order_id", "saga"},
	TopicDeliveryScheduled: {"order_id", "saga"},
	TopicCommandCommit:     {"order_id", "saga"},
	TopicCommandRelease:    {"order_id", "saga"},
}

// Topics returns every topic Consume subscribes to.
func Topics() []string {
	return []string{
		TopicOrderCreated, TopicOrderCancelled, TopicPaymentProcessed, TopicPaymentFailed,
		TopicDeliveryScheduled, TopicCommandReserve, TopicCommandCommit, TopicCommandRelease,
	}
}

// Consume subscribes inventory to its topics and applies each event to svc
// through in, the inbox of svc's database: the record that the event was
// applied commits with its effect and with the events that announce it. A
// delivery that keeps failing (a payload that cannot be read, an order id
// missing) ends in in's dead letters. Consume returns nil when ctx ends, and
// an error if the subscription cannot be set up or the broker connection is
// closed. It registers Group's handler with in, so it runs once per inbox.
func Consume(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, svc *inventory.Service, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := in.Handle(Group, Apply(svc, log))
	s := bus.Subscription{Group: Group, Topics: Topics(), DeadLetter: in.DeadLetters(Group)}
	if err := sub.Subscribe(ctx, s, h); err != nil {
		return fmt.Errorf("consuming inventory's events: %w", err)
	}
	return nil
}

// Apply returns the function that applies one event to svc, for an inbox.
// A refusal (short stock, a reservation released before it came) is an
// answer that svc has recorded and announced, so the event is done; an
// unreadable or invalid payload is an error, which the broker retries and
// then dead-letters.
func Apply(svc *inventory.Service, log *slog.Logger) inbox.Func {
	return func(ctx context.Context, e event.Event) error {
		err := apply(ctx, svc, e)
		if inventory.Refused(err) {
			log.InfoContext(ctx, "inventory refused", slog.String("type", e.Type), slog.String("event_id", e.ID),
				slog.String("order_id", e.Key), slog.String("reason", fail.MessageOf(err)))
			return nil
		}
		return err
	}
}

// The payloads inventory reads, with only the fields it reads.
type (
	orderRef struct {
		OrderID string `json:"order_id"`
		Saga    string `json:"saga"`
	}
	orderItems struct {
		OrderID string `json:"order_id"`
		Saga    string `json:"saga"`
		Items   []item `json:"items"`
	}
	item struct {
		ProductID string `json:"product_id"`
		Quantity  int64  `json:"quantity"`
	}
)

func (o orderItems) items() []inventory.Item {
	out := make([]inventory.Item, 0, len(o.Items))
	for _, it := range o.Items {
		out = append(out, inventory.Item{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return out
}

func apply(ctx context.Context, svc *inventory.Service, e event.Event) error {
	if err := Reads.Check(e); err != nil {
		return err
	}
	switch e.Topic {
	case TopicOrderCreated, TopicCommandReserve:
		var p orderItems
		if err := e.Decode(&p); err != nil {
			return err
		}
		saga := inventory.Saga(p.Saga)
		if e.Topic == TopicOrderCreated {
			return svc.OrderCreated(ctx, saga, p.OrderID, p.items())
		}
		_, _, err := svc.Reserve(ctx, saga, p.OrderID, p.items())
		return err
	}
	var p orderRef
	if err := e.Decode(&p); err != nil {
		return err
	}
	saga := inventory.Saga(p.Saga)
	switch e.Topic {
	case TopicPaymentProcessed:
		return svc.PaymentProcessed(ctx, saga, p.OrderID)
	case TopicPaymentFailed:
		return svc.PaymentFailed(ctx, saga, p.OrderID)
	case TopicDeliveryScheduled:
		return svc.DeliveryScheduled(ctx, saga, p.OrderID)
	case TopicOrderCancelled:
		return svc.OrderCancelled(ctx, saga, p.OrderID)
	case TopicCommandCommit:
		_, err := svc.Commit(ctx, saga, p.OrderID)
		return err
	case TopicCommandRelease:
		_, err := svc.Release(ctx, saga, p.OrderID)
		return err
	}
	return fmt.Errorf("inventory does not consume %s (%s %s)", e.Topic, e.Type, e.ID)
}
