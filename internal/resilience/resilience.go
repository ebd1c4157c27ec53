// Package resilience guards the calls one process makes to the services it
// depends on: per upstream a circuit breaker (sony/gobreaker), a bulkhead
// that bounds the calls in flight, and the policy for bounded, jittered
// retries (cenkalti/backoff); it counts what each of these edges does for
// the metrics and the admin listing. It knows nothing of the shop.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/microshop/microshop/internal/fail"
)

// Policy is how every edge of one caller is guarded.
type Policy struct {
	// Failures is how many failed attempts in a row open a breaker.
	Failures int
	// OpenTimeout is how long an open breaker refuses every call before it
	// lets probes through (half-open).
	OpenTimeout time.Duration
	// HalfOpenProbes is how many calls a half-open breaker lets through at
	// once; that many successes in a row close it, one failure opens it
	// again. Bounding the probes keeps a recovering service from a herd.
	HalfOpenProbes int
	// MaxAttempts bounds the attempts of one retryable call, the first
	// included; 1 means no retries.
	MaxAttempts int
	// Bulkhead is how many calls to one upstream may be in flight at once;
	// one more is refused at once rather than queued.
	Bulkhead int
	// AttemptTimeout caps one attempt, within what the caller has left.
	AttemptTimeout time.Duration
	// BackoffInitial and BackoffMax shape the wait between attempts: it
	// doubles from BackoffInitial up to BackoffMax, each wait jittered by
	// half of itself either way so that callers do not retry in step.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
}

// DefaultPolicy is the policy of a shop started without settings.
func DefaultPolicy() Policy {
	return Policy{
		Failures:       5,
		OpenTimeout:    30 * time.Second,
		HalfOpenProbes: 1,
		MaxAttempts:    3,
		Bulkhead:       64,
		AttemptTimeout: 5 * time.Second,
		BackoffInitial: 50 * time.Millisecond,
		BackoffMax:     time.Second,
	}
}

// Validate reports every value of p that cannot guard a call.
func (p Policy) Validate() error {
	var errs []error
	if p.Failures < 1 {
		errs = append(errs, errors.New("breaker failures: at least 1"))
	}
	if p.OpenTimeout <= 0 {
		errs = append(errs, errors.New("breaker open timeout: above 0"))
	}
	if p.HalfOpenProbes < 1 {
		errs = append(errs, errors.New("half-open probes: at least 1"))
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, errors.New("max attempts: at least 1"))
	}
	if p.Bulkhead < 1 {
		errs = append(errs, errors.New("bulkhead: at least 1"))
	}
	if p.AttemptTimeout <= 0 {
		errs = append(errs, errors.New("attempt timeout: above 0"))
	}
	if p.BackoffInitial <= 0 || p.BackoffMax < p.BackoffInitial {
		errs = append(errs, errors.New("backoff: initial above 0, and max at least initial"))
	}
	return errors.Join(errs...)
}

// Backoff returns a fresh schedule of waits between the attempts of one
// call: exponential, capped and jittered.
func (p Policy) Backoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.BackoffInitial
	b.MaxInterval = p.BackoffMax
	b.Multiplier = 2
	b.RandomizationFactor = 0.5
	b.Reset()
	return b
}

// Outcome is what one attempt tells a breaker about its upstream.
type Outcome int

// The outcomes of an attempt.
const (
	Success Outcome = iota // the upstream answered, even if with a 4xx
	Failure                // the upstream could not answer: unreachable, too slow, 5xx or 429
	Ignored                // says nothing of the upstream, such as a caller that gave up
)

// Reasons a call is refused without reaching the network; a refused call's
// error wraps one of them.
var (
	ErrOpen = errors.New("circuit breaker open")
	ErrFull = errors.New("bulkhead full")
)

// States of a breaker, as listed and exported.
const (
	StateClosed   = "closed"
	StateHalfOpen = "half-open"
	StateOpen     = "open"
)

// Edges are the outgoing edges of one caller, one per upstream, made on
// first use and kept for the life of the process.
type Edges struct {
	from   string
	policy Policy
	log    *slog.Logger

	mu    sync.Mutex
	edges map[string]*Edge
}

// NewEdges returns the edges of the caller named from, each guarded by p.
// Breaker state changes are logged to log (nil: not logged).
func NewEdges(from string, p Policy, log *slog.Logger) *Edges {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Edges{from: from, policy: p, log: log, edges: map[string]*Edge{}}
}

// From names the caller.
func (e *Edges) From() string { return e.from }

// Policy is how the edges are guarded.
func (e *Edges) Policy() Policy { return e.policy }

// Edge returns the edge to the upstream named to, made on first use.
func (e *Edges) Edge(to string) *Edge {
	e.mu.Lock()
	defer e.mu.Unlock()
	if edge, ok := e.edges[to]; ok {
		return edge
	}
	edge := newEdge(e.from, to, e.policy, e.log)
	e.edges[to] = edge
	return edge
}

// all returns every edge, by upstream name.
func (e *Edges) all() []*Edge {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Edge, 0, len(e.edges))
	for _, edge := range e.edges {
		out = append(out, edge)
	}
	slices.SortFunc(out, func(a, b *Edge) int { return strings.Compare(a.to, b.to) })
	return out
}

// List describes every edge, by upstream name.
func (e *Edges) List() []Status {
	edges := e.all()
	out := make([]Status, 0, len(edges))
	for _, edge := range edges {
		out = append(out, edge.Status())
	}
	return out
}

