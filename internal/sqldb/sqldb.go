// Package sqldb opens a service's SQL database from a URL, applies the
// service's embedded migrations for that dialect, and runs transactions. Each
// service owns its database; this package only knows how to reach one.
//
// # Dialects and URLs
//
// A store is written once and runs on three dialects, chosen by the URL
// given to Open (MICROSHOP_<SERVICE>_DB_URL):
//
//	sqlite:///var/lib/microshop/orders.db        (or a plain path; the default)
//	postgres://user:pass@127.0.0.1:5432/db?sslmode=disable   (postgresql:// too)
//	mysql://user:pass@127.0.0.1:3306/db?tls=false            (MySQL or MariaDB)
//
// Query parameters of a mysql:// URL are go-sql-driver's DSN parameters.
// Whatever they say, Open reads times as text (parseTime=false) and counts
// the rows an UPDATE matched, not only those it changed (clientFoundRows), so
// RowsAffected means the same on every dialect. Passwords never appear in
// errors: they are redacted from the URL.
//
// # Writing SQL: the rules every store follows
//
//   - Placeholders are always ?. DB.ExecContext, QueryContext and
//     QueryRowContext, and the same three methods of the *Tx that InTx and
//     Begin hand out, rewrite them to $1, $2, ... on PostgreSQL. There is no
//     raw *sql.DB or *sql.Tx to reach past that: the pool is unexported.
//   - Insert-or-ignore: db.Dialect.InsertIgnore(table, cols...) builds the
//     statement (ON CONFLICT DO NOTHING, or INSERT IGNORE on MySQL);
//     RowsAffected is 1 when it inserted and 0 when a unique key already
//     held the row.
//   - Upsert: db.Dialect.Upsert(table, keys, cols...) builds an insert that
//     overwrites the non-key cols when a row with the same keys exists. For
//     hand-written upserts use OnConflictUpdate(keys...) followed by the SET
//     list, writing the incoming value of a column as Excluded(col), and
//     Greatest(a, b) for the larger of two values (SQLite's two-argument MAX).
//     MySQL has no RETURNING: read the row back in the same unit of work.
//   - Unique violations: IsUniqueViolation(err) on every dialect (SQLite's
//     constraint error, PostgreSQL 23505, MySQL 1062). Inside an Atomic unit
//     on PostgreSQL a failed statement spoils the transaction: do the insert
//     that may fail in a unit of its own (a nested Atomic, which is a
//     savepoint) when the outer unit must carry on after it.
//   - Time stamps: TEXT columns (VARCHAR(40) on MySQL, so they can be keyed
//     and indexed) holding Stamp(t); they compare and sort as the times do.
//     Read them back with ParseStamp.
//   - Types: ids TEXT (VARCHAR(64) on MySQL when keyed or indexed), money
//     and counts INTEGER/BIGINT, flags INTEGER 0/1 (SMALLINT on PostgreSQL
//     is fine; scan into int), JSON as TEXT (LONGTEXT on MySQL). MySQL
//     tables are ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin,
//     so text compares byte by byte, as on SQLite and PostgreSQL.
//   - Rows must be closed before the next statement of the same
//     transaction: PostgreSQL and MySQL connections run one at a time.
//
// # Read-modify-write under concurrency
//
// SQLite runs one write transaction at a time (transactions begin
// IMMEDIATE), so reading a row and writing it back in one unit is safe
// there. PostgreSQL and MySQL run them concurrently, both at READ COMMITTED
// (Open sets it per transaction on MySQL, whose default is REPEATABLE READ).
// A unit that reads a row to decide what to write must do one of:
//
//   - a conditional UPDATE that states the precondition and checks
//     RowsAffected: UPDATE stock SET available = available - ? WHERE id = ?
//     AND available >= ? (a lease, a status change, a counter);
//   - SELECT ... + db.Dialect.ForUpdate() inside db.Atomic: the row stays
//     locked until the unit commits, so a second unit reading it waits and
//     then sees the first one's write (ForUpdate is empty on SQLite, where
//     the write lock is already held); ForUpdateSkipLocked for workers
//     claiming rows from a shared queue, so they take different rows;
//   - an insert guarded by a unique key (InsertIgnore, IsUniqueViolation),
//     for "only once" facts.
//
// A unit that loses a deadlock or a serialization conflict fails as a
// whole (IsRetryable tells such an error apart); the outermost Atomic (and
// InTx) runs it again, up to Attempts times in all. So a unit's function
// may run more than once: it resets what it collects at its start, and
// counts or notifies only after the commit (inbox.AfterCommit in a
// consumer's effect).
//
// # Transactions
//
// db.Atomic(ctx, fn) runs fn in a transaction carried by ctx; everything the
// store does with db and that ctx joins it, nested units are savepoints on
// every dialect. db.InTx(ctx, func(tx *sqldb.Tx) error) is the same for code
// that works on the transaction directly.
//
// # Migrations and tests
//
// Migrations live in migrations/{sqlite,postgres,mysql} of the service's
// embedded FS, with the same version numbers in each folder. In tests,
// package sqldbtest: sqldbtest.ForEachDialect(t, func(t *testing.T, d
// sqldb.Dialect) { db := sqldbtest.OpenOn(t, d, "name", Migrations) ... })
// runs a test on SQLite and on fresh, randomly named databases on the
// machine's PostgreSQL and MariaDB (dropped at the end; skipped when the
// server is absent, failed under CI=true); sqldbtest.MigrationsRoundTrip(t,
// Migrations) proves Up, Down, Up on each dialect. OpenMessagingOn adds the
// outbox and inbox tables; sqldbtest.URL(t, d, name) is a fresh database's
// URL, for a test that starts the whole shop on a server.
//
// PostgreSQL compares TEXT by the database's collation; ids and stamps
// sort the same under C and the usual UTF-8 locales, but create production
// databases with LC_COLLATE 'C' (as the machine's are) to be sure.
//
// # Changes
//
// Atomic and InTx retry the outermost unit on deadlocks and serialization
// conflicts (see above): a closure that appends to a variable declared
// outside it must reset it first.
//
// InTx callbacks take a *sqldb.Tx (they took a *sql.Tx); WithTx, TxFrom and
// Begin deal in *sqldb.Tx too, and DB no longer embeds *sql.DB. The stores
// that used *sql.Tx (inventorydb, shipmentdb, orderdb) were changed by that
// one type name, nothing else.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names a family of SQL.
type Dialect string

