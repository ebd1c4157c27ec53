// Package paymentdb stores the payments service's payments, its card numbers
// and its outgoing events in its own SQL database. The events go to the
// transactional outbox (package outbox), whose migrations must be applied to
// the same database with outbox.Migrate.
package paymentdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/sqldb"
)

// Migrations holds the schema, one folder per SQL dialect.
//
//go:embed migrations
var Migrations embed.FS

// Store is a payments.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ payments.Store = (*Store)(nil)

// New returns a store over db, whose migrations must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

const columns = `id, order_id, user_id, amount_cents, currency, status, card_last4, decline_reason, created_at, updated_at`

// Create implements payments.Store. The unique order_id turns a second
// payment for an order into fail.Conflict.
func (s *Store) Create(ctx context.Context, p payments.Payment, events ...event.Event) error {
	// Its own unit, so that inside a caller's transaction a refused row is
	// undone alone and the caller can go on (PostgreSQL would otherwise
	// abort the whole transaction).
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		if err := s.insert(ctx, p); err != nil {
			return err
		}
		return outbox.Add(ctx, s.db, events...)
	})
}

// insert inserts p. A clash on order_id "updates" the key to itself rather
// than failing, and the payment is known to be p only if the order's row
// carries p's id. That way the existing row ends locked for writing until
// the unit of work ends, on every dialect: on MySQL an INSERT refused for a
// taken key keeps only a shared lock on the row, and two refunds that go on
// to update it (each after its void lost to the charge) would deadlock.
func (s *Store) insert(ctx context.Context, p payments.Payment) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO payments (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) `+
			s.db.Dialect.OnConflictUpdate("order_id")+` order_id = payments.order_id`,
		p.ID, p.OrderID, p.UserID, p.AmountCents, p.Currency, string(p.Status), p.CardLast4, p.DeclineReason,
		sqldb.Stamp(p.CreatedAt), sqldb.Stamp(p.UpdatedAt))
	// The clause covers order_id; a taken id (a clash of random ids) is
	// refused as a unique violation, or on MySQL leaves no row with this
	// order id to read back.
	if sqldb.IsUniqueViolation(err) {
		return fail.Wrap(fail.Conflict, err, "payment id is taken")
	}
	if err != nil {
		return fmt.Errorf("inserting payment: %w", err)
	}
	var id string
	err = s.db.QueryRowContext(ctx, `SELECT id FROM payments WHERE order_id = ?`, p.OrderID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fail.New(fail.Conflict, "payment id is taken")
	}
	if err != nil {
		return fmt.Errorf("reading back payment: %w", err)
	}
	if id != p.ID {
		return fail.New(fail.Conflict, "order already has a payment")
	}
	return nil
}

// ByOrder implements payments.Store.
func (s *Store) ByOrder(ctx context.Context, orderID string) (payments.Payment, error) {
	return scanOne(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM payments WHERE order_id = ?`, orderID))
}

// SetStatus implements payments.Store. The update, the events and the read
// that answers it share a transaction, so the answer is the state the update
// left and the events are stored only if it moved the payment. Of two moves
// racing each other the second's update waits for the first's row, then
// finds it moved on and matches nothing: a payment is refunded once.
func (s *Store) SetStatus(ctx context.Context, orderID string, from, to payments.Status, at time.Time, events ...event.Event) (payments.Payment, bool, error) {
	var (
		p     payments.Payment
		moved bool
	)
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx,
			`UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ? AND status = ?`,
			string(to), sqldb.Stamp(at), orderID, string(from))
		if err != nil {
			return fmt.Errorf("updating payment status: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("updating payment status: %w", err)
		}
		if moved = n > 0; moved {
			if err := outbox.Add(ctx, s.db, events...); err != nil {
				return err
			}
		}
		p, err = scanOne(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM payments WHERE order_id = ?`, orderID))
		return err
	})
	if err != nil {
		return payments.Payment{}, false, err
	}
	return p, moved, nil
}

// Announce implements payments.Store.
func (s *Store) Announce(ctx context.Context, events ...event.Event) error {
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		return outbox.Add(ctx, s.db, events...)
	})
}

// SaveCard implements payments.Store.
func (s *Store) SaveCard(ctx context.Context, token, number string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO cards (token, number, created_at) VALUES (?, ?, ?)`,
		token, number, sqldb.Stamp(at)); err != nil {
		return fmt.Errorf("storing card: %w", err) // the error never holds the number: it is a bound argument
	}
	return nil
}

// CardNumber implements payments.Store.
func (s *Store) CardNumber(ctx context.Context, token string) (string, error) {
	var number string
	err := s.db.QueryRowContext(ctx, `SELECT number FROM cards WHERE token = ?`, token).Scan(&number)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fail.New(fail.NotFound, "card not found")
	}
	if err != nil {
		return "", fmt.Errorf("reading card: %w", err)
	}
	return number, nil
}

// List implements payments.Store.
func (s *Store) List(ctx context.Context, q payments.ListQuery) ([]payments.Payment, error) {
	var (
		where []string
		args  []any
	)
	if q.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, q.UserID)
	}
	if q.After != "" {
		where = append(where, "id > ?")
		args = append(args, q.After)
	}
	query := `SELECT ` + columns + ` FROM payments`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, q.Limit)

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing payments: %w", err)
	}
	defer rows.Close()
	out := []payments.Payment{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing payments: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanOne(row *sql.Row) (payments.Payment, error) {
	p, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return payments.Payment{}, fail.New(fail.NotFound, "payment not found")
	}
	return p, err
}

func scan(row scanner) (payments.Payment, error) {
	var (
		p                payments.Payment
		status           string
		created, updated string
	)
	err := row.Scan(&p.ID, &p.OrderID, &p.UserID, &p.AmountCents, &p.Currency, &status, &p.CardLast4,
		&p.DeclineReason, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return payments.Payment{}, err
	}
	if err != nil {
		return payments.Payment{}, fmt.Errorf("reading payment: %w", err)
	}
	p.Status = payments.Status(status)
	if p.CreatedAt, err = sqldb.ParseStamp(created); err != nil {
		return payments.Payment{}, fmt.Errorf("reading payment %s created_at: %w", p.ID, err)
	}
	if p.UpdatedAt, err = sqldb.ParseStamp(updated); err != nil {
		return payments.Payment{}, fmt.Errorf("reading payment %s updated_at: %w", p.ID, err)
	}
	return p, nil
}
