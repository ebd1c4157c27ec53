package sqldb_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// notes is a tiny schema for the tests: one table of strings.
var notes = fstest.MapFS{
	"migrations/sqlite/00001_notes.sql":   {Data: []byte(notesUp("TEXT", ""))},
	"migrations/postgres/00001_notes.sql": {Data: []byte(notesUp("TEXT", ""))},
	"migrations/mysql/00001_notes.sql":    {Data: []byte(notesUp("VARCHAR(100)", " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"))},
}

func notesUp(text, options string) string {
	return `-- +goose Up
CREATE TABLE notes (body ` + text + ` NOT NULL UNIQUE)` + options + `;
-- +goose Down
DROP TABLE notes;
`
}

// tags is a second migration set, kept with its own version table.
var tags = fstest.MapFS{
	"migrations/sqlite/00001_tags.sql":   {Data: []byte(tagsSQL)},
	"migrations/postgres/00001_tags.sql": {Data: []byte(tagsSQL)},
	"migrations/mysql/00001_tags.sql":    {Data: []byte(tagsSQL)},
}

const tagsSQL = `-- +goose Up
CREATE TABLE tags (name TEXT NOT NULL);
-- +goose Down
DROP TABLE tags;
`

func open(t *testing.T, d sqldb.Dialect, name string) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenOn(t, d, name, notes)
}

// add stores a note the way store code does: through db, with whatever
// transaction ctx carries.
func add(ctx context.Context, db *sqldb.DB, body string) error {
	_, err := db.ExecContext(ctx, `INSERT INTO notes (body) VALUES (?)`, body)
	return err
}

// bodies lists the notes as seen from ctx.
func bodies(t *testing.T, ctx context.Context, db *sqldb.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT body FROM notes ORDER BY body`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func want(t *testing.T, db *sqldb.DB, wantBodies ...string) {
	t.Helper()
	if wantBodies == nil {
		wantBodies = []string{}
	}
	if got := bodies(t, context.Background(), db); !slices.Equal(got, wantBodies) {
		t.Errorf("committed notes = %q, want %q", got, wantBodies)
	}
}

var errBoom = errors.New("boom")

func TestAtomicCommitsOrRollsBackEverythingItsCalleesDid(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()

		err := db.Atomic(ctx, func(ctx context.Context) error {
			if err := add(ctx, db, "a"); err != nil {
				return err
			}
			// The old InTx signature joins the same transaction.
			return db.InTx(ctx, func(tx *sqldb.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('b')`)
				return err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		want(t, db, "a", "b")

		err = db.Atomic(ctx, func(ctx context.Context) error {
			if err := add(ctx, db, "c"); err != nil {
				return err
			}
			if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('d')`)
				return err
			}); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Atomic = %v, want the callback's error", err)
		}
		want(t, db, "a", "b")
	})
}

func TestAtomicWorkIsSeenInsideAndOnlyAfterCommitOutside(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()
		err := db.Atomic(ctx, func(ctx context.Context) error {
			if err := add(ctx, db, "x"); err != nil {
				return err
			}
			if got := bodies(t, ctx, db); !slices.Equal(got, []string{"x"}) {
				t.Errorf("inside the transaction, notes = %q, want [x]", got)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notes`).Scan(&n); err != nil || n != 1 {
				t.Errorf("inside the transaction, QueryRowContext counts %d (%v), want 1", n, err)
			}
			// Another connection, with no transaction in its context, sees
			// the state before the transaction.
			if got := bodies(t, context.Background(), db); len(got) != 0 {
				t.Errorf("outside the open transaction, notes = %q, want none", got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want(t, db, "x")
	})
}

