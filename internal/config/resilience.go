package config

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Resilience is how every call one service makes to another is guarded:
// the circuit breaker per upstream, the retries, and the bulkhead.
type Resilience struct {
	// BreakerFailures is how many failed attempts in a row open an
	// upstream's breaker.
	BreakerFailures int
	// BreakerOpenTimeout is how long an open breaker refuses calls before
	// it lets a probe through.
	BreakerOpenTimeout time.Duration
	// RetryMaxAttempts bounds the attempts of one idempotent call, the
	// first included (1: never retry).
	RetryMaxAttempts int
	// Bulkhead is how many calls to one upstream may be in flight at once.
	Bulkhead int
}

// loadResilience reads the resilience settings through get, reporting every
// invalid one.
func loadResilience(get func(key, def string) string) (Resilience, error) {
	var (
		r    Resilience
		errs []error
		err  error
	)
	r.BreakerFailures, err = intIn(get("MICROSHOP_BREAKER_FAILURES", "5"), 1, 1000)
	errs = append(errs, field("MICROSHOP_BREAKER_FAILURES", err))
	r.BreakerOpenTimeout, err = duration(get("MICROSHOP_BREAKER_OPEN_TIMEOUT", "30s"))
	if err == nil && (r.BreakerOpenTimeout < 10*time.Millisecond || r.BreakerOpenTimeout > time.Hour) {
		err = errors.New("from 10ms to 1h")
	}
	errs = append(errs, field("MICROSHOP_BREAKER_OPEN_TIMEOUT", err))
	r.RetryMaxAttempts, err = intIn(get("MICROSHOP_RETRY_MAX_ATTEMPTS", "3"), 1, 10)
	errs = append(errs, field("MICROSHOP_RETRY_MAX_ATTEMPTS", err))
	r.Bulkhead, err = intIn(get("MICROSHOP_BULKHEAD_SIZE", "64"), 1, 10000)
	errs = append(errs, field("MICROSHOP_BULKHEAD_SIZE", err))
	return r, errors.Join(errs...)
}

// intIn parses a whole number from lo to hi.
func intIn(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q: want a whole number from %d to %d", s, lo, hi)
	}
	return n, nil
}
