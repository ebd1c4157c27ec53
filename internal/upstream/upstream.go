// Package upstream is how one microshop service calls another over HTTP: the
// callee is found by name through the registry, the call carries the
// caller's request id and runs within the caller's deadline, it is guarded
// per callee by a circuit breaker and a bulkhead and retried, when that is
// safe, with capped jittered backoff, and an error answer comes back as the
// same kind of error it was on the other side.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/web"
)

// Resolver finds the address of a healthy instance of a service.
type Resolver interface {
	Resolve(ctx context.Context, service string) (string, error)
	Forget(service string)
}

// DefaultTimeout bounds a call whose context has no deadline of its own.
const DefaultTimeout = 5 * time.Second

// maxResponseBytes bounds what is read from another service's answer.
const maxResponseBytes = 4 << 20

// Client calls other services. It is safe for concurrent use, and meant to
// be shared by everything one service calls with: its breakers and
// bulkheads are per callee.
type Client struct {
	resolver Resolver
	hc       *http.Client
	caller   string
	edges    *resilience.Edges

	// Authorize, when set, is called on every outgoing request, each retry
	// included, just before it is sent: it may add credentials. An error
	// stops the call without sending anything.
	Authorize func(ctx context.Context, r *http.Request) error
}

// Option changes how New builds a client.
type Option func(*Client)

// WithEdges guards the client's calls with edges, whose policy and counts
// it then shares with whatever else uses them. Without it, a client has
// edges of its own under resilience.DefaultPolicy.
func WithEdges(edges *resilience.Edges) Option {
	return func(cl *Client) { cl.edges = edges }
}

// WithTransport wraps the client's transport, e.g. to trace every call.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(cl *Client) { cl.hc.Transport = wrap(cl.hc.Transport) }
}

// New returns a client for the service named caller.
func New(caller string, resolver Resolver, opts ...Option) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.IdleConnTimeout = 30 * time.Second
	cl := &Client{resolver: resolver, hc: &http.Client{Transport: tr}, caller: caller}
	for _, opt := range opts {
		opt(cl)
	}
	if cl.edges == nil {
		cl.edges = resilience.NewEdges(caller, resilience.DefaultPolicy(), nil)
	}
	return cl
}

// Edges are the client's outgoing edges: their breakers, bulkheads and counts.
func (cl *Client) Edges() *resilience.Edges { return cl.edges }

// Call is one request to another service.
type Call struct {
	Service string // the callee, by registry name
	Method  string
	Path    string // with query
	Body    any    // sent as JSON when not nil
	Out     any    // a 2xx answer is decoded into it when not nil
	Token   string // bearer token to send, if any
	Header  http.Header
	// Idempotent marks a POST or PATCH that is safe to repeat (one keyed by
	// an order id, say), so that it is retried like a GET, HEAD, PUT or
	// DELETE. Any other POST or PATCH is sent once: a retry after a lost
	// answer could do it twice.
	Idempotent bool
}

// idempotent says whether c may be sent more than once.
func (c Call) idempotent() bool {
	switch c.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return c.Idempotent
}

// Do performs c. A 4xx or 5xx answer becomes an error of the kind its status
// maps to, with the callee's problem detail as the message; an unreachable
// callee, an open circuit and a full bulkhead are fail.Unavailable.
//
// The call runs within ctx's deadline (DefaultTimeout when it has none),
// each attempt within the policy's AttemptTimeout of it. An idempotent call
// that fails in a way a retry can mend (a refused or reset connection, a
// 502, 503 or 504, a 429 after its Retry-After) is tried again, at most
// MaxAttempts times in all, after a jittered backoff; no attempt starts or
// waits beyond the deadline, and none passes an open breaker.
func (cl *Client) Do(ctx context.Context, c Call) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var body []byte
	if c.Body != nil {
		b, err := json.Marshal(c.Body)
		if err != nil {
			return fmt.Errorf("encoding request to %s: %w", c.Service, err)
		}
		body = b
	}
	edge := cl.edges.Edge(c.Service)
	leave, err := edge.Enter()
	if err != nil {
		return err
	}
	defer leave()

	policy := edge.Policy()
	attempts := 1
	if c.idempotent() {
		attempts = policy.MaxAttempts
	}
	var last error // the last attempt's own error, whatever stopped the retries
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		last = cl.attempt(ctx, edge, c, body)
		if last == nil {
			return struct{}{}, nil
		}
		if ok, after := retryable(last); ok {
			if after > 0 {
				return struct{}{}, &backoff.RetryAfterError{Duration: after}
			}
			return struct{}{}, last
		}
		return struct{}{}, backoff.Permanent(last)
	},
		backoff.WithBackOff(policy.Backoff()),
		backoff.WithMaxTries(uint(attempts)),
		// No wait may end past the deadline: a retry that could not
		// finish in time is not started.
		backoff.WithMaxElapsedTime(max(time.Until(deadline(ctx)), time.Nanosecond)),
		backoff.WithNotify(func(error, time.Duration) { edge.Retried() }),
	)
	if err != nil {
		return last
	}
	return nil
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// attempt sends c once, through the edge's breaker.
func (cl *Client) attempt(ctx context.Context, edge *resilience.Edge, c Call, body []byte) error {
	// An attempt never starts once the caller's budget is spent.
	if err := ctx.Err(); err != nil {
		return fail.Wrap(fail.Unavailable, err, "%s unavailable: no time left", c.Service)
	}
	done, err := edge.Try()
	if err != nil {
		return err
	}
	addr, err := cl.resolver.Resolve(ctx, c.Service)
	if err != nil {
		// No instance to call is the callee being unavailable, to us.
		if fail.Is(err, fail.Unavailable) && ctx.Err() == nil {
			done(resilience.Failure)
		} else {
			done(resilience.Ignored)
		}
		return err
	}
	err = cl.send(ctx, edge, addr, c, body)
	done(outcomeOf(ctx, err))
	return err
}

