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
	"slices"
	"strings"
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
// waits for the first's row and merges into it. The merged row is read back
// in the same unit, while the upsert's lock on it is held.
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
	d := s.db.Dialect
	var (
		got      = inventory.Intent{OrderID: in.OrderID}
		gotItems sql.NullString
	)
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, `
			INSERT INTO order_intents (order_id, saga, items, paid, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
			`+d.OnConflictUpdate("order_id")+`
				items = COALESCE(order_intents.items, `+d.Excluded("items")+`),
				paid = `+d.Greatest("order_intents.paid", d.Excluded("paid"))+`,
				updated_at = `+d.Excluded("updated_at"),
			in.OrderID, string(in.Saga), items, flag(in.Paid), sqldb.Stamp(at), sqldb.Stamp(at))
		if err != nil {
			return err
		}
		return s.db.QueryRowContext(ctx, `SELECT saga, items, paid FROM order_intents WHERE order_id = ?`, in.OrderID).
			Scan(&got.Saga, &gotItems, &got.Paid)
	})
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

// flag is a boolean as the 0 or 1 its column holds on every dialect.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Stock implements inventory.Store.
func (s *Store) Stock(ctx context.Context, productID string) (inventory.Stock, error) {
	st, found, err := s.stock(ctx, productID, false)
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
// are taken from supplied too, so the stock still adds up. The product's row
// is made to exist and locked before it is read, so that a reservation
// cannot slip between the read and the write and be counted away.
func (s *Store) SetAvailable(ctx context.Context, productID string, available int64, at time.Time) (inventory.Stock, error) {
	var out inventory.Stock
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		// A product without a row has no stock: start it at zero.
		if err := s.ensure(ctx, "stock", "product_id",
			[]string{"product_id", "available", "reserved", "sold", "supplied", "updated_at"},
			productID, 0, 0, 0, 0, sqldb.Stamp(at)); err != nil {
			return fmt.Errorf("creating stock of product %s: %w", productID, err)
		}
		st, found, err := s.stock(ctx, productID, true)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("setting stock of product %s: its row is missing", productID)
		}
		st.Supplied += available - st.Available
		st.Available = available
		_, err = s.db.ExecContext(ctx,
			`UPDATE stock SET available = ?, supplied = ?, updated_at = ? WHERE product_id = ?`,
			st.Available, st.Supplied, sqldb.Stamp(at), productID)
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
//
// Concurrent units are kept apart by row locks, always taken in one order:
// the order's reservation row first, then its products' stock rows by
// product id, as Commit and Release do too, so no two units deadlock. The
// reservation row is claimed by inserting it, so that of two reserves of one
// order only one moves stock and the other answers what it did; the stock
// rows are locked before their units are counted, so that two orders cannot
// both take the last unit.
func (s *Store) Reserve(ctx context.Context, r inventory.Reservation) (inventory.Reservation, bool, error) {
	var (
		got     inventory.Reservation
		created bool
		refusal error
	)
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		existing, found, err := s.reservation(ctx, r.OrderID, false)
		if err != nil {
			return err
		}
		if !found {
			claimed, err := s.claim(ctx, r)
			if err != nil {
				return err
			}
			if !claimed {
				// Another unit recorded the order's reservation since the read.
				if existing, found, err = s.reservation(ctx, r.OrderID, false); err != nil {
					return err
				} else if !found {
					return fmt.Errorf("reading reservation of order %s: refused as a duplicate, yet missing", r.OrderID)
				}
			}
		}
		if found {
			got, refusal = existing, existing.ReserveAgain()
			return nil
		}
		available, err := s.lockStock(ctx, r.Items)
		if err != nil {
			return err
		}
		if reason, short := inventory.Shortage(r.Items, available); short {
			r.Status, r.Reason = inventory.Rejected, reason
			got, refusal = r, fail.New(fail.Conflict, "%s", reason)
			return s.reject(ctx, r)
		}
		for _, it := range r.Items {
			// The guard repeats the check made under the lock, so that stock
			// can never go negative, whatever a future change here does.
			if err := s.move(ctx,
				`UPDATE stock SET available = available - ?, reserved = reserved + ?, updated_at = ? WHERE product_id = ? AND available >= ?`,
				it, r.UpdatedAt); err != nil {
				return err
			}
		}
		got, created = r, true
		return s.insertItems(ctx, r)
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

// lockStock locks the stock rows of items, in product order so that two
// reserves lock shared products in the same order and never deadlock, and
// returns the units available of each product that has stock.
func (s *Store) lockStock(ctx context.Context, items []inventory.Item) (map[string]int64, error) {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.ProductID)
	}
	slices.Sort(ids)
	available := make(map[string]int64, len(ids))
	for _, id := range slices.Compact(ids) {
		st, found, err := s.stock(ctx, id, true)
		if err != nil {
			return nil, err
		}
		if found {
			available[id] = st.Available
		}
	}
	return available, nil
}

