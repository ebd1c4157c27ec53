package inventory

import (
	"context"
	"fmt"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Saga is the style of checkout an order runs under (docs/events.md). Every
// event about an order carries it, and it decides how inventory reacts.
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
// and announced with its outcome event (a shortage, a released reservation,
// nothing to commit), not a failure that trying again could fix. A consumer
// acknowledges a refused event; it retries any other error.
func Refused(err error) bool {
	return fail.Is(err, fail.Conflict) || fail.Is(err, fail.NotFound)
}

// Source names inventory as the publisher of its events.
const Source = "inventory"

// EventVersion is the version of every payload inventory publishes.
const EventVersion = 1

// The topics and types of the events inventory publishes.
const (
	TopicItemsReserved     = "inventory.items.reserved"
	TopicReservationFailed = "inventory.reservation.failed"
	TopicItemsReleased     = "inventory.items.released"
	TopicItemsCommitted    = "inventory.items.committed"
	TopicCommitFailed      = "inventory.commit.failed"

	TypeItemsReserved     = "ItemsReserved"
	TypeReservationFailed = "ReservationFailed"
	TypeItemsReleased     = "ItemsReleased"
	TypeItemsCommitted    = "ItemsCommitted"
	TypeCommitFailed      = "CommitFailed"
)

// ItemsReservedPayload is the payload of ItemsReserved: the items the order
// holds, merged by product.
type ItemsReservedPayload struct {
	OrderID string        `json:"order_id"`
	Items   []ItemPayload `json:"items"`
	Saga    Saga          `json:"saga"`
}

// ItemPayload is one line of ItemsReservedPayload.
type ItemPayload struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// FailurePayload is the payload of ReservationFailed and CommitFailed.
type FailurePayload struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
	Saga    Saga   `json:"saga"`
}

// OrderPayload is the payload of ItemsReleased and ItemsCommitted.
type OrderPayload struct {
	OrderID string `json:"order_id"`
	Saga    Saga   `json:"saga"`
}

func newEvent(topic, typ, orderID string, payload any) (event.Event, error) {
	return event.New(Source, topic, typ, EventVersion, orderID, payload)
}