// send makes one HTTP exchange with the instance at addr.
func (cl *Client) send(ctx context.Context, edge *resilience.Edge, addr string, c Call, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, edge.Policy().AttemptTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, "http://"+addr+c.Path, rd)
	if err != nil {
		return fmt.Errorf("building request to %s: %w", c.Service, err)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "microshop-"+cl.caller)
	if id := web.RequestIDFrom(ctx); id != "" {
		req.Header.Set(web.RequestIDHeader, id)
	}
	web.SetDeadline(ctx, req.Header) // the callee works no longer than this caller waits
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if cl.Authorize != nil {
		if err := cl.Authorize(ctx, req); err != nil {
			return &notSent{fmt.Errorf("authorizing the call to %s: %w", c.Service, err)}
		}
	}
	edge.Attempted()
	resp, err := cl.hc.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			cl.resolver.Forget(c.Service) // the instance may be gone: resolve afresh
		}
		return fail.Wrap(fail.Unavailable, err, "%s unavailable", c.Service)
	}
	defer resp.Body.Close()
	lr := &io.LimitedReader{R: resp.Body, N: maxResponseBytes}
	if resp.StatusCode >= 400 {
		var p web.Problem
		_ = json.NewDecoder(lr).Decode(&p)
		kind := web.KindOfStatus(resp.StatusCode)
		if p.Detail == "" {
			p.Detail = fmt.Sprintf("%s answered %s", c.Service, resp.Status)
		}
		se := &StatusError{Service: c.Service, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
		return &fail.Error{Kind: kind, Message: p.Detail, Err: se}
	}
	if c.Out != nil {
		if err := json.NewDecoder(lr).Decode(c.Out); err != nil {
			if lr.N <= 0 { // cut at the bound by us, not by a lost connection
				return fail.Wrap(fail.Internal, err, "the answer of %s is over %d bytes", c.Service, maxResponseBytes)
			}
			return fmt.Errorf("decoding answer of %s: %w", c.Service, err)
		}
	}
	_, _ = io.Copy(io.Discard, lr)
	return nil
}

// notSent is a failure on the caller's side before anything was sent.
type notSent struct{ err error }

func (e *notSent) Error() string { return e.err.Error() }
func (e *notSent) Unwrap() error { return e.err }

// outcomeOf is what an attempt's error says about the callee, for its
// breaker: only a callee that could not answer, or answered that it could
// not (5xx, 429), counts against it.
func outcomeOf(ctx context.Context, err error) resilience.Outcome {
	var (
		se *StatusError
		ns *notSent
		ue *url.Error
	)
	switch {
	case err == nil:
		return resilience.Success
	case errors.As(err, &ns), errors.Is(ctx.Err(), context.Canceled):
		return resilience.Ignored // the caller's doing, not the callee's
	case errors.As(err, &se):
		if se.Status >= 500 || se.Status == http.StatusTooManyRequests {
			return resilience.Failure
		}
		return resilience.Success
	case errors.As(err, &ue):
		return resilience.Failure // no exchange: unreachable, cut, or too slow
	}
	return resilience.Success // it answered, if with a body that could not be read
}

// retryable says whether another attempt may mend err, and how long the
// callee asked to be left alone first (zero: the backoff decides).
func retryable(err error) (bool, time.Duration) {
	var (
		se *StatusError
		ue *url.Error
	)
	switch {
	case errors.As(err, &se):
		switch se.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true, se.RetryAfter
		}
	case errors.As(err, &ue):
		// A connection refused, reset or closed before an answer: the
		// request was not handled, or an idempotent one may be handled
		// again. Timeouts are not retried: a slow callee would only get
		// more work, and the caller's budget is mostly spent.
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
			errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return true, 0
		}
	}
	return false, 0
}

// maxRetryAfter bounds a Retry-After in seconds, so that no value overflows
// a Duration; any wait that long is beyond every budget anyway.
const maxRetryAfter = 24 * 60 * 60

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(min(s, maxRetryAfter)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// StatusError records the status another service answered with.
type StatusError struct {
	Service string
	Status  int
	// RetryAfter is the wait the callee asked for with Retry-After, if any.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s answered %d", e.Service, e.Status) }
