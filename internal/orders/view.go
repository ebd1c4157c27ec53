package orders

import (
	"context"
	"time"
)

// The read model: the orders lists customers read (GET /api/v1/orders,
// /api/v1/users/{id}/orders and GET /api/v2/orders) are served from views
// that a projector builds from orders' own events, apart from the tables
// the saga writes. A view can be dropped and rebuilt from the events with
// the same result.

// ViewStore keeps the read model.
type ViewStore interface {
	// ApplyCreated inserts the view of a new order, or completes a view an
	// ending event created first (events may arrive in any order).
	ApplyCreated(ctx context.Context, e OrderCreated) error
	// ApplyEnded records an order's end on its view, creating the view if
	// the creation has not been seen yet; a view that has ended keeps its end.
	ApplyEnded(ctx context.Context, status Status, e OrderEnded) error
	// ApplyImported inserts the whole view of a historical order, which no
	// other event is about; applying it again changes nothing.
	ApplyImported(ctx context.Context, e OrderImported) error
	// ApplyCustomer records a customer's name as given at, which the
	// listings show. A name given earlier than the one recorded is ignored,
	// so a late UserCreated never undoes a UserRenamed.
	ApplyCustomer(ctx context.Context, userID, name string, at time.Time) error
	// ViewsByUser lists a user's order views of origins, newest first.
	ViewsByUser(ctx context.Context, userID string, origins Origins, after string, limit int) (Page, error)
	// ClearViews empties the read model before a rebuild (the known
	// customers are reference data and stay).
	ClearViews(ctx context.Context) error
}

// Projector builds the read model from orders' events.
type Projector struct{ store ViewStore }

// NewProjector returns a projector over store.
func NewProjector(store ViewStore) *Projector { return &Projector{store: store} }

// Created applies OrderCreated.
func (p *Projector) Created(ctx context.Context, e OrderCreated) error {
	return p.store.ApplyCreated(ctx, e)
}

// Ended applies OrderCompleted or OrderCancelled.
func (p *Projector) Ended(ctx context.Context, status Status, e OrderEnded) error {
	return p.store.ApplyEnded(ctx, status, e)
}

// Imported applies OrderImported.
func (p *Projector) Imported(ctx context.Context, e OrderImported) error {
	return p.store.ApplyImported(ctx, e)
}

// Customer applies UserCreated and UserRenamed: the name the user had at,
// the time of the event.
func (p *Projector) Customer(ctx context.Context, userID, name string, at time.Time) error {
	return p.store.ApplyCustomer(ctx, userID, name, at)
}