func TestNestedUnitRollsBackOnlyItsOwnWork(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()
		err := db.Atomic(ctx, func(ctx context.Context) error {
			if err := add(ctx, db, "outer-1"); err != nil {
				return err
			}
			inner := db.Atomic(ctx, func(ctx context.Context) error {
				if err := add(ctx, db, "inner-kept"); err != nil {
					return err
				}
				deeper := db.InTx(ctx, func(tx *sqldb.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('deeper-undone')`); err != nil {
						return err
					}
					return errBoom
				})
				if !errors.Is(deeper, errBoom) {
					t.Errorf("deepest unit = %v, want its own error", deeper)
				}
				return nil
			})
			if inner != nil {
				return inner
			}
			failed := db.Atomic(ctx, func(ctx context.Context) error {
				if err := add(ctx, db, "inner-undone"); err != nil {
					return err
				}
				// A statement error inside the unit: the unit is undone,
				// and the transaction is still usable afterwards.
				return add(ctx, db, "outer-1")
			})
			if failed == nil {
				t.Error("a unit inserting a duplicate succeeded")
			}
			return add(ctx, db, "outer-2")
		})
		if err != nil {
			t.Fatal(err)
		}
		want(t, db, "inner-kept", "outer-1", "outer-2")
	})
}

func TestNestedUnitCommitsOnlyWithTheOutermost(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()
		err := db.Atomic(ctx, func(ctx context.Context) error {
			if err := db.Atomic(ctx, func(ctx context.Context) error { return add(ctx, db, "inner") }); err != nil {
				return err
			}
			if got := bodies(t, context.Background(), db); len(got) != 0 {
				t.Errorf("after the inner unit, before the outer commits, others see %q, want nothing", got)
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Atomic = %v, want the callback's error", err)
		}
		want(t, db)
	})
}

func TestPanicRollsBack(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not go on up")
				}
			}()
			_ = db.Atomic(ctx, func(ctx context.Context) error {
				_ = add(ctx, db, "a")
				panic("boom")
			})
		}()
		want(t, db)
		// The pool is not left holding the write lock.
		if err := db.Atomic(ctx, func(ctx context.Context) error { return add(ctx, db, "b") }); err != nil {
			t.Fatal(err)
		}
		want(t, db, "b")
	})
}

func TestAnotherDatabaseIgnoresTheAmbientTransaction(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		one, two := open(t, d, "one"), open(t, d, "two")
		ctx := context.Background()
		err := one.Atomic(ctx, func(ctx context.Context) error {
			if _, ok := two.TxFrom(ctx); ok {
				t.Error("two.TxFrom found one's transaction")
			}
			if _, ok := one.TxFrom(ctx); !ok {
				t.Error("one.TxFrom found no transaction")
			}
			if err := add(ctx, one, "one"); err != nil {
				return err
			}
			// Work on two in this context is two's own: committed now,
			// whatever becomes of one's transaction.
			if err := add(ctx, two, "two-direct"); err != nil {
				return err
			}
			if err := two.Atomic(ctx, func(ctx context.Context) error { return add(ctx, two, "two-atomic") }); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Atomic = %v, want the callback's error", err)
		}
		want(t, one)
		want(t, two, "two-atomic", "two-direct")
	})
}

func TestWithTxMakesATransactionAmbient(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()
		tx, err := db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tctx := db.WithTx(ctx, tx)
		if got, ok := db.TxFrom(tctx); !ok || got != tx {
			t.Fatal("TxFrom does not return the transaction WithTx put in")
		}
		if db.WithTx(tctx, tx) != tctx {
			t.Error("WithTx of the transaction already there made a new context")
		}
		if err := add(tctx, db, "a"); err != nil {
			t.Fatal(err)
		}
		if err := db.Atomic(tctx, func(ctx context.Context) error {
			_ = add(ctx, db, "undone")
			return errBoom
		}); !errors.Is(err, errBoom) {
			t.Fatalf("Atomic = %v, want the callback's error", err)
		}
		want(t, db)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		want(t, db, "a")
	})
}

func TestInTxStillWorksOnItsOwn(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a")
		ctx := context.Background()
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('a')`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('b')`); err != nil {
				return err
			}
			return errBoom
		}); !errors.Is(err, errBoom) {
			t.Fatalf("InTx = %v, want the callback's error", err)
		}
		want(t, db, "a")
	})
}

func TestMigrationSetsKeepTheirOwnVersions(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "a") // notes, in goose's default table
		ctx := context.Background()
		other := sqldb.VersionTable("goose_tags")
		for i, step := range []func() error{
			func() error { return db.Migrate(ctx, tags, other) },
			func() error { return db.MigrateDown(ctx, tags, other) },
			func() error { return db.Migrate(ctx, tags, other) },
			func() error { return db.Migrate(ctx, notes) }, // nothing to do
		} {
			if err := step(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		for _, table := range []string{"notes", "tags", "goose_db_version", "goose_tags"} {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
				t.Errorf("table %s: %v, want it there", table, err)
			}
		}
		if err := db.MigrateDown(ctx, tags, other); err != nil {
			t.Fatal(err)
		}
		if err := add(ctx, db, "still here"); err != nil {
			t.Errorf("rolling back the tags set touched the notes set: %v", err)
		}
	})
}

func TestStampsSortAsTimes(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 5, 0, time.FixedZone("X", 3600))
	times := []time.Time{base, base.Add(100 * time.Millisecond), base.Add(time.Second), base.Add(time.Nanosecond)}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	stamps := make([]string, len(times))
	for i, tm := range times {
		stamps[i] = sqldb.Stamp(tm)
		got, err := sqldb.ParseStamp(stamps[i])
		if err != nil || !got.Equal(tm) {
			t.Errorf("ParseStamp(Stamp(%v)) = %v, %v", tm, got, err)
		}
	}
	if !slices.IsSorted(stamps) {
		t.Errorf("stamps %q do not sort as their times", stamps)
	}
}

func TestOnCommitRunsAfterEachCommitOnly(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := open(t, d, "commit.db")
		ctx := context.Background()
		commits := 0
		db.OnCommit(func() { commits++ })
		if err := db.Atomic(ctx, func(ctx context.Context) error {
			return db.Atomic(ctx, func(context.Context) error { return nil }) // a savepoint is no commit
		}); err != nil {
			t.Fatal(err)
		}
		_ = db.Atomic(ctx, func(context.Context) error { return errors.New("rolled back") })
		if commits != 1 {
			t.Errorf("OnCommit ran %d times, want once: for the one commit, not the savepoint or the rollback", commits)
		}
	})
}
