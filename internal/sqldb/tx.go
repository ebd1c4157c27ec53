package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// A transaction can travel in a context, as the ambient transaction of the
// database it belongs to. A consumer then records an event and applies its
// effect in one transaction while the service's store code, which only calls
// db.ExecContext and db.InTx, stays as it is: those calls join the ambient
// transaction instead of starting work of their own.
//
// An ambient transaction belongs to the goroutine that runs the unit of work:
// database/sql runs one statement at a time on it, and the savepoints of
// nested units are named by their depth, so two goroutines nesting units on
// one transaction would step on each other.

// Tx is a transaction of a DB. Its statements take ? placeholders, as the
// DB's do; it runs one statement at a time.
type Tx struct {
	tx   *sql.Tx
	db   *DB
	done func() // gives the writer's turn back; called once, at the end
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = t.db.Dialect.Rebind(query)
	if s := t.db.stmts.get(query); s != nil {
		return t.tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// QueryContext runs a query in the transaction. Close the rows before the
// transaction's next statement.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = t.db.Dialect.Rebind(query)
	if s := t.db.stmts.get(query); s != nil {
		return t.tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query expected to return at most one row in the
// transaction.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	query = t.db.Dialect.Rebind(query)
	if s := t.db.stmts.get(query); s != nil {
		return t.tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// Commit commits the transaction, and then runs the DB's OnCommit hook.
func (t *Tx) Commit() error {
	err := t.tx.Commit()
	t.done()
	if err != nil {
		return err
	}
	t.db.committed()
	return nil
}

// Rollback undoes the transaction; after a Commit it returns sql.ErrTxDone.
func (t *Tx) Rollback() error {
	err := t.tx.Rollback()
	t.done()
	return err
}

// Begin starts a transaction that the caller commits or rolls back, for
// code that cannot run its work inside Atomic. Prefer Atomic.
func (db *DB) Begin(ctx context.Context) (*Tx, error) {
	var opts *sql.TxOptions
	if db.Dialect == MySQL {
		// MySQL defaults to REPEATABLE READ, where a plain read in a
		// transaction sees its first snapshot; READ COMMITTED, as on
		// PostgreSQL, keeps one reasoning for both servers.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	done, err := db.writer.wait(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := db.pool.BeginTx(ctx, opts)
	if err != nil {
		done()
		return nil, err
	}
	return &Tx{tx: tx, db: db, done: done}, nil
}

// txKey finds a pool's ambient transaction in a context. It is keyed by the
// pool, so a context can carry transactions of several databases and each
// database finds only its own.
type txKey struct{ pool *sql.DB }

// ambient is the transaction in a context and how deep the unit of work
// running in that context is nested: 0 for the transaction itself, n for
// the n-th savepoint above it.
type ambient struct {
	tx    *Tx
	depth int
}

// WithTx returns ctx carrying tx as db's ambient transaction, for code that
// holds tx but not a context carrying it: code that began tx itself, or an
// InTx callback (ctx := db.WithTx(ctx, tx) as its first line, so that
// outbox.Add and the store's own calls in the callback join tx). Units run
// with Atomic or InTx in the returned context nest inside tx as savepoints;
// committing or rolling back tx stays with whoever began it.
func (db *DB) WithTx(ctx context.Context, tx *Tx) context.Context {
	if a, ok := ctx.Value(txKey{db.pool}).(*ambient); ok && a.tx == tx {
		return ctx // already there, at its depth
	}
	return context.WithValue(ctx, txKey{db.pool}, &ambient{tx: tx})
}

// TxFrom returns db's ambient transaction in ctx, if it carries one. A
// transaction of another database does not count.
func (db *DB) TxFrom(ctx context.Context) (*Tx, bool) {
	a, ok := ctx.Value(txKey{db.pool}).(*ambient)
	if !ok {
		return nil, false
	}
	return a.tx, true
}

// Atomic runs fn as one unit of work, with the transaction in the context it
// is given. Without an ambient transaction in ctx, Atomic begins one, commits
// it if fn returns nil and rolls it back otherwise. Inside one, the unit
// nests as a SAVEPOINT of that transaction: if fn fails, only its own work is
// undone and the error is returned to the enclosing unit, which decides
// whether to carry on; nothing is committed until the outermost unit is.
//
// When the server ends the outermost transaction as the loser of a deadlock
// or a serialization conflict (IsRetryable), Atomic runs fn again on a new
// transaction, up to Attempts times in all: such conflicts are routine on
// PostgreSQL and MySQL under concurrent writers. So fn may run more than
// once: it must leave nothing behind outside the database but its result
// (reset what it collects at its start; count and notify after the commit).
func (db *DB) Atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	if a, ok := ctx.Value(txKey{db.pool}).(*ambient); ok {
		return db.nested(ctx, a, fn)
	}
	for attempt := 1; ; attempt++ {
		err := db.atomic(ctx, fn)
		if err == nil || attempt == Attempts || !IsRetryable(err) {
			return err
		}
		// A short, jittered pause, so the winners finish first and the
		// losers do not collide again in step.
		pause := time.Duration(attempt)*5*time.Millisecond + rand.N(10*time.Millisecond)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

// Attempts is how many times Atomic runs a unit of work that keeps losing
// deadlocks or serialization conflicts before it returns the error.
const Attempts = 4

// atomic runs fn once in a transaction of its own.
func (db *DB) atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	committed := false
	defer func() {
		// Reached without a commit by an error or a panic in fn; a
		// panic goes on up once the transaction is gone.
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(context.WithValue(ctx, txKey{db.pool}, &ambient{tx: tx})); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// nested runs fn in a savepoint of the ambient transaction a.
func (db *DB) nested(ctx context.Context, a *ambient, fn func(ctx context.Context) error) (err error) {
	inner := &ambient{tx: a.tx, depth: a.depth + 1}
	name := fmt.Sprintf("sqldb_unit_%d", inner.depth)
	if _, err := a.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return fmt.Errorf("opening savepoint: %w", err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// fn failed or panicked: undo its work, and only its work. The
		// undo must run even if ctx has ended; if the transaction itself is
		// gone, there is nothing left to undo.
		uctx := context.WithoutCancel(ctx)
		_, rbErr := a.tx.ExecContext(uctx, "ROLLBACK TO SAVEPOINT "+name)
		if rbErr == nil {
			_, rbErr = a.tx.ExecContext(uctx, "RELEASE SAVEPOINT "+name)
		}
		// A deadlock on MySQL has rolled the whole transaction back, its
		// savepoints with it: the error says so already.
		if rbErr != nil && err != nil && !errors.Is(rbErr, sql.ErrTxDone) && !IsRetryable(err) {
			err = errors.Join(err, fmt.Errorf("rolling back savepoint: %w", rbErr))
		}
	}()
	if err := fn(context.WithValue(ctx, txKey{db.pool}, inner)); err != nil {
		return err
	}
	if _, err := a.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return fmt.Errorf("releasing savepoint: %w", err)
	}
	done = true
	return nil
}

// InTx runs fn as one unit of work on a transaction, like Atomic, for code
// that works on the transaction directly: fn gets the transaction it begins,
// or, when ctx carries an ambient transaction of db, that transaction inside
// a savepoint of fn's own.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return db.Atomic(ctx, func(ctx context.Context) error {
		tx, _ := db.TxFrom(ctx)
		return fn(tx)
	})
}

// ExecContext runs a statement in db's ambient transaction in ctx, or on the
// pool when there is none.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx, ok := db.TxFrom(ctx); ok {
		return tx.ExecContext(ctx, query, args...)
	}
	done, err := db.writer.wait(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	query = db.Dialect.Rebind(query)
	if s := db.stmts.get(query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return db.pool.ExecContext(ctx, query, args...)
}

// QueryContext runs a query in db's ambient transaction in ctx, or on the
// pool when there is none. The rows must be closed before the transaction's
// next statement: PostgreSQL and MySQL connections run one at a time.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if tx, ok := db.TxFrom(ctx); ok {
		return tx.QueryContext(ctx, query, args...)
	}
	query = db.Dialect.Rebind(query)
	if s := db.stmts.get(query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return db.pool.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query expected to return at most one row in db's
// ambient transaction in ctx, or on the pool when there is none.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if tx, ok := db.TxFrom(ctx); ok {
		return tx.QueryRowContext(ctx, query, args...)
	}
	query = db.Dialect.Rebind(query)
	if s := db.stmts.get(query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return db.pool.QueryRowContext(ctx, query, args...)
}
