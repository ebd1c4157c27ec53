package payments

import (
	"context"
	"errors"
)

// The reactions below are how payments takes part in the checkout saga
// (docs/events.md): one per message it consumes. Each is idempotent by order:
// a repeat finds the charge or refund made and announces its outcome again,
// so a participant that missed the first answer gets one. They return an
// error only for a message that cannot be acted on (an invalid payload, a
// conflicting amount) or a provider that cannot answer, so that the message
// is retried and, in the end, dead-lettered rather than half-applied.

// OrderPlaced reacts to OrderCreated. In the event-driven styles (parallel
// and choreography) payments charges the order as soon as it is placed;
// under orchestration it waits for the orchestrator's command and does
// nothing.
func (s *Service) OrderPlaced(ctx context.Context, req ChargeRequest) error {
	if err := checkMessage(req.OrderID, req.Saga); err != nil {
		return err
	}
	if !req.Saga.eventDriven() {
		return nil
	}
	return s.chargeAndAnswer(ctx, req)
}

// ChargeCommanded reacts to the orchestrator's payments.command.charge:
// charge, and answer with the outcome every time.
func (s *Service) ChargeCommanded(ctx context.Context, req ChargeRequest) error {
	if err := checkMessage(req.OrderID, req.Saga); err != nil {
		return err
	}
	return s.chargeAndAnswer(ctx, req)
}

// chargeAndAnswer charges and counts a charge refused because the order was
// called off as answered: its PaymentFailed has been announced, and must be
// committed with the message rather than rolled back with an error.
func (s *Service) chargeAndAnswer(ctx context.Context, req ChargeRequest) error {
	_, _, err := s.Charge(ctx, req)
	if errors.Is(err, ErrCalledOff) {
		return nil
	}
	return err
}

// InventoryFailed reacts to ReservationFailed and CommitFailed. In the
// event-driven styles payments refunds the order (voiding it if nothing was
// charged yet, so that a late charge is refused); under orchestration the
// orchestrator decides on compensations, and payments does nothing.
func (s *Service) InventoryFailed(ctx context.Context, orderID string, saga Saga) error {
	if err := checkMessage(orderID, saga); err != nil {
		return err
	}
	if !saga.eventDriven() {
		return nil
	}
	_, err := s.Refund(ctx, orderID, saga)
	return err
}

// OrderCancelled reacts to OrderCancelled, in every style: a cancelled order
// holds no money. Under orchestration the orchestrator's refund command has
// normally come first, and this refund finds the work done.
func (s *Service) OrderCancelled(ctx context.Context, orderID string, saga Saga) error {
	if err := checkMessage(orderID, saga); err != nil {
		return err
	}
	_, err := s.Refund(ctx, orderID, saga)
	return err
}

// RefundCommanded reacts to the orchestrator's payments.command.refund:
// refund, and answer with the outcome every time.
func (s *Service) RefundCommanded(ctx context.Context, orderID string, saga Saga) error {
	if err := checkMessage(orderID, saga); err != nil {
		return err
	}
	_, err := s.Refund(ctx, orderID, saga)
	return err
}

// checkMessage checks what every message payments consumes must carry: the
// order it is about and the saga style, which has no default on the bus.
func checkMessage(orderID string, saga Saga) error {
	if err := validateID("order_id", orderID); err != nil {
		return err
	}
	_, err := ParseSaga(string(saga))
	return err
}