// Edge guards the calls of one caller to one upstream.
type Edge struct {
	from, to string
	policy   Policy
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	slots    chan struct{} // the bulkhead: one token per call in flight

	openedAt atomic.Int64 // unix nanoseconds of the last opening

	requests, attempts, failures, retries atomic.Uint64
	refusedOpen, refusedFull, fallbacks   atomic.Uint64
	entered                               [3]atomic.Uint64 // transitions into each gobreaker.State
}

// errFailure and errIgnored carry an Outcome through gobreaker's err-based
// accounting.
var (
	errFailure = errors.New("failure")
	errIgnored = errors.New("ignored")
)

func newEdge(from, to string, p Policy, log *slog.Logger) *Edge {
	e := &Edge{from: from, to: to, policy: p, slots: make(chan struct{}, max(p.Bulkhead, 1))}
	e.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        from + "->" + to,
		MaxRequests: uint32(max(p.HalfOpenProbes, 1)),
		Timeout:     p.OpenTimeout,
		// Interval 0: the counts of a closed breaker are never cleared on
		// a clock, so only failures in a row open it.
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(max(p.Failures, 1)) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errIgnored) },
		IsSuccessful: func(err error) bool { return err == nil },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				e.openedAt.Store(time.Now().UnixNano())
			}
			e.entered[to].Add(1)
			level := slog.LevelInfo
			if to == gobreaker.StateOpen {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "circuit breaker changed state",
				slog.String("from", e.from), slog.String("to", e.to),
				slog.String("was", stateName(from)), slog.String("now", stateName(to)))
		},
	})
	return e
}

// To names the upstream.
func (e *Edge) To() string { return e.to }

// Policy is how the edge is guarded.
func (e *Edge) Policy() Policy { return e.policy }

// Enter admits one call into the bulkhead, or refuses it at once with
// fail.Unavailable (wrapping ErrFull) when Bulkhead calls are in flight.
// The caller must call leave when the call is over.
func (e *Edge) Enter() (leave func(), err error) {
	e.requests.Add(1)
	select {
	case e.slots <- struct{}{}:
		return func() { <-e.slots }, nil
	default:
		e.refusedFull.Add(1)
		return nil, fail.Wrap(fail.Unavailable, ErrFull, "too many calls to %s in flight", e.to)
	}
}

// Try asks the breaker to let one attempt through. An open breaker, or a
// half-open one with its probes all out, refuses at once with
// fail.Unavailable (wrapping ErrOpen). Otherwise the caller must report
// the attempt's outcome through done, once.
func (e *Edge) Try() (done func(Outcome), err error) {
	report, err := e.breaker.Allow()
	if err != nil {
		e.refusedOpen.Add(1)
		return nil, fail.Wrap(fail.Unavailable, ErrOpen, "%s is unavailable (circuit open)", e.to)
	}
	return func(o Outcome) {
		switch o {
		case Success:
			report(nil)
		case Failure:
			e.failures.Add(1)
			report(errFailure)
		default:
			report(errIgnored)
		}
	}, nil
}

// Attempted counts one attempt that went to the network.
func (e *Edge) Attempted() { e.attempts.Add(1) }

// Retried counts one retry, decided before its wait.
func (e *Edge) Retried() { e.retries.Add(1) }

// FellBack counts one answer served from a fallback instead of the upstream.
func (e *Edge) FellBack() { e.fallbacks.Add(1) }

// State is the breaker's state: StateClosed, StateHalfOpen or StateOpen.
func (e *Edge) State() string { return stateName(e.breaker.State()) }

// RetryAfter is how long until an open breaker lets a probe through: what
// a refused caller should be told to wait. It is zero unless open.
func (e *Edge) RetryAfter() time.Duration {
	if e.breaker.State() != gobreaker.StateOpen {
		return 0
	}
	opened := time.Unix(0, e.openedAt.Load())
	return max(time.Until(opened.Add(e.policy.OpenTimeout)), 0)
}

// Status is one edge as the admin listing shows it. Requests, attempts,
// failures, retries, rejected and fallbacks count since the process
// started; consecutive_failures is the breaker's current run.
type Status struct {
	From                string `json:"from"`
	To                  string `json:"to"`
	State               string `json:"state"`
	Requests            uint64 `json:"requests"`
	Attempts            uint64 `json:"attempts"`
	Failures            uint64 `json:"failures"`
	ConsecutiveFailures uint64 `json:"consecutive_failures"`
	Retries             uint64 `json:"retries"`
	Rejected            uint64 `json:"rejected"`
	Fallbacks           uint64 `json:"fallbacks"`
}

// Status describes the edge now.
func (e *Edge) Status() Status {
	state := e.State() // first: it moves an expired open breaker to half-open
	return Status{
		From: e.from, To: e.to, State: state,
		Requests:            e.requests.Load(),
		Attempts:            e.attempts.Load(),
		Failures:            e.failures.Load(),
		ConsecutiveFailures: uint64(e.breaker.Counts().ConsecutiveFailures),
		Retries:             e.retries.Load(),
		Rejected:            e.refusedOpen.Load() + e.refusedFull.Load(),
		Fallbacks:           e.fallbacks.Load(),
	}
}

func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateClosed:
		return StateClosed
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	}
	return fmt.Sprintf("state(%d)", int(s))
}
