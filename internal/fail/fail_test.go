package fail

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

// sqlStateError stands for a database driver's error that gives its
// SQLSTATE, as PostgreSQL's driver's *pgconn.PgError does.
type sqlStateError struct{ code string }

func (e sqlStateError) Error() string    { return "server said " + e.code }
func (e sqlStateError) SQLState() string { return e.code }

// TestKindOfALostConnection: a failed connection to a dependency is
// Unavailable (503, try again), whatever wraps it; any other error of no
// kind is Internal, and an error's own kind always wins.
func TestKindOfALostConnection(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"cut off mid-answer", fmt.Errorf("reading order: %w", io.ErrUnexpectedEOF), Unavailable},
		{"driver found it broken", fmt.Errorf("query: %w", driver.ErrBadConn), Unavailable},
		{"refused", fmt.Errorf("connecting: %w", dial), Unavailable},
		{"reset", fmt.Errorf("writing: %w", syscall.ECONNRESET), Unavailable},
		{"starting up", fmt.Errorf("failed to connect: %w", sqlStateError{"57P03"}), Unavailable},
		{"shutting down", sqlStateError{"57P01"}, Unavailable},
		{"connection exception", sqlStateError{"08006"}, Unavailable},
		{"unique violation", sqlStateError{"23505"}, Internal},
		{"a bug", errors.New("nil map"), Internal},
		{"nothing", nil, Internal},
		{"its own kind wins", Wrap(Conflict, io.ErrUnexpectedEOF, "taken"), Conflict},
		{"wrapped internal stays so", Wrap(Internal, syscall.ECONNRESET, ""), Internal},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if got := MessageOf(fmt.Errorf("x: %w", io.ErrUnexpectedEOF)); got == "internal error" {
		t.Errorf("a lost connection's message = %q, want one that says to try again", got)
	}
	if got := MessageOf(errors.New("secret detail")); got != "internal error" {
		t.Errorf("a bug's message = %q, want %q", got, "internal error")
	}
}