// The dialects microshop's stores are written for.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
)

// Dialects lists every dialect, SQLite first.
var Dialects = []Dialect{SQLite, Postgres, MySQL}

// DB is an open database with the dialect its SQL must be written in.
// Its statements take ? placeholders on every dialect.
type DB struct {
	pool    *sql.DB
	Dialect Dialect
	stmts   *stmtCache // statements kept prepared; nil but on SQLite
	writer  *writer    // the turn to write; nil but on SQLite

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

// connectTimeout bounds dialling a database server, so that a start-up or a
// health check against an unreachable one fails instead of hanging.
const connectTimeout = 5 * time.Second

// Open connects to the database at rawURL. An sqlite:// URL (or a plain file
// path) opens a file in WAL mode with a busy timeout, creating its folder;
// write transactions take the lock when they begin, so two writers wait for
// each other instead of failing half-way. A postgres:// or mysql:// URL
// opens a pool on that server.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	dialect, dsn, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	var pool *sql.DB
	switch dialect {
	case SQLite:
		pool, err = openSQLite(dsn)
	case Postgres:
		pool, err = openPostgres(dsn)
	case MySQL:
		pool, err = openMySQL(dsn)
	}
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.PingContext(pctx); err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("reaching %s database %s: %w", dialect, Redact(rawURL), err)
	}
	db := &DB{pool: pool, Dialect: dialect}
	if dialect == SQLite {
		db.stmts = newStmtCache(pool)
		db.writer = newWriter(busyTimeout)
	}
	return db, nil
}

