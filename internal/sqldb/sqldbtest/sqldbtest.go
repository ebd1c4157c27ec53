// Package sqldbtest opens real, migrated SQLite databases for tests, each in
// the test's own temporary folder, and reads what a service put in its
// outbox.
package sqldbtest

import (
	"context"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
)

// Open opens a fresh SQLite database called name in t.TempDir(), closed
// when the test ends, and applies each migration set in order, all counted
// in goose's default version table.
func Open(t testing.TB, name string, migrations ...fs.FS) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), name+".db"))
	if err != nil {
		t.Fatalf("opening database %s: %v", name, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for i, m := range migrations {
		if err := db.Migrate(ctx, m); err != nil {
			t.Fatalf("migrating database %s with migration set %d: %v", name, i+1, err)
		}
	}
	return db
}

// OpenMessaging is Open followed by the messaging migrations (outbox, inbox,
// dead letters), applied as outbox.Migrate applies them, in their own
// version table: a database as a service that publishes or consumes events
// has it.
func OpenMessaging(t testing.TB, name string, migrations ...fs.FS) *sqldb.DB {
	t.Helper()
	db := Open(t, name, migrations...)
	if err := outbox.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating database %s: %v", name, err)
	}
	return db
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
