package orders

import (
	"time"

	"github.com/microshop/microshop/internal/event"
)

// Source is the name orders publishes its events under.
const Source = "orders"

// Topics orders publishes on. The payload types below are what orders puts
// in them; consumers declare for themselves what they read.
const (
	TopicOrderCreated   = "orders.order.created"
	TopicOrderCompleted = "orders.order.completed"
	TopicOrderCancelled = "orders.order.cancelled"
	// TopicOrderImported carries the historical orders taken over from the
	// legacy monolith. Only orders' own read model consumes it: no saga
	// runs for them, so payments, inventory and shipping must never hear
	// of them.
	TopicOrderImported = "orders.order.imported"
)

// Command topics: what the orchestrator asks each participant to do.
const (
	CmdCharge   = "payments.command.charge"
	CmdRefund   = "payments.command.refund"
	CmdReserve  = "inventory.command.reserve"
	CmdCommit   = "inventory.command.commit"
	CmdRelease  = "inventory.command.release"
	CmdSchedule = "shipping.command.schedule"
	CmdUnship   = "shipping.command.cancel"
)

// OrderCreated is published when an order is accepted.
type OrderCreated struct {
	OrderID    string    `json:"order_id"`
	UserID     string    `json:"user_id"`
	Saga       string    `json:"saga"`
	Items      []Item    `json:"items"`
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	CardToken  string    `json:"card_token"`
	Address    Address   `json:"shipping_address"`
	CreatedAt  time.Time `json:"created_at"`
}

