// Package sqldb opens a service's SQL database from a URL, applies the
// service's embedded migrations for that dialect, and runs transactions. Each
// service owns its database; this package only knows how to reach one.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names a family of SQL.
type Dialect string

// The dialects microshop's stores are written for.
const (
	SQLite Dialect = "sqlite"
)

// DB is an open database with the dialect its SQL must be written in.
type DB struct {
	*sql.DB
	Dialect Dialect
}

// Open connects to the database at rawURL. An sqlite:// URL (or a plain file
// path) opens a file in WAL mode with a busy timeout, creating its folder;
// write transactions take the lock when they begin, so two writers wait for
// each other instead of failing half-way.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	dialect, dsn, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch dialect {
	case SQLite:
		if err := os.MkdirAll(filepath.Dir(dsn), 0o750); err != nil {
			return nil, fmt.Errorf("creating database folder: %w", err)
		}
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		db, err = sql.Open("sqlite", "file:"+dsn+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("opening sqlite %s: %w", dsn, err)
		}
		db.SetMaxOpenConns(8)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("reaching %s database: %w", dialect, err)
	}
	return &DB{DB: db, Dialect: dialect}, nil
}

func parse(rawURL string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		return SQLite, strings.TrimPrefix(rawURL, "sqlite://"), nil
	case strings.HasPrefix(rawURL, "file:"):
		return SQLite, strings.TrimPrefix(rawURL, "file:"), nil
	case strings.Contains(rawURL, "://"):
		return "", "", fmt.Errorf("database URL %q: unsupported scheme", redact(rawURL))
	case rawURL == "":
		return "", "", errors.New("database URL is empty")
	default:
		return SQLite, rawURL, nil
	}
}

// redact hides a password in a database URL so it can be logged.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Migrate applies every migration in migrations/<dialect> of fsys that has not
// been applied yet.
func (db *DB) Migrate(ctx context.Context, migrations fs.FS) error {
	sub, err := fs.Sub(migrations, "migrations/"+string(db.Dialect))
	if err != nil {
		return fmt.Errorf("finding %s migrations: %w", db.Dialect, err)
	}
	p, err := goose.NewProvider(gooseDialect(db.Dialect), db.DB, sub)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// MigrateDown rolls every migration back; tests use it to prove each can be undone.
func (db *DB) MigrateDown(ctx context.Context, migrations fs.FS) error {
	sub, err := fs.Sub(migrations, "migrations/"+string(db.Dialect))
	if err != nil {
		return fmt.Errorf("finding %s migrations: %w", db.Dialect, err)
	}
	p, err := goose.NewProvider(gooseDialect(db.Dialect), db.DB, sub)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("rolling back migrations: %w", err)
	}
	return nil
}

func gooseDialect(d Dialect) goose.Dialect {
	switch d {
	default:
		return goose.DialectSQLite3
	}
}

// InTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// Ping is a health check that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.PingContext(ctx) }

// IsUniqueViolation reports whether err is a unique-constraint violation, in
// any supported dialect.
func IsUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
