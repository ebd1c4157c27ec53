package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
)

// stats are the generator's counters, safe from any goroutine.
type stats struct {
	arrivals, skipped    atomic.Int64
	sent, ok, failed     atomic.Int64
	placed               atomic.Int64
	completed, cancelled atomic.Int64
	restocks, customers  atomic.Int64
	unexpected           atomic.Int64
	mu                   sync.Mutex
	errors               map[string]int // failed requests by kind
	outcomes             map[string]int // orders by kind and end, e.g. "declined:CANCELLED"
}

// answered counts one request and how it went: err from the client, or
// status when there was an answer.
func (s *stats) answered(status int, err error) {
	s.sent.Add(1)
	if err == nil && status >= 200 && status < 300 {
		s.ok.Add(1)
		return
	}
	s.failed.Add(1)
	kind := errorKind(status, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errors == nil {
		s.errors = map[string]int{}
	}
	s.errors[kind]++
}

// outcome counts how an order of kind ended (COMPLETED, CANCELLED, or
// unfinished when the run gave up waiting).
func (s *stats) outcome(kind orderKind, end string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcomes == nil {
		s.outcomes = map[string]int{}
	}
	s.outcomes[string(kind)+":"+end]++
}

func (s *stats) errorCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errors)
}

func (s *stats) outcomeCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.outcomes)
}

// errorKind names what went wrong with a request: rate_limited for a 429,
// http_NNN for another status, or the class of transport error.
func errorKind(status int, err error) string {
	switch {
	case err == nil && status == http.StatusTooManyRequests:
		return "rate_limited"
	case err == nil:
		return fmt.Sprintf("http_%d", status)
	case errors.Is(err, context.Canceled):
		return "canceled" // the run's drain ended before the answer came
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, errBadAnswer):
		return "bad_answer"
	}
	return "transport"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
