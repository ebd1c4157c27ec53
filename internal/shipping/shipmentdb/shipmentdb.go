// Package shipmentdb stores the shipping service's shipments in its own SQL
// database, each change in one transaction together with the events that
// announce it.
package shipmentdb

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
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/sqldb"
)

// Migrations holds the schema, one folder per SQL dialect. The outbox and
// inbox tables are not in it: apply outbox.Migrate to the same database.
//
//go:embed migrations
var Migrations embed.FS

// Store is a shipping.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ shipping.Store = (*Store)(nil)

// New returns a store over db, whose migrations (Migrations and
// outbox.Migrate) must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// Atomic implements shipping.Store with a transaction of the database, or a
// savepoint of the one ctx already carries (a consumer's inbox transaction).
func (s *Store) Atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.Atomic(ctx, fn)
}

// Publish implements shipping.Store with the transactional outbox.
func (s *Store) Publish(ctx context.Context, events ...event.Event) error {
	return outbox.Add(ctx, s.db, events...)
}

// MergeIntent implements shipping.Store with one upsert, so that two events
// of an order applied at once cannot both miss the other's part: the second
// waits for the first's row and merges into it. The user and address are
// taken only from the first intent that brings them (Created). The merged
// row is read back in the same unit, while the upsert's lock on it is held.
func (s *Store) MergeIntent(ctx context.Context, in shipping.Intent, at time.Time) (shipping.Intent, error) {
	d := s.db.Dialect
	// keep is a column's stored value once the order was seen, else the
	// incoming one. MySQL assigns the SET list from left to right, each
	// assignment seeing the ones before it, so created is assigned after
	// every keep that reads it.
	keep := func(col string) string {
		return col + " = CASE WHEN delivery_intents.created = 1 THEN delivery_intents." + col + " ELSE " + d.Excluded(col) + " END"
	}
	upsert := `
		INSERT INTO delivery_intents (order_id, saga, user_id, name, line1, city, postal_code, country,
			created, reserved, paid, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		` + d.OnConflictUpdate("order_id") + `
			` + keep("user_id") + `,
			` + keep("name") + `,
			` + keep("line1") + `,
			` + keep("city") + `,
			` + keep("postal_code") + `,
			` + keep("country") + `,
			created    = ` + d.Greatest("delivery_intents.created", d.Excluded("created")) + `,
			reserved   = ` + d.Greatest("delivery_intents.reserved", d.Excluded("reserved")) + `,
			paid       = ` + d.Greatest("delivery_intents.paid", d.Excluded("paid")) + `,
			updated_at = ` + d.Excluded("updated_at")
	a := in.Address
	got := shipping.Intent{OrderID: in.OrderID}
	g := &got.Address
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, upsert,
			in.OrderID, string(in.Saga), in.UserID, a.Name, a.Line1, a.City, a.PostalCode, a.Country,
			flag(in.Created), flag(in.Reserved), flag(in.Paid), sqldb.Stamp(at), sqldb.Stamp(at))
		if err != nil {
			return err
		}
		return s.db.QueryRowContext(ctx, `
			SELECT saga, user_id, name, line1, city, postal_code, country, created, reserved, paid
			FROM delivery_intents WHERE order_id = ?`, in.OrderID,
		).Scan(&got.Saga, &got.UserID, &g.Name, &g.Line1, &g.City, &g.PostalCode, &g.Country, &got.Created, &got.Reserved, &got.Paid)
	})
	if err != nil {
		return shipping.Intent{}, fmt.Errorf("recording the intent of order %s: %w", in.OrderID, err)
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

const columns = `id, order_id, user_id, status, name, line1, city, postal_code, country, created_at, updated_at`

// Create implements shipping.Store. The unique order_id turns a second
// shipment for an order into fail.Conflict.
func (s *Store) Create(ctx context.Context, sh shipping.Shipment) error {
	// Its own unit, so that inside a caller's transaction the refused insert
	// is undone alone and the caller can go on (PostgreSQL would otherwise
	// abort the whole transaction).
	return s.db.Atomic(ctx, func(ctx context.Context) error { return s.create(ctx, sh) })
}

// create inserts sh. A clash on order_id "updates" the key to itself rather
// than failing, and the shipment is known to be sh only if the order's row
// carries sh's id. That way the existing row ends locked for writing until
// the unit of work ends, on every dialect: on MySQL an INSERT refused for a
// taken key keeps only a shared lock on the row, and two cancels that go on
// to update it (each after its tombstone lost to the schedule) would
// deadlock.
func (s *Store) create(ctx context.Context, sh shipping.Shipment) error {
	a := sh.Address
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO shipments (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) `+
			s.db.Dialect.OnConflictUpdate("order_id")+` order_id = shipments.order_id`,
		sh.ID, sh.OrderID, sh.UserID, string(sh.Status), a.Name, a.Line1, a.City, a.PostalCode, a.Country,
		sqldb.Stamp(sh.CreatedAt), sqldb.Stamp(sh.UpdatedAt))
	// The clause covers order_id; a taken id (a clash of random ids) is
	// refused as a unique violation, or on MySQL leaves no row with
	// this order id to read back.
	if sqldb.IsUniqueViolation(err) {
		return fail.Wrap(fail.Conflict, err, "shipment id is taken")
	}
	if err != nil {
		return fmt.Errorf("inserting shipment: %w", err)
	}
	var id string
	err = s.db.QueryRowContext(ctx, `SELECT id FROM shipments WHERE order_id = ?`, sh.OrderID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fail.New(fail.Conflict, "shipment id is taken")
	}
	if err != nil {
		return fmt.Errorf("reading back shipment: %w", err)
	}
	if id != sh.ID {
		return fail.New(fail.Conflict, "order already has a shipment")
	}
	return nil
}

// ByOrder implements shipping.Store.
func (s *Store) ByOrder(ctx context.Context, orderID string) (shipping.Shipment, error) {
	return scanOne(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM shipments WHERE order_id = ?`, orderID))
}