func openSQLite(path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating database folder: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()), "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	pool, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening sqlite %s: %w", path, err)
	}
	// One writer at a time anyway; a few readers alongside it in WAL mode.
	// Idle connections are kept (database/sql keeps two by default): each
	// new one costs opening the file and running the pragmas, and loses
	// the statements prepared on the old one.
	pool.SetMaxOpenConns(8)
	pool.SetMaxIdleConns(8)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	return pool, nil
}

func openPostgres(rawURL string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("reading postgres URL %s: %w", Redact(rawURL), errors.New(redactErr(err.Error(), rawURL)))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	pool := stdlib.OpenDB(*cfg)
	// A server's connections are shared by every instance of every
	// service on it (max_connections defaults to 100): a modest pool each.
	pool.SetMaxOpenConns(16)
	pool.SetMaxIdleConns(8)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	pool.SetConnMaxLifetime(30 * time.Minute)
	return pool, nil
}

func openMySQL(rawURL string) (*sql.DB, error) {
	cfg, err := mysqlConfig(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("reading mysql URL %s: %w", Redact(rawURL), err)
	}
	pool := sql.OpenDB(conn)
	pool.SetMaxOpenConns(16)
	pool.SetMaxIdleConns(8)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	// Below the server's wait_timeout and any proxy's idle cut-off, so the
	// pool never hands out a connection the server has already dropped.
	pool.SetConnMaxLifetime(3 * time.Minute)
	return pool, nil
}

// mysqlConfig turns mysql://user:pass@host:port/db?params into the driver's
// configuration.
func mysqlConfig(rawURL string) (*mysql.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("reading mysql URL: %w", errors.New(redactErr(err.Error(), rawURL)))
	}
	cfg, err := mysql.ParseDSN("/?" + u.RawQuery) // the parameters, in the driver's own terms
	if err != nil {
		return nil, fmt.Errorf("reading mysql URL %s: %w", Redact(rawURL), err)
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("mysql URL %s: want one database name in the path", Redact(rawURL))
	}
	// Stores read time stamps as text and count matched rows, the same
	// on every dialect; these are not the caller's to change.
	cfg.ParseTime = false
	cfg.ClientFoundRows = true
	if cfg.Timeout == 0 {
		cfg.Timeout = connectTimeout
	}
	return cfg, nil
}

func parse(rawURL string) (Dialect, string, error) {
	switch {
	case rawURL == "":
		return "", "", errors.New("database URL is empty")
	case strings.HasPrefix(rawURL, "sqlite://"):
		return SQLite, strings.TrimPrefix(rawURL, "sqlite://"), nil
	case strings.HasPrefix(rawURL, "file:"):
		return SQLite, strings.TrimPrefix(rawURL, "file:"), nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return Postgres, rawURL, nil
	case strings.HasPrefix(rawURL, "mysql://"):
		return MySQL, rawURL, nil
	case strings.Contains(rawURL, "://"):
		return "", "", fmt.Errorf("database URL %s: unsupported scheme (want sqlite, postgres, postgresql or mysql)", Redact(rawURL))
	default:
		return SQLite, rawURL, nil
	}
}

// DialectOf reports the dialect a database URL selects, or an error saying
// why the URL is no database URL this package opens. It does not connect.
func DialectOf(rawURL string) (Dialect, error) {
	d, rest, err := parse(rawURL)
	if err != nil {
		return "", err
	}
	switch d {
	case SQLite:
		if rest == "" {
			return "", errors.New("sqlite database URL has no path")
		}
	case Postgres:
		if _, err := pgx.ParseConfig(rawURL); err != nil {
			return "", fmt.Errorf("postgres database URL %s: %s", Redact(rawURL), redactErr(err.Error(), rawURL))
		}
	case MySQL:
		if _, err := mysqlConfig(rawURL); err != nil {
			return "", err
		}
	}
	return d, nil
}

