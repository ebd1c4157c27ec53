// Package outbox is the transactional outbox: a service writes the events of
// a state change into its own database in the transaction of that change, and
// a relay publishes them to the broker afterwards, so that every committed
// event is published at least once and no event of a rolled-back change ever
// is.
//
// The package also owns the schema of the consuming side (the inbox and the
// dead letters, used by package inbox): every service that takes part in
// messaging applies one migration set, with Migrate.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/telemetry"
)

// Migrations holds the messaging tables, one folder per SQL dialect: the
// outbox and its relay lease (00001), the inbox and the dead letters (00002).
//
//go:embed migrations
var Migrations embed.FS

// VersionTable keeps the messaging migrations' versions apart from the
// service's own, so the two sets can be numbered and applied independently.
const VersionTable = "goose_messaging"

// Migrate applies the messaging migrations to db, next to whatever
// migrations the service has applied of its own.
func Migrate(ctx context.Context, db *sqldb.DB) error {
	if err := db.Migrate(ctx, Migrations, sqldb.VersionTable(VersionTable)); err != nil {
		return fmt.Errorf("migrating messaging tables: %w", err)
	}
	return nil
}

// MigrateDown rolls the messaging migrations back; tests use it to prove
// each can be undone.
func MigrateDown(ctx context.Context, db *sqldb.DB) error {
	if err := db.MigrateDown(ctx, Migrations, sqldb.VersionTable(VersionTable)); err != nil {
		return fmt.Errorf("rolling back messaging tables: %w", err)
	}
	return nil
}

// ErrNoTransaction is returned by Add called without a transaction of db in
// its context: the events would be stored whether or not the state change
// they announce commits, which is the bug the outbox exists to prevent.
var ErrNoTransaction = errors.New("outbox.Add needs the state change's transaction in its context (run it in db.Atomic, or db.WithTx in an InTx callback)")

// Add stores events in the outbox within db's ambient transaction in ctx,
// so that they commit with the caller's state change or not at all. Each
// event must be a valid envelope with an id of its own; the relay publishes
// them in the order they were added.
func Add(ctx context.Context, db *sqldb.DB, events ...event.Event) error {
	if len(events) == 0 {
		return nil
	}
	if _, ok := db.TxFrom(ctx); !ok {
		return ErrNoTransaction
	}
	now := sqldb.Stamp(time.Now())
	trace := telemetry.TraceParent(ctx) // the work that made the events, carried across the broker
	for _, e := range events {
		if e.TraceParent == "" {
			e.TraceParent = trace
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("adding event to the outbox: %w", err)
		}
		envelope, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", e.ID, err)
		}
		if _, err := db.ExecContext(ctx,
			`INSERT INTO outbox (event_id, topic, type, envelope, created_at) VALUES (?, ?, ?, ?, ?)`,
			e.ID, e.Topic, e.Type, string(envelope), now); err != nil {
			if sqldb.IsUniqueViolation(err) {
				return fmt.Errorf("adding event %s to the outbox: an event with this id is already there: %w", e.ID, err)
			}
			return fmt.Errorf("adding event %s to the outbox: %w", e.ID, err)
		}
	}
	return nil
}

// Backlog is what the relay has yet to publish.
type Backlog struct {
	Count  int       // unpublished events
	Oldest time.Time // when the oldest of them was added; zero if none
}

// Lag is how long the oldest unpublished event has waited at now.
func (b Backlog) Lag(now time.Time) time.Duration {
	if b.Count == 0 || b.Oldest.IsZero() {
		return 0
	}
	return max(now.Sub(b.Oldest), 0)
}

// Pending reports db's outbox backlog, for health checks, metrics and the
// console.
func Pending(ctx context.Context, db *sqldb.DB) (Backlog, error) {
	var (
		b      Backlog
		oldest *string
	)
	if err := db.QueryRowContext(ctx,
		`SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL`).Scan(&b.Count, &oldest); err != nil {
		return Backlog{}, fmt.Errorf("measuring the outbox backlog: %w", err)
	}
	if oldest != nil {
		t, err := sqldb.ParseStamp(*oldest)
		if err != nil {
			return Backlog{}, fmt.Errorf("measuring the outbox backlog: %w", err)
		}
		b.Oldest = t
	}
	return b, nil
}

// Purge deletes the events published before cutoff, a bounded batch at a
// time so a large purge does not hold the database for long, and reports how
// many it deleted. Unpublished events are never deleted, however old.
func Purge(ctx context.Context, db *sqldb.DB, cutoff time.Time) (int64, error) {
	// MySQL cannot delete from a table it selects from in a subquery,
	// but deletes a bounded batch itself; the others take the subquery.
	purge := `DELETE FROM outbox WHERE seq IN (
			SELECT seq FROM outbox WHERE published_at IS NOT NULL AND published_at < ? ORDER BY seq LIMIT 1000)`
	if db.Dialect == sqldb.MySQL {
		purge = `DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ? ORDER BY seq LIMIT 1000`
	}
	var total int64
	for {
		res, err := db.ExecContext(ctx, purge, sqldb.Stamp(cutoff))
		if err != nil {
			return total, fmt.Errorf("purging published events: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("purging published events: %w", err)
		}
		total += n
		if n < 1000 {
			return total, nil
		}
	}
}

// Log calls fn with every event committed to db's outbox whose topic starts
// with prefix, in commit order, published or not. With a retention that
// keeps published events (Options.Retention < 0), the outbox is the
// service's own event log: a read model can be rebuilt from it.
func Log(ctx context.Context, db *sqldb.DB, prefix string, fn func(event.Event) error) error {
	rows, err := db.QueryContext(ctx, `SELECT envelope FROM outbox WHERE substr(topic, 1, ?) = ? ORDER BY seq`,
		utf8.RuneCountInString(prefix), prefix) // substr counts characters on PostgreSQL and MySQL
	if err != nil {
		return fmt.Errorf("reading the event log: %w", err)
	}
	var events []event.Event
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			rows.Close()
			return fmt.Errorf("reading the event log: %w", err)
		}
		var e event.Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			rows.Close()
			return fmt.Errorf("decoding a logged event: %w", err)
		}
		events = append(events, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the event log: %w", err)
	}
	for _, e := range events { // after the rows are closed: fn may write in the same transaction
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
