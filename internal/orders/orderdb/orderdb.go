// Package orderdb stores the orders service's orders (those imported from
// the legacy monolith included), saga state, idempotency keys, settings
// and read model in its own SQL database.
package orderdb

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
)

// Migrations holds the schema, one folder per SQL dialect.
//
//go:embed migrations
var Migrations embed.FS

// Store is an orders.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ orders.Store = (*Store)(nil)

// New returns a store over db, whose migrations must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

const orderColumns = `id, user_id, status, items, total_cents, currency, saga, cancel_reason, address, created_at, updated_at, origin`

// orderRow is o as the orders table's orderColumns hold it.
func orderRow(o orders.Order) ([]any, error) {
	items, err := json.Marshal(o.Items)
	if err != nil {
		return nil, fmt.Errorf("encoding items: %w", err)
	}
	addr, err := json.Marshal(o.Address)
	if err != nil {
		return nil, fmt.Errorf("encoding address: %w", err)
	}
	return []any{o.ID, o.UserID, o.Status, items, o.TotalCents, o.Currency, o.Saga, o.CancelReason, addr,
		stamp(o.CreatedAt), stamp(o.UpdatedAt), o.Origin}, nil
}

// Create implements orders.Store.
func (s *Store) Create(ctx context.Context, o orders.Order, sg orders.Saga, replay *orders.Replay, events []event.Event) error {
	row, err := orderRow(o)
	if err != nil {
		return err
	}
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		if replay != nil {
			_, err := s.db.ExecContext(ctx, `INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, order_id, created_at) VALUES (?, ?, ?, ?, ?)`,
				replay.UserID, replay.Key, replay.Fingerprint, replay.OrderID, stamp(o.CreatedAt))
			if sqldb.IsUniqueViolation(err) {
				return fail.New(fail.Conflict, "idempotency key already used")
			}
			if err != nil {
				return fmt.Errorf("storing idempotency key: %w", err)
			}
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO orders (`+orderColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, row...); err != nil {
			return fmt.Errorf("inserting order: %w", err)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO sagas (order_id, mode, step, next_at, card_token, trace_parent) VALUES (?, ?, ?, ?, ?, ?)`,
			sg.OrderID, sg.Mode, sg.Step, sg.NextAt.UnixMilli(), sg.CardToken, sg.TraceParent); err != nil {
			return fmt.Errorf("inserting saga: %w", err)
		}
		return outbox.Add(ctx, s.db, events...)
	})
}

// Import implements orders.Store. Each order is inserted unless its id is
// taken, which the insert itself decides, so that concurrent imports of one
// order store it and its event once. The view is applied by the read
// model's own code, in this transaction: the read model lives in this
// database, so an imported order is listed the moment it is stored.
func (s *Store) Import(ctx context.Context, batch []orders.ImportedOrder) ([]orders.Order, error) {
	insert := s.db.Dialect.InsertIgnore("orders", strings.Split(orderColumns, ", ")...)
	var taken []orders.Order
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		taken = nil // a unit that lost a deadlock runs again
		for _, im := range batch {
			row, err := orderRow(im.Order)
			if err != nil {
				return err
			}
			res, err := s.db.ExecContext(ctx, insert, row...)
			if err != nil {
				return fmt.Errorf("importing order %s: %w", im.Order.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("importing order %s: %w", im.Order.ID, err)
			}
			if n == 1 {
				if err := outbox.Add(ctx, s.db, im.Event); err != nil {
					return err
				}
				if err := s.ApplyImported(ctx, im.View); err != nil {
					return err
				}
				continue
			}
			// Not inserted: the id is taken. (MySQL's INSERT IGNORE would
			// also skip a row its checks refuse; such a row is not found.)
			got, err := s.Order(ctx, im.Order.ID)
			if err != nil {
				return fmt.Errorf("importing order %s: neither inserted nor stored before: %w", im.Order.ID, err)
			}
			taken = append(taken, got)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return taken, nil
}

// Order implements orders.Store.
func (s *Store) Order(ctx context.Context, id string) (orders.Order, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id)
	if err != nil {
		return orders.Order{}, fmt.Errorf("reading order: %w", err)
	}
	list, err := scanOrders(rows)
	if err != nil {
		return orders.Order{}, err
	}
	if len(list) == 0 {
		return orders.Order{}, fail.New(fail.NotFound, "order not found")
	}
	return list[0], nil
}

// Replay implements orders.Store.
func (s *Store) Replay(ctx context.Context, userID, key string) (orders.Replay, error) {
	r := orders.Replay{UserID: userID, Key: key}
	err := s.db.QueryRowContext(ctx, `SELECT fingerprint, order_id FROM idempotency_keys WHERE user_id = ? AND idem_key = ?`, userID, key).
		Scan(&r.Fingerprint, &r.OrderID)
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Replay{}, fail.New(fail.NotFound, "no such idempotency key")
	}
	if err != nil {
		return orders.Replay{}, fmt.Errorf("reading idempotency key: %w", err)
	}
	return r, nil
}

