package sqldb

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestKeptStatementsBehaveAsFreshOnes runs the same statement texts on
// SQLite before and after they are kept prepared, on the pool and in
// transactions: every result is the one a freshly prepared statement gives,
// a rolled-back transaction leaves nothing, a unique violation is still
// one, and a broken statement fails every time.
func TestKeptStatementsBehaveAsFreshOnes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "kept.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.ExecContext(ctx, `CREATE TABLE notes (body TEXT NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	const (
		insert = `INSERT INTO notes (body) VALUES (?)`
		count  = `SELECT COUNT(*) FROM notes WHERE body LIKE ?`
		broken = `SELECT nothing FROM nowhere`
	)
	counted := func(ctx context.Context, prefix string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, count, prefix+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for round := range 2 { // round 0 runs unprepared at first; round 1 on kept statements
		for i := range 5 {
			if _, err := db.ExecContext(ctx, insert, note(round, "pool", i)); err != nil {
				t.Fatal(err)
			}
		}
		err := db.Atomic(ctx, func(ctx context.Context) error {
			for i := range 5 {
				if _, err := db.ExecContext(ctx, insert, note(round, "tx", i)); err != nil {
					return err
				}
			}
			if got := counted(ctx, note(round, "tx", -1)); got != 5 {
				t.Errorf("round %d: notes seen inside the transaction = %d, want 5", round, got)
			}
			return errUndo
		})
		if !errors.Is(err, errUndo) {
			t.Fatalf("round %d: Atomic = %v, want the unit's own error", round, err)
		}
		if got := counted(ctx, note(round, "tx", -1)); got != 0 {
			t.Errorf("round %d: notes left by a rolled-back transaction = %d, want 0", round, got)
		}
		if got := counted(ctx, note(round, "pool", -1)); got != 5 {
			t.Errorf("round %d: notes inserted on the pool = %d, want 5", round, got)
		}
		err = db.Atomic(ctx, func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, insert, note(round, "pool", 0))
			return err
		})
		if !IsUniqueViolation(err) {
			t.Errorf("round %d: inserting a note twice = %v, want a unique violation", round, err)
		}
		if _, err := db.QueryContext(ctx, broken); err == nil {
			t.Errorf("round %d: a query of a table that does not exist succeeded", round)
		}
		if round == 0 {
			waitKept(t, db, insert, count)
		}
	}
}

var errUndo = errors.New("undo")

func note(round int, where string, i int) string {
	if i < 0 {
		return string(rune('a'+round)) + where
	}
	return string(rune('a'+round)) + where + string(rune('0'+i))
}

// waitKept waits until every one of queries is kept prepared.
func waitKept(t *testing.T, db *DB, queries ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		db.stmts.mu.Lock()
		kept := 0
		for _, q := range queries {
			if db.stmts.stmts[q] != nil {
				kept++
			}
		}
		db.stmts.mu.Unlock()
		if kept == len(queries) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d statements kept prepared after 5s", kept, len(queries))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
