// Package sqldbtest opens real, migrated databases for tests, on every
// dialect sqldb speaks: SQLite files in the test's own temporary folder, and
// fresh, randomly named databases on the machine's PostgreSQL and MariaDB,
// dropped when the test ends. It also reads what a service put in its
// outbox.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
)

// The machine's servers, as DESIGN.md describes them: trust authentication
// on PostgreSQL, root with no password on MariaDB.
const (
	PostgresAddr = "127.0.0.1:5432"
	MySQLAddr    = "127.0.0.1:3306"
	postgresURL  = "postgres://postgres@" + PostgresAddr + "/%s?sslmode=disable"
	mysqlURL     = "mysql://root@" + MySQLAddr + "/%s"
)

// Open opens a fresh SQLite database called name in t.TempDir(), closed
// when the test ends, and applies each migration set in order, all counted
// in goose's default version table.
func Open(t testing.TB, name string, migrations ...fs.FS) *sqldb.DB {
	t.Helper()
	return OpenOn(t, sqldb.SQLite, name, migrations...)
}

// OpenMessaging is Open followed by the messaging migrations (outbox, inbox,
// dead letters), applied as outbox.Migrate applies them, in their own
// version table: a database as a service that publishes or consumes events
// has it.
func OpenMessaging(t testing.TB, name string, migrations ...fs.FS) *sqldb.DB {
	t.Helper()
	return OpenMessagingOn(t, sqldb.SQLite, name, migrations...)
}

// OpenOn opens a fresh, empty database of dialect d, closed (and, on a
// server, dropped) when the test ends, and applies each migration set in
// order. name is the SQLite file's name, and a readable part of a server
// database's random one. Without the server the test is skipped, naming it;
// with CI=true it fails instead.
func OpenOn(t testing.TB, d sqldb.Dialect, name string, migrations ...fs.FS) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, URL(t, d, name))
	if err != nil {
		t.Fatalf("opening %s database %s: %v", d, name, err)
	}
	t.Cleanup(func() { _ = db.Close() }) // before the database is dropped: cleanups run last in, first out
	for i, m := range migrations {
		if err := db.Migrate(ctx, m); err != nil {
			t.Fatalf("migrating %s database %s with migration set %d: %v", d, name, i+1, err)
		}
	}
	return db
}

// OpenMessagingOn is OpenOn followed by the messaging migrations.
func OpenMessagingOn(t testing.TB, d sqldb.Dialect, name string, migrations ...fs.FS) *sqldb.DB {
	t.Helper()
	db := OpenOn(t, d, name, migrations...)
	if err := outbox.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating %s database %s: %v", d, name, err)
	}
	return db
}

// ForEachDialect runs fn as a subtest per dialect, named after it. A subtest
// whose server is absent is skipped (failed under CI=true) by OpenOn or URL.
func ForEachDialect(t *testing.T, fn func(t *testing.T, d sqldb.Dialect)) {
	t.Helper()
	for _, d := range sqldb.Dialects {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

// MigrationsRoundTrip proves a migration set on every dialect: applied to
// an empty database, rolled all the way back, and applied again.
func MigrationsRoundTrip(t *testing.T, migrations fs.FS, opts ...sqldb.MigrateOption) {
	t.Helper()
	ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := OpenOn(t, d, "migrations")
		ctx := context.Background()
		for i, step := range []func() error{
			func() error { return db.Migrate(ctx, migrations, opts...) },
			func() error { return db.MigrateDown(ctx, migrations, opts...) },
			func() error { return db.Migrate(ctx, migrations, opts...) },
		} {
			if err := step(); err != nil {
				t.Fatalf("%s: step %d of up, down, up: %v", d, i+1, err)
			}
		}
	})
}

// URL returns the URL of a fresh, empty database of dialect d for this
// test: a file in t.TempDir() for SQLite, a database created with a random
// name on the machine's server otherwise, dropped when the test ends.
// Without the server the test is skipped, naming it; with CI=true it fails.
func URL(t testing.TB, d sqldb.Dialect, name string) string {
	t.Helper()
	switch d {
	case sqldb.Postgres:
		require(t, "PostgreSQL", PostgresAddr)
		return create(t, d, "postgres", name, postgresURL)
	case sqldb.MySQL:
		require(t, "MariaDB (MySQL)", MySQLAddr)
		return create(t, d, "mysql", name, mysqlURL)
	default:
		return "sqlite://" + filepath.Join(t.TempDir(), name+".db")
	}
}

// require skips the test when nothing listens at addr, or fails it under CI,
// where every server must be there.
func require(t testing.TB, server, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := server + " is not reachable at " + addr + " (" + err.Error() + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipping")
}

// create makes a database with a random name on the server, through its
// administrative database admin, and drops it when the test ends.
func create(t testing.TB, d sqldb.Dialect, admin, name, urlPattern string) string {
	t.Helper()
	ctx := context.Background()
	root, err := sqldb.Open(ctx, fmt.Sprintf(urlPattern, admin))
	if err != nil {
		t.Fatalf("connecting to the %s server: %v", d, err)
	}
	defer root.Close()
	dbName := "mstest_" + sanitize(name) + "_" + random()
	if _, err := root.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatalf("creating %s database %s: %v", d, dbName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		root, err := sqldb.Open(ctx, fmt.Sprintf(urlPattern, admin))
		if err != nil {
			t.Errorf("connecting to the %s server to drop %s: %v", d, dbName, err)
			return
		}
		defer root.Close()
		drop := "DROP DATABASE IF EXISTS " + dbName
		if d == sqldb.Postgres {
			drop += " WITH (FORCE)" // connections a test leaked must not keep it
		}
		if _, err := root.ExecContext(ctx, drop); err != nil {
			t.Errorf("dropping %s database %s: %v", d, dbName, err)
		}
	})
	return fmt.Sprintf(urlPattern, dbName)
}

// sanitize keeps what a database name may hold unquoted on both servers.
func sanitize(name string) string {
	out := make([]byte, 0, 16)
	for i := 0; i < len(name) && len(out) < 16; i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			out = append(out, c)
		case c >= 'A' && c <= 'Z':
			out = append(out, c+'a'-'A')
		default:
			out = append(out, '_')
		}
	}
	return string(out)
}

func random() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Outbox returns the events in db's outbox, oldest first, published or not.
func Outbox(t testing.TB, db *sqldb.DB) []event.Event {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT envelope FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	defer rows.Close()
	var out []event.Event
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			t.Fatalf("reading the outbox: %v", err)
		}
		var e event.Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("decoding an outbox envelope: %v", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	return out
}
