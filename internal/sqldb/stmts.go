package sqldb

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// SQLite compiles a statement's text into a program before it runs it, and
// under load that compiling took more CPU than running: every ExecContext,
// QueryContext and QueryRowContext on SQLite went through
// sqlite3_prepare_v2 again (about a tenth of the one-process shop's CPU at
// checkout). A stmtCache keeps each statement text prepared, so the
// program is compiled once per connection and then only reset, bound and
// stepped.
//
// Only SQLite uses it. PostgreSQL and MySQL plan on the server, where a
// server-side statement per connection and per query would count against
// the server's own limits (MySQL's max_prepared_stmt_count is shared by
// every client).
//
// A statement is prepared on the pool in the background the first time its
// text is seen, and that first call runs unprepared. Preparing on the pool
// takes a connection of its own: done in line from inside a transaction,
// it could wait for a connection that only a transaction waiting for this
// one's write lock would give back. A transaction then uses the pool's
// statement through sql.Tx.StmtContext, on its own connection.
type stmtCache struct {
	pool *sql.DB

	mu      sync.Mutex
	stmts   map[string]*sql.Stmt // nil value: being prepared
	closed  bool
	prepare sync.WaitGroup
}

const (
	// stmtCacheSize bounds the statement texts kept prepared; texts seen
	// after it is full run unprepared. The shop's stores use a few
	// hundred fixed texts; a store that built texts from data (IN lists of
	// varying length) cannot grow the cache without bound.
	stmtCacheSize = 512
	// prepareTimeout bounds a background prepare waiting for a connection.
	prepareTimeout = 10 * time.Second
)

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query, or nil when it is not
// prepared yet (then it starts preparing it) or cannot be kept.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, seen := c.stmts[query]
	if seen || c.closed || len(c.stmts) >= stmtCacheSize {
		return s
	}
	c.stmts[query] = nil
	c.prepare.Go(func() { c.prepareOne(query) })
	return nil
}

// prepareOne prepares query on the pool and keeps it; a text that fails to
// prepare (a syntax error, a table not there yet) is forgotten, so that it
// runs unprepared and reports its own error, and is tried again next time.
func (c *stmtCache) prepareOne(query string) {
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	s, err := c.pool.PrepareContext(ctx, query)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		delete(c.stmts, query)
	case c.closed:
		_ = s.Close()
	default:
		c.stmts[query] = s
	}
}

// close waits for the prepares under way and closes every statement, before
// the pool closes.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.prepare.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stmts {
		if s != nil {
			_ = s.Close()
		}
		delete(c.stmts, q)
	}
}
