// Package legacydb stores the monolith's customers, orders and handovers in
// its one SQL database, and stamps every write with a change number that the
// export pages on.
//
// # Change numbers
//
// Every write transaction begins with
//
//	UPDATE changes SET seq = seq + 1 WHERE name = 'all'
//
// and reads the number back, then stamps the rows it writes with it. The
// UPDATE locks the counter's one row until the transaction ends, so writers
// take their numbers one after another, each after the one before has
// committed or rolled back: the numbers grow in commit order. An export that
// reads seq > after therefore never misses a committed row: every row with a
// smaller number than one it sees had committed before that one took its
// number. (A sequence or an auto-increment would not do: those hand out
// numbers at once, and a transaction with a smaller one may commit later.)
// The price is that the monolith's writes run one at a time, as they did in
// the old shop.
//
// The same lock makes a handover airtight: recording one is a write too, so
// a write for the domain either committed before it (the facade's export
// after the handover sees it) or sees it and is refused.
package legacydb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/sqldb"
)

// Migrations holds the schema, one folder per SQL dialect.
//
//go:embed migrations
var Migrations embed.FS

// Store is a legacy.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ legacy.Store = (*Store)(nil)

// New returns a store over db, whose migrations must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// next takes the next change number, in the transaction in ctx. It must be
// the first statement of every write transaction: see the package comment.
func (s *Store) next(ctx context.Context) (int64, error) {
	if _, err := s.db.ExecContext(ctx, `UPDATE changes SET seq = seq + 1 WHERE name = 'all'`); err != nil {
		return 0, fmt.Errorf("taking a change number: %w", err)
	}
	var seq int64
	if err := s.db.QueryRowContext(ctx, `SELECT seq FROM changes WHERE name = 'all'`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the change number: %w", err)
	}
	return seq, nil
}

// writing begins a write for domain in the transaction in ctx: it takes the
// change number, and then, holding the counter's lock, refuses with a
// *legacy.Moved if the domain was handed over.
func (s *Store) writing(ctx context.Context, domain string) (int64, error) {
	seq, err := s.next(ctx)
	if err != nil {
		return 0, err
	}
	h, err := s.Handover(ctx, domain)
	switch {
	case err == nil:
		return 0, &legacy.Moved{Domain: h.Domain, Service: h.Service}
	case !fail.Is(err, fail.NotFound):
		return 0, err
	}
	return seq, nil
}

// Customer implements legacy.Store.
func (s *Store) Customer(ctx context.Context, id string) (legacy.Customer, error) {
	var c legacy.Customer
	err := s.db.QueryRowContext(ctx, `SELECT id, name, email FROM customers WHERE id = ?`, id).Scan(&c.ID, &c.Name, &c.Email)
	if errors.Is(err, sql.ErrNoRows) {
		return legacy.Customer{}, fail.New(fail.NotFound, "customer not found")
	}
	if err != nil {
		return legacy.Customer{}, fmt.Errorf("reading customer: %w", err)
	}
	return c, nil
}

// Enrol implements legacy.Store. Two first visits at once both insert;
// the second finds the first's row and answers it.
func (s *Store) Enrol(ctx context.Context, c legacy.Customer) (legacy.Customer, error) {
	var stored legacy.Customer
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		seq, err := s.writing(ctx, legacy.DomainProfiles)
		if err != nil {
			return err
		}
		now := sqldb.Stamp(time.Now())
		if _, err := s.db.ExecContext(ctx, s.db.Dialect.InsertIgnore("customers", "id", "name", "email", "seq", "created_at", "updated_at"),
			c.ID, c.Name, c.Email, seq, now, now); err != nil {
			return fmt.Errorf("enrolling customer: %w", err)
		}
		stored, err = s.Customer(ctx, c.ID)
		return err
	})
	if err != nil {
		return legacy.Customer{}, err
	}
	return stored, nil
}

// Rename implements legacy.Store.
func (s *Store) Rename(ctx context.Context, id, name string) (legacy.Customer, error) {
	var stored legacy.Customer
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		seq, err := s.writing(ctx, legacy.DomainProfiles)
		if err != nil {
			return err
		}
		res, err := s.db.ExecContext(ctx, `UPDATE customers SET name = ?, seq = ?, updated_at = ? WHERE id = ?`,
			name, seq, sqldb.Stamp(time.Now()), id)
		if err != nil {
			return fmt.Errorf("renaming customer: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("renaming customer: %w", err)
		} else if n == 0 {
			return fail.New(fail.NotFound, "customer not found")
		}
		stored, err = s.Customer(ctx, id)
		return err
	})
	if err != nil {
		return legacy.Customer{}, err
	}
	return stored, nil
}

