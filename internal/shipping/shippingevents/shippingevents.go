// Package shippingevents connects the shipping service to the bus: it
// consumes the saga events and the orchestrator's commands that shipping
// reacts to, each applied at most once through the inbox, in the transaction
// of its effect.
package shippingevents

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/shipping"
)

// Group is shipping's consumer group: every instance of the service shares
// one durable subscription and one set of inbox records.
const Group = "shipping"

// The topics shipping consumes (docs/events.md).
const (
	TopicOrderCreated     = "orders.order.created"
	TopicOrderCancelled   = "orders.order.cancelled"
	TopicItemsReserved    = "inventory.items.reserved"
	TopicPaymentProcessed = "payments.payment.processed"
	TopicCommandSchedule  = "shipping.command.schedule"
	TopicCommandCancel    = "shipping.command.cancel"
)

// Reads is what shipping requires of each topic it consumes: the payload
// fields it cannot apply an event without. Every event is checked against
// it before its effect, and the contract tests check that each field is one
// its producer always sends.
var Reads = event.Reads{
	TopicOrderCreated:     {"order_id", "saga", "user_id", "shipping_address"},
	TopicCommandSchedule:  {"order_id", "saga", "user_id", "shipping_address"},
	TopicOrderCancelled:   {"order_id", "saga"},
	TopicItemsReserved:    {"order_id", "saga"},
	TopicPaymentProcessed: {"order_id", "saga"},
	TopicCommandCancel:    {"order_id", "saga"},
}

// Topics returns every topic Consume subscribes to.
func Topics() []string {
	return []string{
		TopicOrderCreated, TopicOrderCancelled, TopicItemsReserved, TopicPaymentProcessed,
		TopicCommandSchedule, TopicCommandCancel,
	}
}

// Consume subscribes shipping to its topics and applies each event to svc
// through in, the inbox of svc's database: the record that the event was
// applied commits with its effect and with the events that announce it. A
// delivery that keeps failing (a payload that cannot be read, an order id or
// address missing) ends in in's dead letters. Consume returns nil when ctx
// ends, and an error if the subscription cannot be set up or the broker
// connection is closed. It registers Group's handler with in, so it runs
// once per inbox.
func Consume(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, svc *shipping.Service, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := in.Handle(Group, Apply(svc, log))
	s := bus.Subscription{Group: Group, Topics: Topics(), DeadLetter: in.DeadLetters(Group)}
	if err := sub.Subscribe(ctx, s, h); err != nil {
		return fmt.Errorf("consuming shipping's events: %w", err)
	}
	return nil
}

// Apply returns the function that applies one event to svc, for an inbox.
// A refusal (a schedule for a cancelled shipment) is an answer that svc has
// recorded and announced, so the event is done; an unreadable or invalid
// payload is an error, which the broker retries and then dead-letters.
func Apply(svc *shipping.Service, log *slog.Logger) inbox.Func {
	return func(ctx context.Context, e event.Event) error {
		err := apply(ctx, svc, e)
		if shipping.Refused(err) {
			log.InfoContext(ctx, "shipping refused", slog.String("type", e.Type), slog.String("event_id", e.ID),
				slog.String("order_id", e.Key), slog.String("reason", fail.MessageOf(err)))
			return nil
		}
		return err
	}
}

// The payloads shipping reads, with only the fields it reads.
type (
	orderRef struct {
		OrderID string `json:"order_id"`
		Saga    string `json:"saga"`
	}
	// delivery is OrderCreated and shipping.command.schedule: both carry
	// the user and the address the order ships to.
	delivery struct {
		OrderID string  `json:"order_id"`
		Saga    string  `json:"saga"`
		UserID  string  `json:"user_id"`
		Address address `json:"shipping_address"`
	}
	address struct {
		Name       string `json:"name"`
		Line1      string `json:"line1"`
		City       string `json:"city"`
		PostalCode string `json:"postal_code"`
		Country    string `json:"country"`
	}
)

func (a address) domain() shipping.Address {
	return shipping.Address{Name: a.Name, Line1: a.Line1, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
}

func apply(ctx context.Context, svc *shipping.Service, e event.Event) error {
	if err := Reads.Check(e); err != nil {
		return err
	}
	switch e.Topic {
	case TopicOrderCreated, TopicCommandSchedule:
		var p delivery
		if err := e.Decode(&p); err != nil {
			return err
		}
		saga := shipping.Saga(p.Saga)
		if e.Topic == TopicOrderCreated {
			return svc.OrderCreated(ctx, saga, p.OrderID, p.UserID, p.Address.domain())
		}
		_, _, err := svc.Schedule(ctx, saga, p.OrderID, p.UserID, p.Address.domain())
		return err
	}
	var p orderRef
	if err := e.Decode(&p); err != nil {
		return err
	}
	saga := shipping.Saga(p.Saga)
	switch e.Topic {
	case TopicItemsReserved:
		return svc.ItemsReserved(ctx, saga, p.OrderID)
	case TopicPaymentProcessed:
		return svc.PaymentProcessed(ctx, saga, p.OrderID)
	case TopicOrderCancelled:
		return svc.OrderCancelled(ctx, saga, p.OrderID)
	case TopicCommandCancel:
		_, err := svc.Cancel(ctx, saga, p.OrderID)
		return err
	}
	return fmt.Errorf("shipping does not consume %s (%s %s)", e.Topic, e.Type, e.ID)
}