// Commit implements inventory.Store. The reservation row is locked before
// it is read, so of two commits of one order the second waits, then finds it
// COMMITTED and answers it again instead of selling the units twice.
func (s *Store) Commit(ctx context.Context, orderID string, at time.Time) (inventory.Reservation, error) {
	var got inventory.Reservation
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		r, found, err := s.reservation(ctx, orderID, true)
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
			if err := s.move(ctx,
				`UPDATE stock SET reserved = reserved - ?, sold = sold + ?, updated_at = ? WHERE product_id = ? AND reserved >= ?`,
				it, at); err != nil {
				return err
			}
		}
		got, err = s.changeStatus(ctx, r, inventory.Committed, at)
		return err
	})
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("committing reservation of order %s: %w", orderID, err)
	}
	return got, nil
}

// Release implements inventory.Store. Like Commit, it locks the reservation
// before reading it. An order with none gets a tombstone, unless a reserve
// of the order commits first: then that reservation is released instead.
func (s *Store) Release(ctx context.Context, orderID string, at time.Time) (inventory.Reservation, error) {
	var got inventory.Reservation
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		r, found, err := s.reservation(ctx, orderID, true)
		if err != nil {
			return err
		}
		if !found {
			if err := s.ensure(ctx, "reservations", "order_id",
				[]string{"order_id", "status", "reason", "created_at", "updated_at"},
				orderID, string(inventory.Released), "", sqldb.Stamp(at), sqldb.Stamp(at)); err != nil {
				return fmt.Errorf("recording the release of order %s: %w", orderID, err)
			}
			// The tombstone, or the reservation a reserve of the order
			// committed since the read.
			if r, found, err = s.reservation(ctx, orderID, true); err != nil {
				return err
			} else if !found {
				return fmt.Errorf("reading reservation of order %s: its row is missing", orderID)
			}
		}
		step, err := r.ReleaseStep()
		if err != nil || step == inventory.Replay {
			got = r
			return err
		}
		for _, it := range r.Items {
			if err := s.move(ctx,
				`UPDATE stock SET reserved = reserved - ?, available = available + ?, updated_at = ? WHERE product_id = ? AND reserved >= ?`,
				it, at); err != nil {
				return err
			}
		}
		got, err = s.changeStatus(ctx, r, inventory.Released, at)
		return err
	})
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("releasing reservation of order %s: %w", orderID, err)
	}
	return got, nil
}

