package sqldb

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// SQLite lets one transaction write at a time. Every transaction here
// begins IMMEDIATE (it takes the write lock at BEGIN), and a connection
// that finds the lock taken sleeps in SQLite's busy handler: 1, 2, 5, 10
// ... up to 100 ms between tries, whatever the holder is doing. Under many
// writers the lock sat free while its waiters slept, a waiter could lose
// every retry for a second, and each waiter held one of the pool's
// connections while it slept, so reads queued behind the writers too: the
// one-process shop completed fewer checkouts at 200 offered a second than
// at 100.
//
// A writer takes turns in the process instead. Whoever wants to write
// waits here, holding no connection, and is handed the turn the moment the
// previous writer commits or rolls back, in the order they came. SQLite's
// busy handler still covers other processes on the same file (a second
// instance of a service, the sqlite3 shell).
type writer struct {
	turn     chan struct{} // holds a token while someone writes
	patience time.Duration // how long a writer waits for its turn
	waiting  atomic.Int64  // writers waiting for their turn now
}

// busyTimeout is how long a writer waits for the write lock, in SQLite's
// busy handler and for its turn here: long enough for any transaction of
// the shop, short enough that a stuck one shows up as an error.
const busyTimeout = 10 * time.Second

func newWriter(patience time.Duration) *writer {
	return &writer{turn: make(chan struct{}, 1), patience: patience}
}

// wait blocks until it is the caller's turn to write, and returns the
// function that ends the turn (safe to call more than once). A nil writer
// (PostgreSQL and MySQL, which lock rows, not the database) lets everyone
// in at once.
func (w *writer) wait(ctx context.Context) (done func(), err error) {
	if w == nil {
		return func() {}, nil
	}
	select {
	case w.turn <- struct{}{}: // nobody writing: no timer, no wait
		return w.end(), nil
	default:
	}
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	timer := time.NewTimer(w.patience)
	defer timer.Stop()
	select {
	case w.turn <- struct{}{}:
		return w.end(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		// As SQLite would answer after its own busy timeout: a writer
		// that keeps the turn this long is stuck, or waits for itself
		// (a write outside its own transaction's context).
		return nil, fmt.Errorf("database is locked: no turn to write within %v", w.patience)
	}
}

// end returns the function that gives the turn back, once.
func (w *writer) end() func() {
	var once sync.Once
	return func() { once.Do(func() { <-w.turn }) }
}