// ListAll implements orders.Store: oldest first. The origin is filtered in
// the query, so a page is full and its cursor right however many orders
// the filter leaves out.
func (s *Store) ListAll(ctx context.Context, origins orders.Origins, after string, limit int) (orders.Page, error) {
	return s.page(ctx, `SELECT `+orderColumns+` FROM orders WHERE id > ?`+originIn("origin", origins)+` ORDER BY id LIMIT ?`,
		[]any{after, limit + 1}, limit)
}

// originIn is the condition, to AND to a WHERE clause, that keeps the rows
// whose column col holds one of origins. An order placed here has an empty
// origin.
func originIn(col string, origins orders.Origins) string {
	if origins == orders.AnyOrigin {
		return ""
	}
	return ` AND ` + col + ` = ''`
}

func (s *Store) page(ctx context.Context, q string, args []any, limit int) (orders.Page, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return orders.Page{}, fmt.Errorf("listing orders: %w", err)
	}
	list, err := scanOrders(rows)
	if err != nil {
		return orders.Page{}, err
	}
	var p orders.Page
	if len(list) > limit {
		list = list[:limit]
		p.Next = list[limit-1].ID
	}
	p.Orders = list
	return p, nil
}

func scanOrders(rows *sql.Rows) ([]orders.Order, error) {
	defer rows.Close()
	var out []orders.Order
	for rows.Next() {
		var (
			o                    orders.Order
			items, addr          []byte
			created, updated, st string
		)
		if err := rows.Scan(&o.ID, &o.UserID, &st, &items, &o.TotalCents, &o.Currency, &o.Saga, &o.CancelReason, &addr, &created, &updated, &o.Origin); err != nil {
			return nil, fmt.Errorf("reading order: %w", err)
		}
		o.Status = orders.Status(st)
		if err := json.Unmarshal(items, &o.Items); err != nil {
			return nil, fmt.Errorf("decoding items of order %s: %w", o.ID, err)
		}
		if err := json.Unmarshal(addr, &o.Address); err != nil {
			return nil, fmt.Errorf("decoding address of order %s: %w", o.ID, err)
		}
		o.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		o.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing orders: %w", err)
	}
	return out, nil
}

