package sqldb

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openNotes(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "turns.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.ExecContext(ctx, `CREATE TABLE notes (body TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func countNotes(t *testing.T, ctx context.Context, db *DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notes`).Scan(&n); err != nil {
		t.Fatalf("reading while writers wait: %v", err)
	}
	return n
}

// TestWritersWaitWithoutHoldingConnections holds SQLite's write lock in a
// transaction while more writers than the pool has connections line up
// behind it. A read still gets a connection at once (before writers took
// turns in the process, each waiter held a connection while it slept in
// SQLite's busy handler, and the read waited for the busy timeout). When
// the transaction commits, every waiting writer writes.
func TestWritersWaitWithoutHoldingConnections(t *testing.T) {
	ctx := context.Background()
	db := openNotes(t)
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('first')`); err != nil {
		t.Fatal(err)
	}
	const writers = 12 // the pool has 8 connections
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			errs <- db.Atomic(ctx, func(ctx context.Context) error {
				_, err := db.ExecContext(ctx, `INSERT INTO notes (body) VALUES (?)`, i)
				return err
			})
		})
	}
	for deadline := time.Now().Add(10 * time.Second); db.writer.waiting.Load() < writers; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writers waiting", db.writer.waiting.Load(), writers)
		}
		time.Sleep(time.Millisecond)
	}

	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n := countNotes(t, rctx, db); n != 0 {
		t.Errorf("a reader sees %d notes before the commit, want 0", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a waiting writer: %v", err)
		}
	}
	if n := countNotes(t, ctx, db); n != 1+writers {
		t.Errorf("%d notes, want %d", n, 1+writers)
	}
}

// TestAWriteWaitingForItsOwnTransactionGivesUp writes outside the context of
// the transaction that holds the turn, which could never get it: the write
// fails as SQLite's busy timeout would fail it, changes nothing, and the
// transaction goes on.
func TestAWriteWaitingForItsOwnTransactionGivesUp(t *testing.T) {
	ctx := context.Background()
	db := openNotes(t)
	db.writer = newWriter(100 * time.Millisecond)
	err := db.Atomic(ctx, func(txctx context.Context) error {
		if _, err := db.ExecContext(txctx, `INSERT INTO notes (body) VALUES ('kept')`); err != nil {
			return err
		}
		_, err := db.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('stray')`)
		if err == nil || !strings.Contains(err.Error(), "database is locked") {
			t.Errorf("a write outside the transaction: %v, want database is locked", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countNotes(t, ctx, db); n != 1 {
		t.Errorf("%d notes, want 1 (the transaction's)", n)
	}
	// The turn was given back: the next writer writes at once.
	if _, err := db.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('after')`); err != nil {
		t.Errorf("writing after the transaction: %v", err)
	}
}