// Redact hides a password in a database URL so it can be logged.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// redactErr removes the password of rawURL from a driver's message that may
// have quoted it.
func redactErr(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// Close closes the pool; statements already running finish first.
func (db *DB) Close() error {
	db.stmts.close()
	return db.pool.Close()
}

// Stats reports the pool's connections, for metrics.
func (db *DB) Stats() sql.DBStats { return db.pool.Stats() }

// Ping is a health check that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.PingContext(ctx) }

// Migrate applies every migration in migrations/<dialect> of fsys that has not
// been applied yet. By default the applied versions are kept in goose's own
// table; a building block that ships its own migration set next to a
// service's passes VersionTable, so that the two sets count their versions
// apart.
func (db *DB) Migrate(ctx context.Context, migrations fs.FS, opts ...MigrateOption) error {
	unlock, err := db.lockMigrations(ctx, opts)
	if err != nil {
		return err
	}
	defer unlock()
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
	unlock, err := db.lockMigrations(ctx, opts)
	if err != nil {
		return err
	}
	defer unlock()
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
	cfg := migrateConfig{versionTable: goose.DefaultTablename}
	for _, o := range opts {
		o(&cfg)
	}
	sub, err := fs.Sub(migrations, "migrations/"+string(db.Dialect))
	if err != nil {
		return nil, fmt.Errorf("finding %s migrations: %w", db.Dialect, err)
	}
	if entries, err := fs.ReadDir(sub, "."); err != nil || len(entries) == 0 {
		return nil, fmt.Errorf("finding %s migrations: no migrations/%s folder", db.Dialect, db.Dialect)
	}
	store, err := database.NewStore(db.gooseDialect(), cfg.versionTable)
	if err != nil {
		return nil, fmt.Errorf("preparing migration table %s: %w", cfg.versionTable, err)
	}
	// Instances of a service starting together migrate one at a time: a
	// lock per migration set on the server, held while it runs (on MySQL,
	// see lockMigrations).
	popts := []goose.ProviderOption{goose.WithStore(store)}
	switch db.Dialect {
	case Postgres:
		h := fnv.New64a()
		_, _ = h.Write([]byte(cfg.versionTable))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("preparing the migration lock: %w", err)
		}
		popts = append(popts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectCustom, db.pool, sub, popts...)
	if err != nil {
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	return p, nil
}

// lockMigrations keeps other instances from migrating the same set while
// this one does, on MySQL: a named lock (GET_LOCK) held on a connection of
// its own from before goose first looks at its version table (goose's
// own locking starts later, and MySQL's DDL is not transactional, so a
// second instance could see the table before its first row). PostgreSQL
// is locked by goose; SQLite has one instance per file.
func (db *DB) lockMigrations(ctx context.Context, opts []MigrateOption) (unlock func(), err error) {
	if db.Dialect != MySQL {
		return func() {}, nil
	}
	cfg := migrateConfig{versionTable: goose.DefaultTablename}
	for _, o := range opts {
		o(&cfg)
	}
	conn, err := db.pool.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	name := "microshop." + cfg.versionTable
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(CONCAT(DATABASE(), '.', ?), 300)`, name).Scan(&got); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	if got.Int64 != 1 {
		_ = conn.Close()
		return nil, errors.New("taking the migration lock: another instance has held it for 5 minutes")
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.', ?))`, name)
		_ = conn.Close() // the lock goes with the session, if RELEASE_LOCK did not get through
	}, nil
}

func (db *DB) gooseDialect() database.Dialect {
	switch db.Dialect {
	case Postgres:
		return database.DialectPostgres
	case MySQL:
		return database.DialectMySQL
	default:
		return database.DialectSQLite3
	}
}

// IsUniqueViolation reports whether err is a unique-constraint violation, in
// any supported dialect.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1062
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// IsRetryable reports whether err ended a transaction that may succeed if
// run again as a whole: a deadlock or a serialization failure (PostgreSQL
// 40P01 and 40001, MySQL 1213), a lock wait that timed out (MySQL 1205), or
// SQLite's busy timeout.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40P01" || pg.Code == "40001"
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1213 || my.Number == 1205
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code()&0xff == sqlite3.SQLITE_BUSY
	}
	return false
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
