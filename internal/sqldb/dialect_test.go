package sqldb_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func TestRebindNumbersPlaceholdersOnPostgresOnly(t *testing.T) {
	for _, tc := range []struct{ in, pg string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`},
		{`SELECT '?' || ?, "we?ird" FROM t`, `SELECT '?' || $1, "we?ird" FROM t`},
		{`SELECT 'it''s ?', ? -- why?` + "\n" + `, ?`, `SELECT 'it''s ?', $1 -- why?` + "\n" + `, $2`},
		{`SELECT /* ? */ ?`, `SELECT /* ? */ $1`},
		{`SELECT 'open ?`, `SELECT 'open ?`},
	} {
		if got := sqldb.Postgres.Rebind(tc.in); got != tc.pg {
			t.Errorf("Postgres.Rebind(%q) = %q, want %q", tc.in, got, tc.pg)
		}
		for _, d := range []sqldb.Dialect{sqldb.SQLite, sqldb.MySQL} {
			if got := d.Rebind(tc.in); got != tc.in {
				t.Errorf("%s.Rebind(%q) = %q, want it unchanged", d, tc.in, got)
			}
		}
	}
}

// kv is a table with a unique key, a counter and a text value.
var kv = fstest.MapFS{
	"migrations/sqlite/00001_kv.sql":   {Data: []byte(kvUp("TEXT", ""))},
	"migrations/postgres/00001_kv.sql": {Data: []byte(kvUp("TEXT", ""))},
	"migrations/mysql/00001_kv.sql":    {Data: []byte(kvUp("VARCHAR(64)", " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"))},
}

func kvUp(key, options string) string {
	return `-- +goose Up
CREATE TABLE kv (k ` + key + ` PRIMARY KEY, n INTEGER NOT NULL, v TEXT NOT NULL)` + options + `;
-- +goose Down
DROP TABLE kv;
`
}

func TestPortableStatementsBehaveAlikeOnEveryDialect(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := sqldbtest.OpenOn(t, d, "kv", kv)
		ctx := context.Background()
		get := func(k string) (int, string) {
			t.Helper()
			var (
				n int
				v string
			)
			if err := db.QueryRowContext(ctx, `SELECT n, v FROM kv WHERE k = ?`, k).Scan(&n, &v); err != nil {
				t.Fatalf("reading %s: %v", k, err)
			}
			return n, v
		}
		affected := func(q string, args ...any) int64 {
			t.Helper()
			res, err := db.ExecContext(ctx, q, args...)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		ignore := d.InsertIgnore("kv", "k", "n", "v")
		if got := affected(ignore, "a", 1, "first"); got != 1 {
			t.Errorf("InsertIgnore of a new row affected %d rows, want 1", got)
		}
		if got := affected(ignore, "a", 2, "second"); got != 0 {
			t.Errorf("InsertIgnore of an existing key affected %d rows, want 0", got)
		}
		if n, v := get("a"); n != 1 || v != "first" {
			t.Errorf("after InsertIgnore, a = %d %q, want 1 \"first\"", n, v)
		}

		_, err := db.ExecContext(ctx, `INSERT INTO kv (k, n, v) VALUES (?, ?, ?)`, "a", 3, "dup")
		if !sqldb.IsUniqueViolation(err) {
			t.Errorf("IsUniqueViolation(%v) = false, want true", err)
		}
		if sqldb.IsUniqueViolation(errors.New("something else")) || sqldb.IsUniqueViolation(nil) {
			t.Error("IsUniqueViolation is true for an error that is no violation")
		}

		upsert := d.Upsert("kv", []string{"k"}, "k", "n", "v")
		affected(upsert, "a", 5, "upserted")
		affected(upsert, "b", 7, "new")
		if n, v := get("a"); n != 5 || v != "upserted" {
			t.Errorf("after Upsert, a = %d %q, want 5 \"upserted\"", n, v)
		}
		if n, v := get("b"); n != 7 || v != "new" {
			t.Errorf("after Upsert, b = %d %q, want 7 \"new\"", n, v)
		}

		// A hand-written upsert keeping the larger counter.
		keepMax := `INSERT INTO kv (k, n, v) VALUES (?, ?, ?) ` + d.OnConflictUpdate("k") +
			` n = ` + d.Greatest("kv.n", d.Excluded("n")) + `, v = ` + d.Excluded("v")
		affected(keepMax, "a", 3, "lower")
		if n, v := get("a"); n != 5 || v != "lower" {
			t.Errorf("after the max upsert with 3, a = %d %q, want 5 \"lower\"", n, v)
		}
		affected(keepMax, "a", 9, "higher")
		if n, _ := get("a"); n != 9 {
			t.Errorf("after the max upsert with 9, a = %d, want 9", n)
		}

		// RowsAffected counts matched rows, also when nothing changes.
		if got := affected(`UPDATE kv SET n = n WHERE k = ?`, "a"); got != 1 {
			t.Errorf("an UPDATE matching one row without changing it affected %d, want 1", got)
		}
	})
}

// TestForUpdateSerializesReadModifyWrite races units that each read a
// counter and write it back plus one: with the row locked, none is lost.
func TestForUpdateSerializesReadModifyWrite(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := sqldbtest.OpenOn(t, d, "counter", kv)
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, n, v) VALUES ('c', 0, '')`); err != nil {
			t.Fatal(err)
		}
		const workers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for range workers {
			wg.Go(func() {
				for range each {
					errs <- db.Atomic(ctx, func(ctx context.Context) error {
						var n int
						if err := db.QueryRowContext(ctx, `SELECT n FROM kv WHERE k = 'c'`+d.ForUpdate()).Scan(&n); err != nil {
							return err
						}
						_, err := db.ExecContext(ctx, `UPDATE kv SET n = ? WHERE k = 'c'`, n+1)
						return err
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		failed := 0
		for err := range errs {
			if err != nil {
				failed++
				t.Log(err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT n FROM kv WHERE k = 'c'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if failed != 0 || n != workers*each {
			t.Errorf("counter = %d with %d failed units, want %d and 0", n, failed, workers*each)
		}
	})
}

func TestDialectOfReadsTheScheme(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want sqldb.Dialect
		err  string
	}{
		{"sqlite:///tmp/x.db", sqldb.SQLite, ""},
		{"/tmp/x.db", sqldb.SQLite, ""},
		{"postgres://u:secret@127.0.0.1:5432/db?sslmode=disable", sqldb.Postgres, ""},
		{"postgresql://u@127.0.0.1/db", sqldb.Postgres, ""},
		{"mysql://root:secret@127.0.0.1:3306/orders?tls=false", sqldb.MySQL, ""},
		{"mysql://root:secret@127.0.0.1:3306/", "", "database name"},
		{"mysql://root:secret@127.0.0.1:3306/orders?nonsense=%zz", "", "mysql"},
		{"mongodb://u:secret@127.0.0.1/catalog", "", "unsupported scheme"},
		{"", "", "empty"},
	} {
		got, err := sqldb.DialectOf(tc.url)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("DialectOf(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("DialectOf(%q) = %q, %v; want an error about %q", tc.url, got, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("DialectOf(%q) error %q shows the password", tc.url, err)
		}
	}
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"postgres://postgres:hunter2secret@" + sqldbtest.PostgresAddr + "/no_such_db_here?sslmode=disable",
		"mysql://nobody:hunter2secret@" + sqldbtest.MySQLAddr + "/no_such_db_here",
		"mysql://nobody:hunter2secret@127.0.0.1:1/x", // nothing listens
	} {
		db, err := sqldb.Open(ctx, u)
		if err == nil {
			_ = db.Close()
			t.Errorf("Open(%s) succeeded, want an error", sqldb.Redact(u))
			continue
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("Open error %q shows the password", err)
		}
	}
}

// TestInstancesStartingTogetherMigrateOneAtATime migrates one database from
// several pools at once, as replicas of a service starting together do:
// each waits for the one migrating, then finds nothing left to do. (One
// SQLite file has one instance.)
func TestInstancesStartingTogetherMigrateOneAtATime(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		if d == sqldb.SQLite {
			t.Skip("a SQLite file is one instance's")
		}
		u := sqldbtest.URL(t, d, "together")
		ctx := context.Background()
		const instances = 4
		errs := make(chan error, instances)
		var wg sync.WaitGroup
		for range instances {
			db, err := sqldb.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			wg.Go(func() {
				if err := db.Migrate(ctx, kv); err != nil {
					errs <- err
					return
				}
				errs <- db.Migrate(ctx, notes, sqldb.VersionTable("goose_notes"))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("an instance's migration failed: %v", err)
			}
		}
	})
}

// TestAtomicRunsTheLoserOfADeadlockAgain makes two units lock two rows in
// opposite orders: the server kills one of them, and Atomic runs that one
// again, so both units' work commits, each once.
func TestAtomicRunsTheLoserOfADeadlockAgain(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		if d == sqldb.SQLite {
			t.Skip("SQLite runs one writer at a time: no deadlock to lose")
		}
		db := sqldbtest.OpenOn(t, d, "deadlock", kv)
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, n, v) VALUES ('a', 0, ''), ('b', 0, '')`); err != nil {
			t.Fatal(err)
		}
		var (
			runs  atomic.Int32
			held  sync.WaitGroup
			first [2]sync.Once
		)
		held.Add(2)
		unit := func(i int, k1, k2 string) error {
			return db.Atomic(ctx, func(ctx context.Context) error {
				runs.Add(1)
				if _, err := db.ExecContext(ctx, `UPDATE kv SET n = n + 1 WHERE k = ?`, k1); err != nil {
					return err
				}
				first[i].Do(func() { held.Done(); held.Wait() }) // both hold their first row
				_, err := db.ExecContext(ctx, `UPDATE kv SET n = n + 1 WHERE k = ?`, k2)
				return err
			})
		}
		errs := make(chan error, 2)
		go func() { errs <- unit(0, "a", "b") }()
		go func() { errs <- unit(1, "b", "a") }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("a unit failed: %v", err)
			}
		}
		var a, b int
		if err := db.QueryRowContext(ctx, `SELECT (SELECT n FROM kv WHERE k = 'a'), (SELECT n FROM kv WHERE k = 'b')`).Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if got := runs.Load(); got != 3 || a != 2 || b != 2 {
			t.Errorf("runs=%d a=%d b=%d, want 3 runs (one deadlock lost and run again) and 2, 2", got, a, b)
		}
	})
}
