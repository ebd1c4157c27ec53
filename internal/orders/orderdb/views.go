package orderdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/outbox"
)

// The read model's table (order_views) is written only here, by the
// projector, and read only by the listings; the write model's code never
// touches it. known_customers (from UserCreated and UserRenamed) is
// reference data that the listings join for the customer's name.

var _ orders.ViewStore = (*Store)(nil)

// ApplyCreated implements orders.ViewStore.
func (s *Store) ApplyCreated(ctx context.Context, e orders.OrderCreated) error {
	items, err := json.Marshal(e.Items)
	if err != nil {
		return fmt.Errorf("encoding items: %w", err)
	}
	// An ending seen first created a bare view with its status: fill in
	// the rest and keep that status.
	d := s.db.Dialect
	_, err = s.db.ExecContext(ctx, `INSERT INTO order_views (id, user_id, status, items, total_cents, currency, saga, created_at, updated_at, created_seen)
		VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, 1) `+d.OnConflictUpdate("id")+`
			user_id = `+d.Excluded("user_id")+`, items = `+d.Excluded("items")+`, total_cents = `+d.Excluded("total_cents")+`,
			currency = `+d.Excluded("currency")+`, saga = `+d.Excluded("saga")+`, created_at = `+d.Excluded("created_at")+`, created_seen = 1`,
		e.OrderID, e.UserID, items, e.TotalCents, e.Currency, e.Saga, stamp(e.CreatedAt), stamp(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("projecting order %s: %w", e.OrderID, err)
	}
	return nil
}

// ApplyEnded implements orders.ViewStore.
func (s *Store) ApplyEnded(ctx context.Context, status orders.Status, e orders.OrderEnded) error {
	// Only a pending view takes the ending. The SET list says so per
	// column, status last: MySQL assigns in order, and the later columns
	// must still see the status as it was.
	d := s.db.Dialect
	pending := func(col string) string {
		return col + ` = CASE WHEN order_views.status = 'PENDING' THEN ` + d.Excluded(col) + ` ELSE order_views.` + col + ` END`
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO order_views (id, user_id, status, saga, cancel_reason, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) `+d.OnConflictUpdate("id")+` `+
		pending("cancel_reason")+`, `+pending("updated_at")+`, `+pending("status"),
		e.OrderID, e.UserID, status, e.Saga, e.Reason, stamp(e.UpdatedAt))
	if err != nil {
		return fmt.Errorf("projecting the end of order %s: %w", e.OrderID, err)
	}
	return nil
}

// ApplyImported implements orders.ViewStore. The view is whole at once, and
// no other event is about the order, so a replay overwrites it with the same.
func (s *Store) ApplyImported(ctx context.Context, e orders.OrderImported) error {
	items, err := json.Marshal(e.Items)
	if err != nil {
		return fmt.Errorf("encoding items: %w", err)
	}
	_, err = s.db.ExecContext(ctx, s.db.Dialect.Upsert("order_views", []string{"id"},
		"id", "user_id", "status", "items", "total_cents", "currency", "saga", "cancel_reason", "created_at", "updated_at", "created_seen", "origin"),
		e.OrderID, e.UserID, e.Status, items, e.TotalCents, e.Currency, e.Saga, "", stamp(e.CreatedAt), stamp(e.UpdatedAt), 1, e.Origin)
	if err != nil {
		return fmt.Errorf("projecting imported order %s: %w", e.OrderID, err)
	}
	return nil
}

// ApplyCustomer implements orders.ViewStore. The SET list keeps the newer
// name, name first: MySQL assigns in order, and the name must be judged on
// the time stored before this event's.
func (s *Store) ApplyCustomer(ctx context.Context, userID, name string, at time.Time) error {
	d := s.db.Dialect
	newer := d.Excluded("named_at") + ` >= known_customers.named_at`
	_, err := s.db.ExecContext(ctx, `INSERT INTO known_customers (user_id, name, named_at) VALUES (?, ?, ?) `+d.OnConflictUpdate("user_id")+`
			name = CASE WHEN `+newer+` THEN `+d.Excluded("name")+` ELSE known_customers.name END,
			named_at = `+d.Greatest("known_customers.named_at", d.Excluded("named_at")),
		userID, name, stamp(at))
	if err != nil {
		return fmt.Errorf("projecting customer %s: %w", userID, err)
	}
	return nil
}

// ViewsByUser implements orders.ViewStore: newest first, ids being
// time-ordered. Views whose creation has not been seen yet are left out,
// and so are those of other origins, in the query, so that each page is
// full and its cursor right.
func (s *Store) ViewsByUser(ctx context.Context, userID string, origins orders.Origins, after string, limit int) (orders.Page, error) {
	q := `SELECT v.id, v.user_id, v.status, v.items, v.total_cents, v.currency, v.saga, v.cancel_reason, v.created_at, v.updated_at,
		v.origin, COALESCE(c.name, '') FROM order_views v LEFT JOIN known_customers c ON c.user_id = v.user_id
		WHERE v.user_id = ? AND v.created_seen = 1` + originIn("v.origin", origins)
	args := []any{userID}
	if after != "" {
		q += ` AND v.id < ?`
		args = append(args, after)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY v.id DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return orders.Page{}, fmt.Errorf("listing order views: %w", err)
	}
	defer rows.Close()
	var list []orders.Order
	for rows.Next() {
		var (
			o                    orders.Order
			items                []byte
			st, created, updated string
		)
		if err := rows.Scan(&o.ID, &o.UserID, &st, &items, &o.TotalCents, &o.Currency, &o.Saga, &o.CancelReason, &created, &updated, &o.Origin, &o.CustomerName); err != nil {
			return orders.Page{}, fmt.Errorf("reading order view: %w", err)
		}
		o.Status = orders.Status(st)
		if err := json.Unmarshal(items, &o.Items); err != nil {
			return orders.Page{}, fmt.Errorf("decoding items of view %s: %w", o.ID, err)
		}
		o.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		o.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
		list = append(list, o)
	}
	if err := rows.Err(); err != nil {
		return orders.Page{}, fmt.Errorf("listing order views: %w", err)
	}
	var p orders.Page
	if len(list) > limit {
		list = list[:limit]
		p.Next = list[limit-1].ID
	}
	p.Orders = list
	return p, nil
}

// ClearViews implements orders.ViewStore.
func (s *Store) ClearViews(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM order_views`); err != nil {
		return fmt.Errorf("clearing order views: %w", err)
	}
	return nil
}

// RebuildViews drops the read model and applies every event of orders' own
// log to it again with apply, in one transaction: readers see the old model
// or the new one, never half of it. It returns how many events it applied.
func (s *Store) RebuildViews(ctx context.Context, apply func(context.Context, event.Event) error) (int, error) {
	n := 0
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		n = 0 // a unit that lost a deadlock runs again
		if err := s.ClearViews(ctx); err != nil {
			return err
		}
		return outbox.Log(ctx, s.db, "orders.order.", func(e event.Event) error {
			n++
			return apply(ctx, e)
		})
	})
	return n, err
}
