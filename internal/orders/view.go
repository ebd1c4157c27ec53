package orders

import "context"

// The read model: the orders lists customers read (GET /api/v1/orders and
// /api/v1/users/{id}/orders) are served from views that a projector builds
// from orders' own events, apart from the tables the saga writes. A view
// can be dropped and rebuilt from the events with the same result.

// ViewStore keeps the read model.
type ViewStore interface {
	// ApplyCreated inserts the view of a new order, or completes a view an
	// ending event created first (events may arrive in any order).
	ApplyCreated(ctx context.Context, e OrderCreated) error
	// ApplyEnded records an order's end on its view, creating the view if
	// the creation has not been seen yet; a view that has ended keeps its end.
	ApplyEnded(ctx context.Context, status Status, e OrderEnded) error
	// ApplyCustomer records a customer's name, which the listings show.
	ApplyCustomer(ctx context.Context, userID, name string) error
	// ViewsByUser lists a user's order views, newest first.
	ViewsByUser(ctx context.Context, userID, after string, limit int) (Page, error)
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

// Customer applies UserCreated.
func (p *Projector) Customer(ctx context.Context, userID, name string) error {
	return p.store.ApplyCustomer(ctx, userID, name)
}
