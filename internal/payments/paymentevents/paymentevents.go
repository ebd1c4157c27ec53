// Package paymentevents connects the payments service to the bus: it
// consumes the events and commands payments takes part in the checkout saga
// by, and applies each at most once through the service's inbox, in the
// same transaction as its effect and the outcome event it publishes.
package paymentevents

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/payments"
)

// Group is the consumer group of the payments service: every instance of
// payments shares its deliveries, and its inbox records are kept under it.
const Group = "payments"

// The topics payments consumes (docs/events.md).
const (
	TopicOrderCreated      = "orders.order.created"
	TopicOrderCancelled    = "orders.order.cancelled"
	TopicReservationFailed = "inventory.reservation.failed"
	TopicCommitFailed      = "inventory.commit.failed"
	TopicChargeCommand     = "payments.command.charge"
	TopicRefundCommand     = "payments.command.refund"
)

// Reads is what payments requires of each topic it consumes: the payload
// fields it cannot apply an event without. Every event is checked against
// it before its effect, and the contract tests check that each field is one
// its producer always sends.
var Reads = event.Reads{
	TopicOrderCreated:      {"order_id", "user_id", "saga", "total_cents", "currency", "card_token"},
	TopicChargeCommand:     {"order_id", "user_id", "saga", "amount_cents", "currency", "card_token"},
	TopicOrderCancelled:    {"order_id", "saga"},
	TopicReservationFailed: {"order_id", "saga"},
	TopicCommitFailed:      {"order_id", "saga"},
	TopicRefundCommand:     {"order_id", "saga"},
}

// Topics returns all the topics payments subscribes to, in one subscription.
func Topics() []string {
	return []string{
		TopicOrderCreated, TopicOrderCancelled, TopicReservationFailed, TopicCommitFailed,
		TopicChargeCommand, TopicRefundCommand,
	}
}

// Consume subscribes the payments service to Topics() as Group and applies
// each delivery through in, the inbox of the service's database (the one
// svc's store writes to, so that the inbox record, the effect and the outcome
// event commit together). A delivery the broker gives up on goes to in's dead
// letters, from which an admin can replay it. It registers the group's
// handler with in, so it runs once per inbox. If the subscription fails (the
// broker connection was closed), it subscribes again after a pause; it
// returns nil when ctx ends.
func Consume(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, svc *payments.Service, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := bus.Subscription{Group: Group, Topics: Topics(), DeadLetter: in.DeadLetters(Group)}
	h := in.Handle(Group, apply(svc))
	pause := time.Second
	for {
		err := sub.Subscribe(ctx, s, h)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("subscription ended by itself")
		}
		log.WarnContext(ctx, "payments subscription failed; subscribing again", slog.Any("err", err), slog.Duration("after", pause))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// apply returns the function that applies one event to svc: it checks the
// event carries what Reads requires, decodes the fields payments reads and
// hands them to the reaction the topic calls for. An event it cannot read,
// or whose values are invalid, is an error, so that it is retried and, in
// the end, dead-lettered rather than half-applied.
func apply(svc *payments.Service) inbox.Func {
	return func(ctx context.Context, e event.Event) error {
		if err := Reads.Check(e); err != nil {
			return err
		}
		switch e.Topic {
		case TopicOrderCreated:
			var p orderCreated
			if err := e.Decode(&p); err != nil {
				return err
			}
			return svc.OrderPlaced(ctx, p.charge())
		case TopicChargeCommand:
			var p chargeCommand
			if err := e.Decode(&p); err != nil {
				return err
			}
			return svc.ChargeCommanded(ctx, p.charge())
		case TopicReservationFailed, TopicCommitFailed:
			var p aboutOrder
			if err := e.Decode(&p); err != nil {
				return err
			}
			return svc.InventoryFailed(ctx, p.OrderID, p.Saga)
		case TopicOrderCancelled:
			var p aboutOrder
			if err := e.Decode(&p); err != nil {
				return err
			}
			return svc.OrderCancelled(ctx, p.OrderID, p.Saga)
		case TopicRefundCommand:
			var p aboutOrder
			if err := e.Decode(&p); err != nil {
				return err
			}
			return svc.RefundCommanded(ctx, p.OrderID, p.Saga)
		}
		return fmt.Errorf("payments does not consume topic %q (event %s %s)", e.Topic, e.Type, e.ID)
	}
}

// The payloads as payments reads them: only the fields it uses, so that
// their producers may add others. A charge asked for by an event declines
// when the card provider cannot answer after its bounded tries: the saga
// then compensates and the order ends, rather than the event waiting in
// the dead letters for a replay.

// orderCreated is what payments reads of OrderCreated.
type orderCreated struct {
	OrderID    string        `json:"order_id"`
	UserID     string        `json:"user_id"`
	Saga       payments.Saga `json:"saga"`
	TotalCents int64         `json:"total_cents"`
	Currency   string        `json:"currency"`
	CardToken  string        `json:"card_token"`
}

func (p orderCreated) charge() payments.ChargeRequest {
	return payments.ChargeRequest{
		OrderID: p.OrderID, UserID: p.UserID, AmountCents: p.TotalCents, Currency: p.Currency,
		CardToken: p.CardToken, Saga: p.Saga, DeclineWhenUnavailable: true,
	}
}

// chargeCommand is what payments reads of payments.command.charge.
type chargeCommand struct {
	OrderID     string        `json:"order_id"`
	UserID      string        `json:"user_id"`
	AmountCents int64         `json:"amount_cents"`
	Currency    string        `json:"currency"`
	CardToken   string        `json:"card_token"`
	Saga        payments.Saga `json:"saga"`
}

func (p chargeCommand) charge() payments.ChargeRequest {
	return payments.ChargeRequest{
		OrderID: p.OrderID, UserID: p.UserID, AmountCents: p.AmountCents, Currency: p.Currency,
		CardToken: p.CardToken, Saga: p.Saga, DeclineWhenUnavailable: true,
	}
}

// aboutOrder is what payments reads of the events and commands that ask
// for a refund: which order, and in which style.
type aboutOrder struct {
	OrderID string        `json:"order_id"`
	Saga    payments.Saga `json:"saga"`
}