// SetStatus implements shipping.Store. The update and the read that answers
// it share a unit of work, so the answer is the state the update left: a
// second update racing this one waits for its row and then finds the status
// moved on.
func (s *Store) SetStatus(ctx context.Context, orderID string, from, to shipping.Status, at time.Time) (shipping.Shipment, error) {
	var sh shipping.Shipment
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		if _, err := s.db.ExecContext(ctx,
			`UPDATE shipments SET status = ?, updated_at = ? WHERE order_id = ? AND status = ?`,
			string(to), sqldb.Stamp(at), orderID, string(from)); err != nil {
			return fmt.Errorf("updating shipment status: %w", err)
		}
		var err error
		sh, err = scanOne(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM shipments WHERE order_id = ?`, orderID))
		return err
	})
	if err != nil {
		return shipping.Shipment{}, err
	}
	return sh, nil
}

// List implements shipping.Store.
func (s *Store) List(ctx context.Context, q shipping.ListQuery) ([]shipping.Shipment, error) {
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
	query := `SELECT ` + columns + ` FROM shipments`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, q.Limit)

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing shipments: %w", err)
	}
	defer rows.Close()
	out := []shipping.Shipment{}
	for rows.Next() {
		sh, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing shipments: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanOne(row *sql.Row) (shipping.Shipment, error) {
	sh, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return shipping.Shipment{}, fail.New(fail.NotFound, "shipment not found")
	}
	return sh, err
}

func scan(row scanner) (shipping.Shipment, error) {
	var (
		sh               shipping.Shipment
		a                = &sh.Address
		status           string
		created, updated string
	)
	err := row.Scan(&sh.ID, &sh.OrderID, &sh.UserID, &status, &a.Name, &a.Line1, &a.City, &a.PostalCode, &a.Country,
		&created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return shipping.Shipment{}, err
	}
	if err != nil {
		return shipping.Shipment{}, fmt.Errorf("reading shipment: %w", err)
	}
	sh.Status = shipping.Status(status)
	if sh.CreatedAt, err = sqldb.ParseStamp(created); err != nil {
		return shipping.Shipment{}, fmt.Errorf("reading shipment %s created_at: %w", sh.ID, err)
	}
	if sh.UpdatedAt, err = sqldb.ParseStamp(updated); err != nil {
		return shipping.Shipment{}, fmt.Errorf("reading shipment %s updated_at: %w", sh.ID, err)
	}
	return sh, nil
}
