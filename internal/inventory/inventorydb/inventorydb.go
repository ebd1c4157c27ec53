// Package inventorydb stores the inventory service's stock and reservations in
// its own SQL database, each change in one transaction together with the
// events that announce it.
package inventorydb

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
)

// Migrations holds the schema, one folder per SQL dialect. The outbox and
// inbox tables are not in it: apply outbox.Migrate to the same database.
//
//go:embed migrations
var Migrations embed.FS

// Store is an inventory.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ inventory.Store = (*Store)(nil)

// New returns a store over db, whose migrations (Migrations and
// outbox.Migrate) must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// Atomic implements inventory.Store with a transaction of the database, or
// a savepoint of the one ctx already carries (a consumer's inbox
// transaction).
func (s *Store) Atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.Atomic(ctx, fn)
}

// Publish implements inventory.Store with the transactional outbox.
func (s *Store) Publish(ctx context.Context, events ...event.Event) error {
	return outbox.Add(ctx, s.db, events...)
}

// intentItem is how an intent's items are kept in their JSON column.
type intentItem struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// MergeIntent implements inventory.Store with one upsert, so that two events
// of an order applied at once cannot both miss the other's part: the second
// waits for the first's row and merges into it.
func (s *Store) MergeIntent(ctx context.Context, in inventory.Intent, at time.Time) (inventory.Intent, error) {
	var items any // NULL unless in brings them
	if in.Items != nil {
		list := make([]intentItem, 0, len(in.Items))
		for _, it := range in.Items {
			list = append(list, intentItem{ProductID: it.ProductID, Quantity: it.Quantity})
		}
		b, err := json.Marshal(list)
		if err != nil {
			return inventory.Intent{}, fmt.Errorf("encoding items of order %s: %w", in.OrderID, err)
		}
		items = string(b)
	}
	var (
		got      = inventory.Intent{OrderID: in.OrderID}
		gotItems sql.NullString
	)
	err := s.db.QueryRowContext(ctx, `
		INSERT INTO order_intents (order_id, saga, items, paid, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET
			items = COALESCE(order_intents.items, excluded.items),
			paid = MAX(order_intents.paid, excluded.paid),
			updated_at = excluded.updated_at
		RETURNING saga, items, paid`,
		in.OrderID, string(in.Saga), items, in.Paid, formatTime(at), formatTime(at),
	).Scan(&got.Saga, &gotItems, &got.Paid)
	if err != nil {
		return inventory.Intent{}, fmt.Errorf("recording the intent of order %s: %w", in.OrderID, err)
	}
	if gotItems.Valid {
		var list []intentItem
		if err := json.Unmarshal([]byte(gotItems.String), &list); err != nil {
			return inventory.Intent{}, fmt.Errorf("reading items of order %s: %w", in.OrderID, err)
		}
		got.Items = make([]inventory.Item, 0, len(list))
		for _, it := range list {
			got.Items = append(got.Items, inventory.Item{ProductID: it.ProductID, Quantity: it.Quantity})
		}
	}
	return got, nil
}

// querier is what a database and a transaction both offer, so reads can
// run inside or outside one.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Stock implements inventory.Store.
func (s *Store) Stock(ctx context.Context, productID string) (inventory.Stock, error) {
	st, found, err := stock(ctx, s.db, productID)
	if err != nil {
		return inventory.Stock{}, err
	}
	if !found {
		return inventory.Stock{}, fail.New(fail.NotFound, "no stock for product %s", productID)
	}
	return st, nil
}