// OrderEnded is the payload of OrderCompleted and OrderCancelled.
type OrderEnded struct {
	OrderID   string    `json:"order_id"`
	UserID    string    `json:"user_id"`
	Saga      string    `json:"saga"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// OrderImported is published when a historical order is imported from the
// legacy monolith: the whole order as the listings show it, ended, so that
// the read model is rebuilt with it from orders' own events. The import
// applies it to the read model itself, at once; its delivery later changes
// nothing.
type OrderImported struct {
	OrderID    string    `json:"order_id"`
	UserID     string    `json:"user_id"`
	Status     Status    `json:"status"`
	Saga       string    `json:"saga"`
	Origin     string    `json:"origin"`
	Items      []Item    `json:"items"`
	TotalCents int64     `json:"total_cents"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// command is the payload of every orchestrator command; each participant
// reads the fields its command needs.
type command struct {
	OrderID     string   `json:"order_id"`
	Saga        string   `json:"saga"`
	UserID      string   `json:"user_id,omitempty"`
	AmountCents int64    `json:"amount_cents,omitempty"`
	Currency    string   `json:"currency,omitempty"`
	CardToken   string   `json:"card_token,omitempty"`
	Items       []line   `json:"items,omitempty"`
	Address     *Address `json:"shipping_address,omitempty"`
}

type line struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

func orderCreated(o Order, cardToken string) (event.Event, error) {
	return event.New(Source, TopicOrderCreated, "OrderCreated", 1, o.ID, OrderCreated{
		OrderID: o.ID, UserID: o.UserID, Saga: o.Saga, Items: o.Items, TotalCents: o.TotalCents,
		Currency: o.Currency, CardToken: cardToken, Address: o.Address, CreatedAt: o.CreatedAt,
	})
}

// orderImported is the OrderImported event of a historical order, and its
// payload, which the import projects at once.
func orderImported(o Order) (OrderImported, event.Event, error) {
	p := OrderImported{
		OrderID: o.ID, UserID: o.UserID, Status: o.Status, Saga: o.Saga, Origin: o.Origin, Items: o.Items,
		TotalCents: o.TotalCents, Currency: o.Currency, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
	e, err := event.New(Source, TopicOrderImported, "OrderImported", 1, o.ID, p)
	return p, e, err
}

func orderEnded(o Order, final Status, reason string, at time.Time) (event.Event, error) {
	topic, typ := TopicOrderCompleted, "OrderCompleted"
	if final == Cancelled {
		topic, typ = TopicOrderCancelled, "OrderCancelled"
	}
	return event.New(Source, topic, typ, 1, o.ID, OrderEnded{OrderID: o.ID, UserID: o.UserID, Saga: o.Saga, Reason: reason, UpdatedAt: at})
}

// commandFor is the command that runs step for order o.
func commandFor(step Step, o Order, cardToken string) (event.Event, error) {
	c := command{OrderID: o.ID, Saga: o.Saga}
	var topic string
	switch step {
	case StepCharge:
		topic = CmdCharge
		c.UserID, c.AmountCents, c.Currency, c.CardToken = o.UserID, o.TotalCents, o.Currency, cardToken
	case StepRefund:
		topic = CmdRefund
	case StepReserve:
		topic = CmdReserve
		for _, it := range o.Items {
			c.Items = append(c.Items, line{ProductID: it.ProductID, Quantity: it.Quantity})
		}
	case StepCommit:
		topic = CmdCommit
	case StepRelease:
		topic = CmdRelease
	case StepShip:
		topic = CmdSchedule
		c.UserID = o.UserID
		addr := o.Address
		c.Address = &addr
	case StepUnship:
		topic = CmdUnship
	}
	return event.New(Source, topic, "Command", 1, o.ID, c)
}

// Outcome kinds orders learns from the participants' events.
type Kind string

// The participants' events orders reacts to.
const (
	PaymentProcessed  Kind = "PaymentProcessed"
	PaymentFailed     Kind = "PaymentFailed"
	PaymentRefunded   Kind = "PaymentRefunded"
	ItemsReserved     Kind = "ItemsReserved"
	ReservationFailed Kind = "ReservationFailed"
	ItemsReleased     Kind = "ItemsReleased"
	ItemsCommitted    Kind = "ItemsCommitted"
	CommitFailed      Kind = "CommitFailed"
	DeliveryScheduled Kind = "DeliveryScheduled"
	ShipmentRefused   Kind = "ShipmentRefused"
	ShipmentCancelled Kind = "ShipmentCancelled"
)

// Observation is a participant's event, as orders reads it.
type Observation struct {
	OrderID string
	Kind    Kind
	Reason  string
}

// replyTo says which orchestration step an event answers, and how.
var replyTo = map[Kind]struct {
	step    Step
	outcome Outcome
}{
	PaymentProcessed:  {StepCharge, Succeeded},
	PaymentFailed:     {StepCharge, Refused},
	ItemsReserved:     {StepReserve, Succeeded},
	ReservationFailed: {StepReserve, Refused},
	DeliveryScheduled: {StepShip, Succeeded},
	ShipmentRefused:   {StepShip, Refused},
	ItemsCommitted:    {StepCommit, Succeeded},
	CommitFailed:      {StepCommit, Refused},
	ShipmentCancelled: {StepUnship, Succeeded},
	ItemsReleased:     {StepRelease, Succeeded},
	PaymentRefunded:   {StepRefund, Succeeded},
}

// Progress is what an event-driven (choreography or parallel) saga has seen,
// as a set: the decision depends on what was seen, never on the order it
// arrived in.
type Progress uint16

var progressBit = map[Kind]Progress{
	PaymentProcessed: 1 << 0, PaymentFailed: 1 << 1, PaymentRefunded: 1 << 2,
	ItemsReserved: 1 << 3, ReservationFailed: 1 << 4, ItemsReleased: 1 << 5,
	ItemsCommitted: 1 << 6, DeliveryScheduled: 1 << 7, CommitFailed: 1 << 8,
}

// With returns p having seen k.
func (p Progress) With(k Kind) Progress { return p | progressBit[k] }

// Has reports whether p has seen k.
func (p Progress) Has(k Kind) bool { return p&progressBit[k] != 0 }

// Decide says how an event-driven saga ends, or "" while it goes on. It
// completes once the stock is committed (which follows the delivery, which
// needs both the payment and the reservation). It is cancelled once a side
// failed and both sides settled: the payment failed or was refunded, and
// the stock is not held (the reservation failed, was released, or could not
// be committed because it was no longer held).
func (p Progress) Decide() Status {
	if p.Has(ItemsCommitted) {
		return Completed
	}
	failed := p.Has(PaymentFailed) || p.Has(ReservationFailed) || p.Has(CommitFailed)
	paySettled := p.Has(PaymentFailed) || p.Has(PaymentRefunded)
	stockSettled := p.Has(ReservationFailed) || p.Has(ItemsReleased) || p.Has(CommitFailed)
	if failed && paySettled && stockSettled {
		return Cancelled
	}
	return ""
}