// Settings implements orders.Store.
func (s *Store) Settings(ctx context.Context) (orders.Settings, bool, error) {
	var st orders.Settings
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = 'saga_mode'`).Scan(&st.SagaMode)
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Settings{}, false, nil
	}
	if err != nil {
		return orders.Settings{}, false, fmt.Errorf("reading settings: %w", err)
	}
	return st, true, nil
}

// SaveSettings implements orders.Store.
func (s *Store) SaveSettings(ctx context.Context, st orders.Settings) error {
	_, err := s.db.ExecContext(ctx, s.db.Dialect.Upsert("settings", []string{"name"}, "name", "value"), "saga_mode", st.SagaMode)
	if err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	return nil
}

// ClaimSagas implements orders.SagaStore. On PostgreSQL and MySQL runners
// claim at the same time: each locks the due sagas it reads, passing over
// those another runner has locked, so they share the work out; and each
// lease is a conditional UPDATE that states the lease is free, so a saga is
// never handed to two runners whatever the read saw.
func (s *Store) ClaimSagas(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]orders.Saga, error) {
	var out []orders.Saga
	err := s.db.InTx(ctx, func(tx *sqldb.Tx) error {
		out = nil // a unit that lost a deadlock runs again
		rows, err := tx.QueryContext(ctx, `SELECT `+sagaColumns+` FROM sagas
			WHERE done = 0 AND mode = 'orchestration' AND next_at <= ? AND (lease_owner = '' OR lease_until <= ?) ORDER BY next_at LIMIT ?`+s.db.Dialect.ForUpdateSkipLocked(),
			now.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return fmt.Errorf("finding due sagas: %w", err)
		}
		var due []orders.Saga
		for rows.Next() {
			sg, err := scanSaga(rows)
			if err != nil {
				rows.Close()
				return err
			}
			due = append(due, sg)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("finding due sagas: %w", err)
		}
		for _, sg := range due {
			res, err := tx.ExecContext(ctx, `UPDATE sagas SET lease_owner = ?, lease_until = ?
				WHERE order_id = ? AND done = 0 AND (lease_owner = '' OR lease_owner = ? OR lease_until <= ?)`,
				owner, now.Add(lease).UnixMilli(), sg.OrderID, owner, now.UnixMilli())
			if err != nil {
				return fmt.Errorf("leasing saga %s: %w", sg.OrderID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("leasing saga %s: %w", sg.OrderID, err)
			} else if n == 1 {
				out = append(out, sg)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const sagaColumns = `order_id, mode, step, compensating, reason, attempts, awaiting, next_at, card_token, progress, done, trace_parent`

func scanSaga(row interface{ Scan(...any) error }) (orders.Saga, error) {
	var (
		sg     orders.Saga
		step   string
		nextAt int64
	)
	err := row.Scan(&sg.OrderID, &sg.Mode, &step, &sg.Compensating, &sg.Reason, &sg.Attempts, &sg.Awaiting, &nextAt, &sg.CardToken, &sg.Progress, &sg.Done, &sg.TraceParent)
	if err != nil {
		return orders.Saga{}, err
	}
	sg.Step = orders.Step(step)
	sg.NextAt = time.UnixMilli(nextAt)
	return sg, nil
}

// Saga implements orders.SagaStore.
func (s *Store) Saga(ctx context.Context, orderID string) (orders.Saga, error) {
	sg, err := scanSaga(s.db.QueryRowContext(ctx, `SELECT `+sagaColumns+` FROM sagas WHERE order_id = ?`, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Saga{}, fail.New(fail.NotFound, "no saga for order %s", orderID)
	}
	if err != nil {
		return orders.Saga{}, fmt.Errorf("reading saga: %w", err)
	}
	return sg, nil
}

// Advance implements orders.SagaStore.
func (s *Store) Advance(ctx context.Context, g orders.Guard, t orders.Transition, recs []orders.StepRecord, events []event.Event) error {
	sg := t.Saga
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		q := `UPDATE sagas SET step = ?, compensating = ?, reason = ?, attempts = ?, awaiting = ?, next_at = ?, card_token = ?,
			progress = ?, lease_owner = '', lease_until = 0, done = ? WHERE order_id = ? AND done = 0`
		args := []any{sg.Step, flag(sg.Compensating), sg.Reason, sg.Attempts, flag(sg.Awaiting), sg.NextAt.UnixMilli(), sg.CardToken,
			sg.Progress, flag(t.Final != ""), sg.OrderID}
		switch {
		case g.Owner != "":
			q += ` AND lease_owner = ?`
			args = append(args, g.Owner)
		case g.Expect != nil:
			q += ` AND step = ? AND awaiting = ? AND progress = ? AND attempts = ?`
			args = append(args, g.Expect.Step, flag(g.Expect.Awaiting), g.Expect.Progress, g.Expect.Attempts)
		}
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("storing saga: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fail.New(fail.Conflict, "saga %s changed meanwhile", sg.OrderID)
		}
		for _, rec := range recs {
			if _, err := s.db.ExecContext(ctx, `INSERT INTO saga_steps (order_id, step, result, detail, at) VALUES (?, ?, ?, ?, ?)`,
				rec.OrderID, rec.Step, rec.Result, rec.Detail, stamp(rec.At)); err != nil {
				return fmt.Errorf("recording saga step: %w", err)
			}
		}
		if t.Final != "" {
			reason := ""
			if t.Final == orders.Cancelled {
				reason = sg.Reason
			}
			at := time.Now().UTC()
			if len(recs) > 0 {
				at = recs[len(recs)-1].At
			}
			if _, err := s.db.ExecContext(ctx, `UPDATE orders SET status = ?, cancel_reason = ?, updated_at = ? WHERE id = ?`,
				t.Final, reason, stamp(at), sg.OrderID); err != nil {
				return fmt.Errorf("ending order: %w", err)
			}
		}
		return outbox.Add(ctx, s.db, events...)
	})
}

// KnownProduct implements orders.Store.
func (s *Store) KnownProduct(ctx context.Context, id string) (orders.Product, error) {
	p := orders.Product{ID: id}
	err := s.db.QueryRowContext(ctx, `SELECT price_cents, currency FROM known_products WHERE id = ?`, id).Scan(&p.PriceCents, &p.Currency)
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Product{}, fail.New(fail.NotFound, "product %s not known", id)
	}
	if err != nil {
		return orders.Product{}, fmt.Errorf("reading known product: %w", err)
	}
	return p, nil
}

// RememberProduct implements orders.Store.
func (s *Store) RememberProduct(ctx context.Context, p orders.Product) error {
	_, err := s.db.ExecContext(ctx, s.db.Dialect.Upsert("known_products", []string{"id"}, "id", "price_cents", "currency", "updated_at"),
		p.ID, p.PriceCents, p.Currency, stamp(time.Now()))
	if err != nil {
		return fmt.Errorf("remembering product: %w", err)
	}
	return nil
}

// History implements orders.SagaStore.
func (s *Store) History(ctx context.Context, orderID string) ([]orders.StepRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT step, result, detail, at FROM saga_steps WHERE order_id = ? ORDER BY seq`, orderID)
	if err != nil {
		return nil, fmt.Errorf("reading saga history: %w", err)
	}
	defer rows.Close()
	var out []orders.StepRecord
	for rows.Next() {
		r := orders.StepRecord{OrderID: orderID}
		var step, at string
		if err := rows.Scan(&step, &r.Result, &r.Detail, &at); err != nil {
			return nil, fmt.Errorf("reading saga history: %w", err)
		}
		r.Step = orders.Step(step)
		r.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, r)
	}
	return out, rows.Err()
}

func stamp(t time.Time) string { return sqldb.Stamp(t) }

// flag is a bool as the INTEGER 0 or 1 its columns hold on every dialect
// (PostgreSQL takes no bool for an integer).
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}