// ListStock implements inventory.Store.
func (s *Store) ListStock(ctx context.Context, after string, limit int) ([]inventory.Stock, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT product_id, available, reserved, sold, supplied FROM stock WHERE product_id > ? ORDER BY product_id LIMIT ?`,
		after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing stock: %w", err)
	}
	defer rows.Close()
	out := []inventory.Stock{}
	for rows.Next() {
		var st inventory.Stock
		if err := rows.Scan(&st.ProductID, &st.Available, &st.Reserved, &st.Sold, &st.Supplied); err != nil {
			return nil, fmt.Errorf("reading stock: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing stock: %w", err)
	}
	return out, nil
}

// SetAvailable implements inventory.Store. Units taken away from available
// are taken from supplied too, so the stock still adds up.
func (s *Store) SetAvailable(ctx context.Context, productID string, available int64, at time.Time) (inventory.Stock, error) {
	var out inventory.Stock
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		st, found, err := stock(ctx, tx, productID)
		if err != nil {
			return err
		}
		if !found {
			_, err = tx.ExecContext(ctx,
				`INSERT INTO stock (product_id, available, reserved, sold, supplied, updated_at) VALUES (?, ?, 0, 0, ?, ?)`,
				productID, available, available, formatTime(at))
			if err != nil {
				return fmt.Errorf("creating stock of product %s: %w", productID, err)
			}
			out = inventory.Stock{ProductID: productID, Available: available, Supplied: available}
			return nil
		}
		st.Supplied += available - st.Available
		st.Available = available
		_, err = tx.ExecContext(ctx,
			`UPDATE stock SET available = ?, supplied = ?, updated_at = ? WHERE product_id = ?`,
			st.Available, st.Supplied, formatTime(at), productID)
		if err != nil {
			return fmt.Errorf("setting stock of product %s: %w", productID, err)
		}
		out = st
		return nil
	})
	if err != nil {
		return inventory.Stock{}, err
	}
	return out, nil
}

// Reserve implements inventory.Store. A rejection is committed like a
// success, so the refusal is recorded and answered again on a repeat; only
// the error returned to the caller differs.
func (s *Store) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reservation, bool, error) {
	var (
		got     inventory.Reservation
		created bool
		refusal error
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, found, err := reservation(ctx, tx, r.OrderID)
		if err != nil {
			return err
		}
		if found {
			got, refusal = existing, existing.ReserveAgain()
			return nil
		}
		available := make(map[string]int64, len(r.Items))
		for _, it := range r.Items {
			st, found, err := stock(ctx, tx, it.ProductID)
			if err != nil {
				return err
			}
			if found {
				available[it.ProductID] = st.Available
			}
		}
		if reason, short := inventory.Shortage(r.Items, available); short {
			r.Status, r.Reason = inventory.Rejected, reason
			got, refusal = r, fail.New(fail.Conflict, "%s", reason)
			return insertReservation(ctx, tx, r)
		}
		for _, it := range r.Items {
			// The guard repeats the check above in the statement itself, so
			// stock can never go negative even if the transaction did not
			// hold the write lock since the read.
			if err := move(ctx, tx,
				`UPDATE stock SET available = available - ?, reserved = reserved + ?, updated_at = ? WHERE product_id = ? AND available >= ?`,
				it, r.UpdatedAt); err != nil {
				return fail.Wrap(fail.Unavailable, err, "stock of product %s changed during the reservation; try again", it.ProductID)
			}
		}
		got, created = r, true
		return insertReservation(ctx, tx, r)
	})
	switch {
	case err != nil:
		return inventory.Reservation{}, false, fmt.Errorf("reserving stock for order %s: %w", r.OrderID, err)
	case refusal != nil:
		return inventory.Reservation{}, false, refusal
	default:
		return got, created, nil
	}
}

// Commit implements inventory.Store.
func (s *Store) Commit(ctx context.Context, orderID string, at time.Time) (inventory.Reservation, error) {
	var got inventory.Reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		r, found, err := reservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		if !found {
			return inventory.NoReservation(orderID)
		}
		step, err := r.CommitStep()
		if err != nil || step == inventory.Replay {
			got = r
			return err
		}
		for _, it := range r.Items {
			if err := move(ctx, tx,
				`UPDATE stock SET reserved = reserved - ?, sold = sold + ?, updated_at = ? WHERE product_id = ? AND reserved >= ?`,
				it, at); err != nil {
				return err
			}
		}
		got, err = changeStatus(ctx, tx, r, inventory.Committed, at)
		return err
	})
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("committing reservation of order %s: %w", orderID, err)
	}
	return got, nil
}

// Release implements inventory.Store.
func (s *Store) Release(ctx context.Context, orderID string, at time.Time) (inventory.Reservation, error) {
	var got inventory.Reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		r, found, err := reservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		if !found {
			got = inventory.Reservation{OrderID: orderID, Status: inventory.Released, CreatedAt: at, UpdatedAt: at}
			return insertReservation(ctx, tx, got)
		}
		step, err := r.ReleaseStep()
		if err != nil || step == inventory.Replay {
			got = r
			return err
		}
		for _, it := range r.Items {
			if err := move(ctx, tx,
				`UPDATE stock SET reserved = reserved - ?, available = available + ?, updated_at = ? WHERE product_id = ? AND reserved >= ?`,
				it, at); err != nil {
				return err
			}
		}
		got, err = changeStatus(ctx, tx, r, inventory.Released, at)
		return err
	})
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("releasing reservation of order %s: %w", orderID, err)
	}
	return got, nil
}

// Reservation implements inventory.Store.
func (s *Store) Reservation(ctx context.Context, orderID string) (inventory.Reservation, error) {
	r, found, err := reservation(ctx, s.db, orderID)
	if err != nil {
		return inventory.Reservation{}, err
	}
	if !found {
		return inventory.Reservation{}, inventory.NoReservation(orderID)
	}
	return r, nil
}

// ListReservations implements inventory.Store. One query reads a page of
// reservations with their items; the page is cut before the join so that a
// reservation's items are never split.
func (s *Store) ListReservations(ctx context.Context, after string, limit int) ([]inventory.Reservation, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.order_id, r.status, r.reason, r.created_at, r.updated_at, i.product_id, i.quantity
		FROM (SELECT order_id, status, reason, created_at, updated_at FROM reservations WHERE order_id > ? ORDER BY order_id LIMIT ?) r
		LEFT JOIN reservation_items i ON i.order_id = r.order_id
		ORDER BY r.order_id, i.product_id`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing reservations: %w", err)
	}
	defer rows.Close()
	out := []inventory.Reservation{}
	for rows.Next() {
		var (
			r                inventory.Reservation
			created, updated string
			productID        sql.NullString
			quantity         sql.NullInt64
		)
		if err := rows.Scan(&r.OrderID, &r.Status, &r.Reason, &created, &updated, &productID, &quantity); err != nil {
			return nil, fmt.Errorf("reading reservation: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].OrderID != r.OrderID {
			if r.CreatedAt, r.UpdatedAt, err = parseTimes(created, updated); err != nil {
				return nil, fmt.Errorf("reading reservation of order %s: %w", r.OrderID, err)
			}
			r.Items = []inventory.Item{}
			out = append(out, r)
		}
		if productID.Valid {
			last := &out[len(out)-1]
			last.Items = append(last.Items, inventory.Item{ProductID: productID.String, Quantity: quantity.Int64})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing reservations: %w", err)
	}
	return out, nil
}

// stock reads the stock of a product, and whether it has any.
func stock(ctx context.Context, q querier, productID string) (inventory.Stock, bool, error) {
	st := inventory.Stock{ProductID: productID}
	err := q.QueryRowContext(ctx,
		`SELECT available, reserved, sold, supplied FROM stock WHERE product_id = ?`, productID,
	).Scan(&st.Available, &st.Reserved, &st.Sold, &st.Supplied)
	if errors.Is(err, sql.ErrNoRows) {
		return inventory.Stock{}, false, nil
	}
	if err != nil {
		return inventory.Stock{}, false, fmt.Errorf("reading stock of product %s: %w", productID, err)
	}
	return st, true, nil
}

// move runs a guarded update that moves an item's quantity between two
// columns of its product's stock. The statement's last argument is the
// guard's minimum; if no row passes it, the stock does not hold what the
// move takes, and the transaction must not go on.
func move(ctx context.Context, tx *sql.Tx, update string, it inventory.Item, at time.Time) error {
	res, err := tx.ExecContext(ctx, update, it.Quantity, it.Quantity, formatTime(at), it.ProductID, it.Quantity)
	if err != nil {
		return fmt.Errorf("moving stock of product %s: %w", it.ProductID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("moving stock of product %s: %w", it.ProductID, err)
	}
	if n != 1 {
		return fmt.Errorf("moving %d units of product %s: the stock does not hold them", it.Quantity, it.ProductID)
	}
	return nil
}

// reservation reads the reservation of an order with its items, and
// whether there is one.
func reservation(ctx context.Context, q querier, orderID string) (inventory.Reservation, bool, error) {
	r := inventory.Reservation{OrderID: orderID}
	var created, updated string
	err := q.QueryRowContext(ctx,
		`SELECT status, reason, created_at, updated_at FROM reservations WHERE order_id = ?`, orderID,
	).Scan(&r.Status, &r.Reason, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return inventory.Reservation{}, false, nil
	}
	if err != nil {
		return inventory.Reservation{}, false, fmt.Errorf("reading reservation of order %s: %w", orderID, err)
	}
	if r.CreatedAt, r.UpdatedAt, err = parseTimes(created, updated); err != nil {
		return inventory.Reservation{}, false, fmt.Errorf("reading reservation of order %s: %w", orderID, err)
	}
	rows, err := q.QueryContext(ctx,
		`SELECT product_id, quantity FROM reservation_items WHERE order_id = ? ORDER BY product_id`, orderID)
	if err != nil {
		return inventory.Reservation{}, false, fmt.Errorf("reading items of order %s: %w", orderID, err)
	}
	defer rows.Close()
	r.Items = []inventory.Item{}
	for rows.Next() {
		var it inventory.Item
		if err := rows.Scan(&it.ProductID, &it.Quantity); err != nil {
			return inventory.Reservation{}, false, fmt.Errorf("reading items of order %s: %w", orderID, err)
		}
		r.Items = append(r.Items, it)
	}
	if err := rows.Err(); err != nil {
		return inventory.Reservation{}, false, fmt.Errorf("reading items of order %s: %w", orderID, err)
	}
	return r, true, nil
}

func insertReservation(ctx context.Context, tx *sql.Tx, r inventory.Reservation) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO reservations (order_id, status, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		r.OrderID, r.Status, r.Reason, formatTime(r.CreatedAt), formatTime(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("recording reservation of order %s: %w", r.OrderID, err)
	}
	for _, it := range r.Items {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO reservation_items (order_id, product_id, quantity) VALUES (?, ?, ?)`,
			r.OrderID, it.ProductID, it.Quantity)
		if err != nil {
			return fmt.Errorf("recording item %s of order %s: %w", it.ProductID, r.OrderID, err)
		}
	}
	return nil
}

// changeStatus moves a RESERVED reservation to status; the guard on the old
// status makes a second transition of the same reservation impossible.
func changeStatus(ctx context.Context, tx *sql.Tx, r inventory.Reservation, status inventory.Status, at time.Time) (inventory.Reservation, error) {
	res, err := tx.ExecContext(ctx,
		`UPDATE reservations SET status = ?, updated_at = ? WHERE order_id = ? AND status = ?`,
		status, formatTime(at), r.OrderID, inventory.Reserved)
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("recording %s for order %s: %w", status, r.OrderID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return inventory.Reservation{}, fmt.Errorf("recording %s for order %s: %w", status, r.OrderID, err)
	} else if n != 1 {
		return inventory.Reservation{}, fmt.Errorf("recording %s for order %s: it is no longer RESERVED", status, r.OrderID)
	}
	r.Status, r.UpdatedAt = status, at
	return r, nil
}

func parseTimes(created, updated string) (time.Time, time.Time, error) {
	c, err := time.Parse(time.RFC3339Nano, created)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("parsing created_at: %w", err)
	}
	u, err := time.Parse(time.RFC3339Nano, updated)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("parsing updated_at: %w", err)
	}
	return c, u, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
