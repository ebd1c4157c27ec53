package shipping

import (
	"context"
	"fmt"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Saga is the style of checkout an order runs under (docs/events.md). Every
// event about an order carries it, and it decides what shipping waits for
// before it schedules.
type Saga string

// The saga styles.
const (
	Orchestration Saga = "orchestration" // the orders service commands each step
	Choreography  Saga = "choreography"  // a chain: payment, then reservation, then shipment
	Parallel      Saga = "parallel"      // payment and reservation at once, shipment after both
)

// Validate refuses a saga that names no style, with fail.Invalid.
func (s Saga) Validate() error {
	switch s {
	case Orchestration, Choreography, Parallel:
		return nil
	}
	return fail.New(fail.Invalid, "saga must be orchestration, choreography or parallel")
}

// Refused reports whether err is a refusal: an answer the service recorded
// and announced with its outcome event (a schedule for a cancelled shipment),
// not a failure that trying again could fix. A consumer acknowledges a
// refused event; it retries any other error.
func Refused(err error) bool { return fail.Is(err, fail.Conflict) }

// Source names shipping as the publisher of its events.
const Source = "shipping"

// EventVersion is the version of every payload shipping publishes.
const EventVersion = 1

// The topics and types of the events shipping publishes.
const (
	TopicDeliveryScheduled = "shipping.delivery.scheduled"
	TopicShipmentRefused   = "shipping.shipment.refused"
	TopicShipmentCancelled = "shipping.shipment.cancelled"

	TypeDeliveryScheduled = "DeliveryScheduled"
	TypeShipmentRefused   = "ShipmentRefused"
	TypeShipmentCancelled = "ShipmentCancelled"
)

// DeliveryScheduledPayload is the payload of DeliveryScheduled.
type DeliveryScheduledPayload struct {
	OrderID    string `json:"order_id"`
	ShipmentID string `json:"shipment_id"`
	Saga       Saga   `json:"saga"`
}

// ShipmentRefusedPayload is the payload of ShipmentRefused.
type ShipmentRefusedPayload struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
	Saga    Saga   `json:"saga"`
}

// ShipmentCancelledPayload is the payload of ShipmentCancelled.
type ShipmentCancelledPayload struct {
	OrderID string `json:"order_id"`
	Saga    Saga   `json:"saga"`
}

func newEvent(topic, typ, orderID string, payload any) (event.Event, error) {
	return event.New(Source, topic, typ, EventVersion, orderID, payload)
}

// scheduleOutcome is the event that answers a schedule: DeliveryScheduled
// with the shipment, or ShipmentRefused for a refusal.
func scheduleOutcome(saga Saga, orderID string, sh Shipment, refusal error) (event.Event, error) {
	if refusal != nil {
		return newEvent(TopicShipmentRefused, TypeShipmentRefused, orderID,
			ShipmentRefusedPayload{OrderID: orderID, Reason: fail.MessageOf(refusal), Saga: saga})
	}
	return newEvent(TopicDeliveryScheduled, TypeDeliveryScheduled, orderID,
		DeliveryScheduledPayload{OrderID: orderID, ShipmentID: sh.ID, Saga: saga})
}

// Intent is what shipping has seen of an order in the two event-driven
// styles, in whichever order the events arrived: OrderCreated (with the user
// and address), ItemsReserved and PaymentProcessed.
type Intent struct {
	OrderID  string
	Saga     Saga
	UserID   string  // from OrderCreated; empty until then
	Address  Address // from OrderCreated; zero until then
	Created  bool
	Reserved bool
	Paid     bool
}

// Ready reports whether the intent holds all that its saga waits for before
// shipping schedules: the order and its reservation under choreography (the
// payment came before the reservation), and the payment as well under
// parallel (it runs beside the reservation). Orchestration waits for the
// command, never for an intent.
func (in Intent) Ready() bool {
	switch in.Saga {
	case Choreography:
		return in.Created && in.Reserved
	case Parallel:
		return in.Created && in.Reserved && in.Paid
	}
	return false
}

