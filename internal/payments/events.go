package payments

import (
	"fmt"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Saga is the style of checkout an order runs under (docs/events.md). It
// decides what payments reacts to, and payments echoes it in every event it
// publishes about the order, so that each participant reacts as that style
// says.
type Saga string

// The saga styles.
const (
	SagaOrchestration Saga = "orchestration"
	SagaChoreography  Saga = "choreography"
	SagaParallel      Saga = "parallel"
)

// ParseSaga returns the saga style s names; fail.Invalid if it names none.
// Events must name their style: there is no default on the bus.
func ParseSaga(s string) (Saga, error) {
	saga := Saga(s)
	if saga == "" {
		return "", fail.New(fail.Invalid, "saga is required")
	}
	if err := saga.validate(); err != nil {
		return "", err
	}
	return saga, nil
}

// validate accepts the styles and the empty Saga, which stands for
// orchestration in requests that carry no style.
func (s Saga) validate() error {
	switch s {
	case "", SagaOrchestration, SagaChoreography, SagaParallel:
		return nil
	}
	return fail.New(fail.Invalid, "saga must be %s, %s or %s", SagaOrchestration, SagaChoreography, SagaParallel)
}

func (s Saga) orDefault() Saga {
	if s == "" {
		return SagaOrchestration
	}
	return s
}

// eventDriven reports whether, under this style, payments acts on what the
// other services announce rather than on the orchestrator's commands.
func (s Saga) eventDriven() bool { return s == SagaChoreography || s == SagaParallel }

// Source names payments as the publisher of its events.
const Source = "payments"

// The events payments publishes: their types and the topics they go to.
const (
	TypePaymentProcessed = "PaymentProcessed"
	TypePaymentFailed    = "PaymentFailed"
	TypePaymentRefunded  = "PaymentRefunded"

	TopicPaymentProcessed = "payments.payment.processed"
	TopicPaymentFailed    = "payments.payment.failed"
	TopicPaymentRefunded  = "payments.payment.refunded"
)

// PaymentProcessed is the payload (v1) of an order's captured charge.
type PaymentProcessed struct {
	OrderID     string `json:"order_id"`
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Saga        Saga   `json:"saga"`
}

// PaymentFailed is the payload (v1) of a charge that took no money: declined,
// to an unknown card, or refused because the order was called off first.
type PaymentFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
	Saga    Saga   `json:"saga"`
}

// PaymentRefunded is the payload (v1) of a refund's outcome. Status is what
// the refund left: REFUNDED (money given back), DECLINED (none was taken) or
// VOIDED (nothing was charged, and nothing will be).
type PaymentRefunded struct {
	OrderID     string `json:"order_id"`
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
	Status      Status `json:"status"`
	Saga        Saga   `json:"saga"`
}

// chargeOutcome is the event that tells how a charge for p's order went: the
// payment was taken (PaymentProcessed), it was not (PaymentFailed), or it has
// been given back since (PaymentRefunded).
func chargeOutcome(p Payment, saga Saga) (event.Event, error) {
	switch p.Status {
	case StatusCaptured:
		return newEvent(TopicPaymentProcessed, TypePaymentProcessed, p.OrderID, PaymentProcessed{
			OrderID: p.OrderID, PaymentID: p.ID, AmountCents: p.AmountCents, Currency: p.Currency, Saga: saga,
		})
	case StatusDeclined:
		return newEvent(TopicPaymentFailed, TypePaymentFailed, p.OrderID, PaymentFailed{
			OrderID: p.OrderID, Reason: p.DeclineReason, Saga: saga,
		})
	case StatusVoided:
		return newEvent(TopicPaymentFailed, TypePaymentFailed, p.OrderID, PaymentFailed{
			OrderID: p.OrderID, Reason: ErrCalledOff.Error(), Saga: saga,
		})
	case StatusRefunded:
		return refundOutcome(p, saga)
	}
	return event.Event{}, fmt.Errorf("announcing payment %s: unknown status %q", p.ID, p.Status)
}

// refundOutcome is the event that tells what a refund left of p.
func refundOutcome(p Payment, saga Saga) (event.Event, error) {
	return newEvent(TopicPaymentRefunded, TypePaymentRefunded, p.OrderID, PaymentRefunded{
		OrderID: p.OrderID, PaymentID: p.ID, AmountCents: p.AmountCents, Status: p.Status, Saga: saga,
	})
}

func newEvent(topic, typ, orderID string, payload any) (event.Event, error) {
	e, err := event.New(Source, topic, typ, 1, orderID, payload)
	if err != nil {
		return event.Event{}, fmt.Errorf("building %s of order %s: %w", typ, orderID, err)
	}
	return e, nil
}