// PlaceOrder implements legacy.Store.
func (s *Store) PlaceOrder(ctx context.Context, o legacy.Order) error {
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		seq, err := s.writing(ctx, legacy.DomainOrders)
		if err != nil {
			return err
		}
		a := o.DeliverTo
		_, err = s.db.ExecContext(ctx, `INSERT INTO orders (order_no, customer_id, status, total_cents, currency, card_last4, placed_at,
			deliver_name, deliver_line1, deliver_city, deliver_postal_code, deliver_country, seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.No, o.CustomerID, string(o.Status), o.TotalCents, o.Currency, o.CardLast4, sqldb.Stamp(o.PlacedAt),
			a.Name, a.Line1, a.City, a.PostalCode, a.Country, seq)
		if err != nil {
			return fmt.Errorf("inserting order: %w", err)
		}
		for i, l := range o.Lines {
			if _, err := s.db.ExecContext(ctx, `INSERT INTO order_lines (order_no, line_no, product_id, qty, unit_price_cents) VALUES (?, ?, ?, ?, ?)`,
				o.No, i+1, l.ProductID, l.Qty, l.UnitPriceCents); err != nil {
				return fmt.Errorf("inserting order line: %w", err)
			}
		}
		return nil
	})
}

const orderColumns = `order_no, customer_id, status, total_cents, currency, card_last4, placed_at,
	deliver_name, deliver_line1, deliver_city, deliver_postal_code, deliver_country, seq`

// Order implements legacy.Store.
func (s *Store) Order(ctx context.Context, no string) (legacy.Order, error) {
	list, err := s.orders(ctx, `SELECT `+orderColumns+` FROM orders WHERE order_no = ?`, no)
	if err != nil {
		return legacy.Order{}, err
	}
	if len(list) == 0 {
		return legacy.Order{}, fail.New(fail.NotFound, "order not found")
	}
	return list[0].Item, nil
}

// OrdersOf implements legacy.Store. Order numbers are UUIDv7s, so they break
// ties between orders placed at the same instant in the order they were made.
func (s *Store) OrdersOf(ctx context.Context, customerID string, limit int) ([]legacy.Order, error) {
	list, err := s.orders(ctx, `SELECT `+orderColumns+` FROM orders WHERE customer_id = ?
		ORDER BY placed_at DESC, order_no DESC LIMIT ?`, customerID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]legacy.Order, 0, len(list))
	for _, o := range list {
		out = append(out, o.Item)
	}
	return out, nil
}

// ExportOrders implements legacy.Store.
func (s *Store) ExportOrders(ctx context.Context, after int64, limit int) ([]legacy.Stamped[legacy.Order], error) {
	return s.orders(ctx, `SELECT `+orderColumns+` FROM orders WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

// orders runs a query for orderColumns and reads the orders it finds, then
// their lines. No transaction is needed to pair them: an order commits with
// its lines and neither changes after, so lines read after their order are
// all there.
func (s *Store) orders(ctx context.Context, query string, args ...any) ([]legacy.Stamped[legacy.Order], error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading orders: %w", err)
	}
	var out []legacy.Stamped[legacy.Order]
	at := map[string]int{}
	for rows.Next() {
		var (
			o      legacy.Order
			status string
			placed string
			seq    int64
			a      = &o.DeliverTo
		)
		if err := rows.Scan(&o.No, &o.CustomerID, &status, &o.TotalCents, &o.Currency, &o.CardLast4, &placed,
			&a.Name, &a.Line1, &a.City, &a.PostalCode, &a.Country, &seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading orders: %w", err)
		}
		o.Status = legacy.Status(status)
		if o.PlacedAt, err = sqldb.ParseStamp(placed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading orders: %w", err)
		}
		at[o.No] = len(out)
		out = append(out, legacy.Stamped[legacy.Order]{Item: o, Seq: seq})
	}
	rows.Close() // before the next statement: a connection runs one at a time
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading orders: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	nos := make([]any, 0, len(out))
	for _, o := range out {
		nos = append(nos, o.Item.No)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT order_no, product_id, qty, unit_price_cents FROM order_lines
		WHERE order_no IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(nos)), ", ")+`) ORDER BY order_no, line_no`, nos...)
	if err != nil {
		return nil, fmt.Errorf("reading order lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			no string
			l  legacy.Line
		)
		if err := rows.Scan(&no, &l.ProductID, &l.Qty, &l.UnitPriceCents); err != nil {
			return nil, fmt.Errorf("reading order lines: %w", err)
		}
		o := &out[at[no]].Item
		o.Lines = append(o.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading order lines: %w", err)
	}
	return out, nil
}

