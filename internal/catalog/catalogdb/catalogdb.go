// Package catalogdb stores the catalog service's products and its outgoing
// events in its own SQL database. The events go to the transactional outbox
// (package outbox), whose migrations must be applied to the same database
// with outbox.Migrate. The catalog's own store is documents (catalogdoc);
// this one runs when MICROSHOP_CATALOG_DB_URL is an sqlite:// URL.
package catalogdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
)

// Migrations holds the schema, one folder per SQL dialect.
//
//go:embed migrations
var Migrations embed.FS

// Store is a catalog.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ catalog.Store = (*Store)(nil)

// New returns a store over db, whose migrations must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

const productColumns = `id, sku, name, description, category, price_cents, currency, created_at, updated_at`

// Create implements catalog.Store.
func (s *Store) Create(ctx context.Context, p catalog.Product, events ...event.Event) error {
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx,
			`INSERT INTO products (`+productColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.SKU, p.Name, p.Description, p.Category, p.PriceCents, p.Currency,
			formatTime(p.CreatedAt), formatTime(p.UpdatedAt))
		if err != nil {
			if sqldb.IsUniqueViolation(err) && strings.Contains(err.Error(), "sku") {
				return fail.New(fail.Conflict, "a product with sku %s already exists", p.SKU)
			}
			return fmt.Errorf("inserting product: %w", err)
		}
		return outbox.Add(ctx, s.db, events...)
	})
}

// ByID implements catalog.Store.
func (s *Store) ByID(ctx context.Context, id string) (catalog.Product, error) {
	return one(s.db.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE id = ?`, id))
}

// BySKU implements catalog.Store.
func (s *Store) BySKU(ctx context.Context, sku string) (catalog.Product, error) {
	return one(s.db.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE sku = ?`, sku))
}

// List implements catalog.Store.
func (s *Store) List(ctx context.Context, after string, limit int) ([]catalog.Product, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+productColumns+` FROM products WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	defer rows.Close()
	products := []catalog.Product{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, err
		}
		products = append(products, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	return products, nil
}

// UpdatePrice implements catalog.Store. The update, the events and the read
// of the result share a transaction, so the answer is the product as this
// update left it and the events are stored only if it changed the price.
func (s *Store) UpdatePrice(ctx context.Context, id string, fromCents, toCents int64, at time.Time, events ...event.Event) (catalog.Product, error) {
	var p catalog.Product
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx,
			`UPDATE products SET price_cents = ?, updated_at = ? WHERE id = ? AND price_cents = ?`,
			toCents, formatTime(at), id, fromCents)
		if err != nil {
			return fmt.Errorf("updating price of product %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("updating price of product %s: %w", id, err)
		}
		p, err = one(s.db.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if n == 0 {
			return fail.New(fail.Conflict, "the price of product %s is no longer %d", id, fromCents)
		}
		return outbox.Add(ctx, s.db, events...)
	})
	if err != nil {
		return catalog.Product{}, err
	}
	return p, nil
}

// one reads the single product a query found.
func one(row *sql.Row) (catalog.Product, error) {
	p, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return catalog.Product{}, notFound()
	}
	return p, err
}

func scan(row interface{ Scan(...any) error }) (catalog.Product, error) {
	var (
		p                catalog.Product
		created, updated string
	)
	err := row.Scan(&p.ID, &p.SKU, &p.Name, &p.Description, &p.Category, &p.PriceCents, &p.Currency, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return catalog.Product{}, err
	}
	if err != nil {
		return catalog.Product{}, fmt.Errorf("reading product: %w", err)
	}
	if p.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return catalog.Product{}, fmt.Errorf("reading created_at of product %s: %w", p.ID, err)
	}
	if p.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
		return catalog.Product{}, fmt.Errorf("reading updated_at of product %s: %w", p.ID, err)
	}
	return p, nil
}

func notFound() error { return fail.New(fail.NotFound, "product not found") }

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
