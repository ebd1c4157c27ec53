// Package userdb stores the users service's accounts and its outgoing events
// in its own SQL database. The events go to the transactional outbox
// (package outbox), whose migrations must be applied to the same database
// with outbox.Migrate.
package userdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/users"
)

// Migrations holds the schema, one folder per SQL dialect.
//
//go:embed migrations
var Migrations embed.FS

// Store is a users.Store on SQL.
type Store struct{ db *sqldb.DB }

var _ users.Store = (*Store)(nil)

// New returns a store over db, whose migrations must have been applied.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// Create implements users.Store.
func (s *Store) Create(ctx context.Context, u users.User, events ...event.Event) error {
	return s.db.Atomic(ctx, func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx,
			`INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			u.ID, u.Email, u.Name, u.Role, u.PasswordHash, u.CreatedAt.Format(time.RFC3339Nano))
		if err != nil {
			if sqldb.IsUniqueViolation(err) {
				return fail.New(fail.Conflict, "email is already registered")
			}
			return fmt.Errorf("inserting user: %w", err)
		}
		return outbox.Add(ctx, s.db, events...)
	})
}

// Rename implements users.Store. The conditional UPDATE makes "only if the
// name differs" part of the write itself: two concurrent renames to one
// name change it once and announce it once.
func (s *Store) Rename(ctx context.Context, renamings ...users.Renaming) ([]string, error) {
	var missing []string
	err := s.db.Atomic(ctx, func(ctx context.Context) error {
		missing = nil // a unit that lost a deadlock runs again
		for _, r := range renamings {
			res, err := s.db.ExecContext(ctx, `UPDATE users SET name = ? WHERE id = ? AND name <> ?`, r.Name, r.UserID, r.Name)
			if err != nil {
				return fmt.Errorf("renaming user %s: %w", r.UserID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("renaming user %s: %w", r.UserID, err)
			}
			if n == 1 {
				if err := outbox.Add(ctx, s.db, r.Event); err != nil {
					return err
				}
				continue
			}
			// Unchanged: the name was already this one, or there is no such user.
			var one int
			err = s.db.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, r.UserID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				missing = append(missing, r.UserID)
				continue
			}
			if err != nil {
				return fmt.Errorf("reading user %s: %w", r.UserID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return missing, nil
}

// ByEmail implements users.Store.
func (s *Store) ByEmail(ctx context.Context, email string) (users.User, error) {
	return s.one(ctx, `SELECT id, email, name, role, password_hash, created_at FROM users WHERE email = ?`, email)
}

// ByID implements users.Store.
func (s *Store) ByID(ctx context.Context, id string) (users.User, error) {
	return s.one(ctx, `SELECT id, email, name, role, password_hash, created_at FROM users WHERE id = ?`, id)
}

func (s *Store) one(ctx context.Context, query string, arg any) (users.User, error) {
	var (
		u       users.User
		created string
	)
	err := s.db.QueryRowContext(ctx, query, arg).Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return users.User{}, fail.New(fail.NotFound, "user not found")
	}
	if err != nil {
		return users.User{}, fmt.Errorf("reading user: %w", err)
	}
	u.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return u, nil
}