// ExportProfiles implements legacy.Store.
func (s *Store) ExportProfiles(ctx context.Context, after int64, limit int) ([]legacy.Stamped[legacy.Customer], error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, email, seq FROM customers WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("exporting profiles: %w", err)
	}
	defer rows.Close()
	var out []legacy.Stamped[legacy.Customer]
	for rows.Next() {
		var c legacy.Stamped[legacy.Customer]
		if err := rows.Scan(&c.Item.ID, &c.Item.Name, &c.Item.Email, &c.Seq); err != nil {
			return nil, fmt.Errorf("exporting profiles: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("exporting profiles: %w", err)
	}
	return out, nil
}

// Stats implements legacy.Store.
func (s *Store) Stats(ctx context.Context) (legacy.Stats, error) {
	var st legacy.Stats
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM orders)`).
		Scan(&st.Customers, &st.Orders)
	if err != nil {
		return legacy.Stats{}, fmt.Errorf("counting customers and orders: %w", err)
	}
	st.Handovers, err = s.Handovers(ctx)
	if err != nil {
		return legacy.Stats{}, err
	}
	return st, nil
}

// Handover implements legacy.Store.
func (s *Store) Handover(ctx context.Context, domain string) (legacy.Handover, error) {
	var (
		h      legacy.Handover
		handed string
	)
	err := s.db.QueryRowContext(ctx, `SELECT domain, service, handed_at FROM handovers WHERE domain = ?`, domain).
		Scan(&h.Domain, &h.Service, &handed)
	if errors.Is(err, sql.ErrNoRows) {
		return legacy.Handover{}, fail.New(fail.NotFound, "domain %s was not handed over", domain)
	}
	if err != nil {
		return legacy.Handover{}, fmt.Errorf("reading handover: %w", err)
	}
	if h.HandedAt, err = sqldb.ParseStamp(handed); err != nil {
		return legacy.Handover{}, fmt.Errorf("reading handover: %w", err)
	}
	return h, nil
}

// Handovers implements legacy.Store.
func (s *Store) Handovers(ctx context.Context) ([]legacy.Handover, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT domain, service, handed_at FROM handovers ORDER BY handed_at, domain`)
	if err != nil {
		return nil, fmt.Errorf("listing handovers: %w", err)
	}
	defer rows.Close()
	out := []legacy.Handover{}
	for rows.Next() {
		var (
			h      legacy.Handover
			handed string
		)
		if err := rows.Scan(&h.Domain, &h.Service, &handed); err != nil {
			return nil, fmt.Errorf("listing handovers: %w", err)
		}
		if h.HandedAt, err = sqldb.ParseStamp(handed); err != nil {
			return nil, fmt.Errorf("listing handovers: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing handovers: %w", err)
	}
	return out, nil
}

// HandOver implements legacy.Store. It is a write like any other: it takes a
// change number first, so that it waits for the writes in progress and every
// write after it sees it (see the package comment).
func (s *Store) HandOver(ctx context.Context, h legacy.Handover) (legacy.Handover, error) {
	var stored legacy.Handover
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		if _, err := s.next(ctx); err != nil {
			return err
		}
		if _, err := s.db.ExecContext(ctx, s.db.Dialect.InsertIgnore("handovers", "domain", "service", "handed_at"),
			h.Domain, h.Service, sqldb.Stamp(h.HandedAt)); err != nil {
			return fmt.Errorf("recording handover: %w", err)
		}
		var err error
		stored, err = s.Handover(ctx, h.Domain)
		return err
	})
	if err != nil {
		return legacy.Handover{}, err
	}
	return stored, nil
}
