// Package fail gives the shop's errors a kind, so that every layer can say what
// went wrong without knowing how the answer is carried (HTTP status, log level).
package fail

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// Kind says what sort of failure an error is. The zero Kind is Internal.
type Kind uint8

// The kinds of failure. Transport adapters map each to one answer, in one place.
const (
	Internal        Kind = iota // a bug or an unexpected failure; details never leave the process
	Invalid                     // the input is well-formed but its values break a rule
	Malformed                   // the input cannot be parsed
	NotFound                    // the thing asked for does not exist (or the caller may not know it does)
	Conflict                    // the request clashes with the current state
	Unauthenticated             // no credentials, or bad ones
	Forbidden                   // the caller is known but not allowed
	Unavailable                 // a dependency cannot answer now; trying again later may work
	TooLarge                    // the request is bigger than allowed
	Unsupported                 // the request's media type is not accepted
	TooMany                     // the caller sent too many requests
)

var kindNames = [...]string{
	Internal:        "internal",
	Invalid:         "invalid",
	Malformed:       "malformed",
	NotFound:        "not found",
	Conflict:        "conflict",
	Unauthenticated: "unauthenticated",
	Forbidden:       "forbidden",
	Unavailable:     "unavailable",
	TooLarge:        "too large",
	Unsupported:     "unsupported media type",
	TooMany:         "too many requests",
}

// String names the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is an error with a kind and a message meant for the caller. Err, when
// set, is the underlying cause; it is logged, never shown to a client.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

// Error implements error.
func (e *Error) Error() string {
	switch {
	case e.Err == nil:
		return e.Message
	case e.Message == "":
		return e.Err.Error()
	default:
		return e.Message + ": " + e.Err.Error()
	}
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k whose message, safe to show a caller, is
// formatted from format and args.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a caller-safe message and a cause that
// stays internal.
func Wrap(k Kind, err error, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of the first *Error in err's chain. An error of no
// kind that says a connection to a dependency failed (see LostConnection)
// is Unavailable: the same request may work once it is back. Anything else
// is Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if LostConnection(err) {
		return Unavailable
	}
	return Internal
}

// LostConnection reports whether err says that a connection to a
// dependency, a database above all, failed rather than the work on it: the
// connection was refused, reset or cut off mid-answer (or the database
// driver found it broken), or the database server answered that it is
// shutting down, starting up or lost the connection (SQLSTATE class 08 and
// 57P01 to 57P03, asked of any error that gives its SQLSTATE, as PostgreSQL's
// driver's do). Such a failure is the dependency's outage, not a bug.
func LostConnection(err error) bool {
	if err == nil {
		return false
	}
	for _, lost := range []error{driver.ErrBadConn, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, lost) {
			return true
		}
	}
	// A database driver's error that says the request was never sent (the
	// connection was closed or broken first), as PostgreSQL's driver's do.
	var unsent interface{ SafeToRetry() bool }
	if errors.As(err, &unsent) && unsent.SafeToRetry() {
		return true
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		code := state.SQLState()
		return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
	}
	var op *net.OpError // a dial, read or write on the network failed
	return errors.As(err, &op)
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// MessageOf returns the caller-safe message of err: the message of its first
// *Error, or a generic one for errors of no known kind.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal && e.Message != "" {
		return e.Message
	}
	if e == nil && LostConnection(err) {
		return "a dependency of this service is unavailable; try again shortly"
	}
	return "internal error"
}