// reserveOutcome is the event that answers a reserve: ItemsReserved for a
// reservation that holds (or sold) its items, ReservationFailed for a
// refusal.
func reserveOutcome(saga Saga, orderID string, r Reservation, refusal error) (event.Event, error) {
	if refusal != nil {
		return newEvent(TopicReservationFailed, TypeReservationFailed, orderID,
			FailurePayload{OrderID: orderID, Reason: fail.MessageOf(refusal), Saga: saga})
	}
	items := make([]ItemPayload, 0, len(r.Items))
	for _, it := range r.Items {
		items = append(items, ItemPayload{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return newEvent(TopicItemsReserved, TypeItemsReserved, orderID,
		ItemsReservedPayload{OrderID: orderID, Items: items, Saga: saga})
}

// commitOutcome is the event that answers a commit.
func commitOutcome(saga Saga, orderID string, refusal error) (event.Event, error) {
	if refusal != nil {
		return newEvent(TopicCommitFailed, TypeCommitFailed, orderID,
			FailurePayload{OrderID: orderID, Reason: fail.MessageOf(refusal), Saga: saga})
	}
	return newEvent(TopicItemsCommitted, TypeItemsCommitted, orderID, OrderPayload{OrderID: orderID, Saga: saga})
}

// Intent is what inventory has seen of a choreographed order before it can
// reserve: the items, from OrderCreated, and whether PaymentProcessed came,
// in whichever order the two arrived.
type Intent struct {
	OrderID string
	Saga    Saga
	Items   []Item // nil until the order's creation is seen
	Paid    bool
}

// Ready reports whether the intent holds all that a choreographed
// reservation waits for: the items and the payment.
func (in Intent) Ready() bool { return len(in.Items) > 0 && in.Paid }

// OrderCreated reacts to a new order: under parallel it reserves at once;
// under choreography it remembers the items and reserves if the payment has
// been seen already; under orchestration it waits for the command. A refusal
// is an answer, announced, and returns nil.
func (s *Service) OrderCreated(ctx context.Context, saga Saga, orderID string, items []Item) error {
	if err := validateOrder(saga, orderID); err != nil || saga == Orchestration {
		return err
	}
	merged, err := MergeItems(items)
	if err != nil {
		return err
	}
	return s.react(ctx, func(ctx context.Context) error {
		if saga == Parallel {
			_, _, err := s.reserve(ctx, saga, orderID, merged)
			return err
		}
		in, err := s.store.MergeIntent(ctx, Intent{OrderID: orderID, Saga: saga, Items: merged}, s.now())
		if err != nil {
			return err
		}
		return s.reserveIfReady(ctx, in)
	})
}

// PaymentProcessed reacts to a captured payment: under choreography it
// reserves if the order's items are known, and otherwise remembers that the
// order was paid. Other styles do not wait for it here.
func (s *Service) PaymentProcessed(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil || saga != Choreography {
		return err
	}
	return s.react(ctx, func(ctx context.Context) error {
		in, err := s.store.MergeIntent(ctx, Intent{OrderID: orderID, Saga: saga, Paid: true}, s.now())
		if err != nil {
			return err
		}
		return s.reserveIfReady(ctx, in)
	})
}

// PaymentFailed reacts to a declined payment in the two event-driven styles:
// the order's stock is released, or, if it reserved none, a tombstone makes a
// late reservation fail. Under orchestration the orchestrator decides.
func (s *Service) PaymentFailed(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil || saga == Orchestration {
		return err
	}
	return s.react(ctx, func(ctx context.Context) error {
		_, err := s.release(ctx, saga, orderID)
		return err
	})
}

// DeliveryScheduled reacts to a scheduled shipment in the two event-driven
// styles: the reserved stock is sold.
func (s *Service) DeliveryScheduled(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil || saga == Orchestration {
		return err
	}
	return s.react(ctx, func(ctx context.Context) error {
		_, err := s.commit(ctx, saga, orderID)
		return err
	})
}

// OrderCancelled reacts to a cancelled order, in every style: whatever the
// order holds is released, and a tombstone refuses a reservation that is
// still on its way.
func (s *Service) OrderCancelled(ctx context.Context, saga Saga, orderID string) error {
	if err := validateOrder(saga, orderID); err != nil {
		return err
	}
	return s.react(ctx, func(ctx context.Context) error {
		_, err := s.release(ctx, saga, orderID)
		return err
	})
}

func (s *Service) reserveIfReady(ctx context.Context, in Intent) error {
	if !in.Ready() {
		return nil
	}
	_, _, err := s.reserve(ctx, in.Saga, in.OrderID, in.Items)
	return err
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

// reserve reserves and announces the outcome, in the unit of ctx. It returns
// the refusal, if any, after announcing it.
func (s *Service) reserve(ctx context.Context, saga Saga, orderID string, items []Item) (Reservation, bool, error) {
	now := s.now()
	r, created, err := s.store.Reserve(ctx, Reservation{OrderID: orderID, Status: Reserved, Items: items, CreatedAt: now, UpdatedAt: now})
	if err != nil && !Refused(err) {
		return Reservation{}, false, err
	}
	e, perr := reserveOutcome(saga, orderID, r, err)
	if perr == nil {
		perr = s.store.Publish(ctx, e)
	}
	if perr != nil {
		return Reservation{}, false, fmt.Errorf("announcing the reservation of order %s: %w", orderID, perr)
	}
	return r, created, err
}

// commit commits and announces the outcome, in the unit of ctx.
func (s *Service) commit(ctx context.Context, saga Saga, orderID string) (Reservation, error) {
	r, err := s.store.Commit(ctx, orderID, s.now())
	if err != nil && !Refused(err) {
		return Reservation{}, err
	}
	e, perr := commitOutcome(saga, orderID, err)
	if perr == nil {
		perr = s.store.Publish(ctx, e)
	}
	if perr != nil {
		return Reservation{}, fmt.Errorf("announcing the commit of order %s: %w", orderID, perr)
	}
	return r, err
}

// release releases and announces ItemsReleased, in the unit of ctx.
func (s *Service) release(ctx context.Context, saga Saga, orderID string) (Reservation, error) {
	r, err := s.store.Release(ctx, orderID, s.now())
	if err != nil {
		return Reservation{}, err
	}
	e, err := newEvent(TopicItemsReleased, TypeItemsReleased, orderID, OrderPayload{OrderID: orderID, Saga: saga})
	if err == nil {
		err = s.store.Publish(ctx, e)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("announcing the release of order %s: %w", orderID, err)
	}
	return r, nil
}

func validateOrder(saga Saga, orderID string) error {
	if err := saga.Validate(); err != nil {
		return err
	}
	return ValidateID("order_id", orderID)
}