// OrderCreated reacts to a new order in the two event-driven styles: it
// remembers who the shipment is for and where it goes, and schedules if the
// rest of what the saga waits for came first.
func (s *Service) OrderCreated(ctx context.Context, saga Saga, orderID, userID string, addr Address) error {
	if err := validateOrder(saga, orderID); err != nil || saga == Orchestration {
		return err
	}
	if err := validateID("user_id", userID); err != nil {
		return err
	}
	addr, err := NormalizeAddress(addr)
	if err != nil {
		return err
	}
	return s.note(ctx, Intent{OrderID: orderID, Saga: saga, UserID: userID, Address: addr, Created: true})
}

// ItemsReserved reacts to the order's stock being held, in the two
// event-driven styles.
func (s *Service) ItemsReserved(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil || saga == Orchestration {
		return err
	}
	return s.note(ctx, Intent{OrderID: orderID, Saga: saga, Reserved: true})
}

// PaymentProcessed reacts to the order's payment, which only the parallel
// style waits for here: under choreography it came before the reservation.
func (s *Service) PaymentProcessed(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil || saga != Parallel {
		return err
	}
	return s.note(ctx, Intent{OrderID: orderID, Saga: saga, Paid: true})
}

// OrderCancelled reacts to a cancelled order, in every style: the shipment
// is cancelled, or a tombstone refuses the schedule that is still on its way.
func (s *Service) OrderCancelled(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil {
		return err
	}
	return s.react(ctx, func(ctx context.Context) error {
		_, err := s.cancel(ctx, saga, orderID)
		return err
	})
}

// note records part of an order's intent and schedules if the intent is then
// complete. A refusal is an answer, announced, and returns nil.
func (s *Service) note(ctx context.Context, in Intent) error {
	return s.react(ctx, func(ctx context.Context) error {
		got, err := s.store.MergeIntent(ctx, in, s.now())
		if err != nil {
			return err
		}
		if !got.Ready() {
			return nil
		}
		_, _, err = s.schedule(ctx, got.Saga, got.OrderID, got.UserID, got.Address)
		return err
	})
}

// unit runs fn as one unit of work that also commits when fn ends in a
// refusal: a refusal is recorded and announced like a success, and returned
// to the caller only once it is committed. Any other error undoes fn's work.
func (s *Service) unit(ctx context.Context, fn func(ctx context.Context) error) error {
	var refusal error
	err := s.store.Atomic(ctx, func(ctx context.Context) error {
		err := fn(ctx)
		if Refused(err) {
			refusal = err
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return refusal
}

// react is unit for a reaction to an event, which a refusal answers.
func (s *Service) react(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := s.unit(ctx, fn); err != nil && !Refused(err) {
		return err
	}
	return nil
}

// schedule schedules and announces the outcome, in the unit of ctx. It
// returns the refusal, if any, after announcing it.
func (s *Service) schedule(ctx context.Context, saga Saga, orderID, userID string, addr Address) (Shipment, bool, error) {
	sh, created, err := s.record(ctx, orderID, userID, addr)
	if err != nil && !Refused(err) {
		return Shipment{}, false, err
	}
	e, perr := scheduleOutcome(saga, orderID, sh, err)
	if perr == nil {
		perr = s.store.Publish(ctx, e)
	}
	if perr != nil {
		return Shipment{}, false, fmt.Errorf("announcing the shipment of order %s: %w", orderID, perr)
	}
	return sh, created, err
}

// cancel cancels and announces ShipmentCancelled, in the unit of ctx.
func (s *Service) cancel(ctx context.Context, saga Saga, orderID string) (Shipment, error) {
	sh, err := s.callOff(ctx, orderID)
	if err != nil {
		return Shipment{}, err
	}
	e, err := newEvent(TopicShipmentCancelled, TypeShipmentCancelled, orderID,
		ShipmentCancelledPayload{OrderID: orderID, Saga: saga})
	if err == nil {
		err = s.store.Publish(ctx, e)
	}
	if err != nil {
		return Shipment{}, fmt.Errorf("announcing the cancelled shipment of order %s: %w", orderID, err)
	}
	return sh, nil
}

func validateOrder(saga Saga, orderID string) error {
	if err := saga.Validate(); err != nil {
		return err
	}
	return validateID("order_id", orderID)
}
