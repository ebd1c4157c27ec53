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
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
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

	onCommit atomic.Pointer[func()]
}

// OnCommit sets fn to run after each transaction this DB commits, e.g. to
// wake the outbox relay at once instead of at its next poll. fn must not
// block.
func (db *DB) OnCommit(fn func()) { db.onCommit.Store(&fn) }

func (db *DB) committed() {
	if fn := db.onCommit.Load(); fn != nil {
		(*fn)()
	}
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
// been applied yet. By default the applied versions are kept in goose's own
// table; a building block that ships its own migration set next to a
// service's passes VersionTable, so that the two sets count their versions
// apart.
func (db *DB) Migrate(ctx context.Context, migrations fs.FS, opts ...MigrateOption) error {
	p, err := db.provider(migrations, opts)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// MigrateDown rolls every migration back; tests use it to prove each can be undone.
func (db *DB) MigrateDown(ctx context.Context, migrations fs.FS, opts ...MigrateOption) error {
	p, err := db.provider(migrations, opts)
	if err != nil {
		return err
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("rolling back migrations: %w", err)
	}
	return nil
}

// MigrateOption changes how Migrate and MigrateDown keep their books.
type MigrateOption func(*migrateConfig)

type migrateConfig struct{ versionTable string }

// VersionTable keeps a migration set's applied versions in the named table
// instead of goose's default one.
func VersionTable(name string) MigrateOption {
	return func(c *migrateConfig) { c.versionTable = name }
}

func (db *DB) provider(migrations fs.FS, opts []MigrateOption) (*goose.Provider, error) {
	var cfg migrateConfig
	for _, o := range opts {
		o(&cfg)
	}
	sub, err := fs.Sub(migrations, "migrations/"+string(db.Dialect))
	if err != nil {
		return nil, fmt.Errorf("finding %s migrations: %w", db.Dialect, err)
	}
	var p *goose.Provider
	if cfg.versionTable == "" {
		p, err = goose.NewProvider(gooseDialect(db.Dialect), db.DB, sub)
	} else {
		var store database.Store
		store, err = database.NewStore(database.Dialect(gooseDialect(db.Dialect)), cfg.versionTable)
		if err != nil {
			return nil, fmt.Errorf("preparing migration table %s: %w", cfg.versionTable, err)
		}
		p, err = goose.NewProvider(goose.DialectCustom, db.DB, sub, goose.WithStore(store))
	}
	if err != nil {
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	return p, nil
}

func gooseDialect(d Dialect) goose.Dialect {
	switch d {
	default:
		return goose.DialectSQLite3
	}
}

// Ping is a health check that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.PingContext(ctx) }

// IsUniqueViolation reports whether err is a unique-constraint violation, in
// any supported dialect.
func IsUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// stampLayout is RFC 3339 in UTC with all nine fractional digits, so that
// stamps compare as text in the order of the times they stand for (the
// trimmed RFC3339Nano does not: "05Z" sorts after "05.1Z").
const stampLayout = "2006-01-02T15:04:05.000000000Z"

// Stamp formats t for a TEXT column: RFC 3339 in UTC, fixed width, so that
// a range or an ORDER BY on the column follows time.
func Stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// ParseStamp reads a time written by Stamp (or any RFC 3339 time).
func ParseStamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading time %q: %w", s, err)
	}
	return t, nil
}