// Reservation implements inventory.Store.
func (s *Store) Reservation(ctx context.Context, orderID string) (inventory.Reservation, error) {
	r, found, err := s.reservation(ctx, orderID, false)
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

// stock reads the stock of a product, and whether it has any. With lock, the
// row stays locked until the unit of work of ctx ends, and the read waits
// for a unit that holds it and sees what that unit committed.
func (s *Store) stock(ctx context.Context, productID string, lock bool) (inventory.Stock, bool, error) {
	query := `SELECT available, reserved, sold, supplied FROM stock WHERE product_id = ?`
	if lock {
		query += s.db.Dialect.ForUpdate()
	}
	st := inventory.Stock{ProductID: productID}
	err := s.db.QueryRowContext(ctx, query, productID).Scan(&st.Available, &st.Reserved, &st.Sold, &st.Supplied)
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
// move takes, and the unit of work must not go on.
func (s *Store) move(ctx context.Context, update string, it inventory.Item, at time.Time) error {
	res, err := s.db.ExecContext(ctx, update, it.Quantity, it.Quantity, sqldb.Stamp(at), it.ProductID, it.Quantity)
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
// whether there is one. With lock, the reservation's row stays locked until
// the unit of work of ctx ends, and the read waits for a unit that holds it
// and sees what that unit committed.
func (s *Store) reservation(ctx context.Context, orderID string, lock bool) (inventory.Reservation, bool, error) {
	query := `SELECT status, reason, created_at, updated_at FROM reservations WHERE order_id = ?`
	if lock {
		query += s.db.Dialect.ForUpdate()
	}
	r := inventory.Reservation{OrderID: orderID}
	var created, updated string
	err := s.db.QueryRowContext(ctx, query, orderID).Scan(&r.Status, &r.Reason, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return inventory.Reservation{}, false, nil
	}
	if err != nil {
		return inventory.Reservation{}, false, fmt.Errorf("reading reservation of order %s: %w", orderID, err)
	}
	if r.CreatedAt, r.UpdatedAt, err = parseTimes(created, updated); err != nil {
		return inventory.Reservation{}, false, fmt.Errorf("reading reservation of order %s: %w", orderID, err)
	}
	if r.Items, err = s.reservationItems(ctx, orderID); err != nil {
		return inventory.Reservation{}, false, err
	}
	return r, true, nil
}

// reservationItems reads the items of an order's reservation, in product
// order: the order in which stock rows are locked.
func (s *Store) reservationItems(ctx context.Context, orderID string) ([]inventory.Item, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT product_id, quantity FROM reservation_items WHERE order_id = ? ORDER BY product_id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("reading items of order %s: %w", orderID, err)
	}
	defer rows.Close()
	items := []inventory.Item{}
	for rows.Next() {
		var it inventory.Item
		if err := rows.Scan(&it.ProductID, &it.Quantity); err != nil {
			return nil, fmt.Errorf("reading items of order %s: %w", orderID, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading items of order %s: %w", orderID, err)
	}
	return items, nil
}

// claim records r's reservation row, RESERVED and without its items, unless
// the order has a reservation already, and reports whether it did. The new
// row stays locked until the unit of work of ctx ends. If another unit is
// inserting the order's row, claim waits for that unit to end first.
func (s *Store) claim(ctx context.Context, r inventory.Reservation) (bool, error) {
	res, err := s.db.ExecContext(ctx,
		s.db.Dialect.InsertIgnore("reservations", "order_id", "status", "reason", "created_at", "updated_at"),
		r.OrderID, string(inventory.Reserved), "", sqldb.Stamp(r.CreatedAt), sqldb.Stamp(r.UpdatedAt))
	if err != nil {
		return false, fmt.Errorf("recording reservation of order %s: %w", r.OrderID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("recording reservation of order %s: %w", r.OrderID, err)
	}
	return n == 1, nil
}

// reject records the reservation claimed for r as REJECTED for r.Reason,
// with r's items, so that a repeat is answered with the same refusal.
func (s *Store) reject(ctx context.Context, r inventory.Reservation) error {
	_, err := s.db.ExecContext(ctx,
		`UPDATE reservations SET status = ?, reason = ? WHERE order_id = ?`,
		string(inventory.Rejected), r.Reason, r.OrderID)
	if err != nil {
		return fmt.Errorf("recording the rejection of order %s: %w", r.OrderID, err)
	}
	return s.insertItems(ctx, r)
}

// insertItems records the items of r's reservation.
func (s *Store) insertItems(ctx context.Context, r inventory.Reservation) error {
	for _, it := range r.Items {
		_, err := s.db.ExecContext(ctx,
			`INSERT INTO reservation_items (order_id, product_id, quantity) VALUES (?, ?, ?)`,
			r.OrderID, it.ProductID, it.Quantity)
		if err != nil {
			return fmt.Errorf("recording item %s of order %s: %w", it.ProductID, r.OrderID, err)
		}
	}
	return nil
}

// ensure inserts a row of cols (args in the same order) into table unless a
// row with the same key exists, and leaves the row, new or not, locked
// until the unit of work of ctx ends. A clash "updates" the key to itself
// rather than being ignored: on MySQL an INSERT that finds the key taken,
// IGNORE or not, takes only a shared lock on the row, and two units that go
// on to lock it for writing would deadlock. Use it before a read that locks
// the row anyway.
func (s *Store) ensure(ctx context.Context, table, key string, cols []string, args ...any) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) VALUES (?`+strings.Repeat(", ?", len(cols)-1)+`) `+
			s.db.Dialect.OnConflictUpdate(key)+` `+key+` = `+table+`.`+key,
		args...)
	return err
}

// changeStatus moves a RESERVED reservation to status; the guard on the old
// status makes a second transition of the same reservation impossible.
func (s *Store) changeStatus(ctx context.Context, r inventory.Reservation, status inventory.Status, at time.Time) (inventory.Reservation, error) {
	res, err := s.db.ExecContext(ctx,
		`UPDATE reservations SET status = ?, updated_at = ? WHERE order_id = ? AND status = ?`,
		string(status), sqldb.Stamp(at), r.OrderID, string(inventory.Reserved))
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
	c, err := sqldb.ParseStamp(created)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("parsing created_at: %w", err)
	}
	u, err := sqldb.ParseStamp(updated)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("parsing updated_at: %w", err)
	}
	return c, u, nil
}
