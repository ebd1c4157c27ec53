package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/resilience/resiliencetest"
	"github.com/microshop/microshop/internal/upstream"
)

// These tests count, never time: attempts that reached the network (seen
// by the client's Authorize hook, called just before each send), requests
// that reached the upstream, and the kinds of the errors returned.

// testPolicy is a policy with quick backoff and the given changes.
func testPolicy(change func(*resilience.Policy)) resilience.Policy {
	p := resilience.DefaultPolicy()
	p.BackoffInitial, p.BackoffMax = time.Millisecond, 5*time.Millisecond
	if change != nil {
		change(&p)
	}
	return p
}

// rig is a client calling "callee": a real upstream behind an in-process
// toxiproxy.
type rig struct {
	client *upstream.Client
	edge   *resilience.Edge
	up     *resiliencetest.Upstream
	proxy  *resiliencetest.Proxy
	sent   atomic.Int64 // attempts that went to the network
}

func newRig(t *testing.T, p resilience.Policy, h http.HandlerFunc) *rig {
	t.Helper()
	rg := &rig{up: resiliencetest.NewUpstream(t, h)}
	rg.proxy = resiliencetest.NewProxy(t, rg.up.Addr)
	edges := resilience.NewEdges("caller", p, nil)
	rg.client = upstream.New("caller", &resolver{addrs: map[string]string{"callee": rg.proxy.Addr}}, upstream.WithEdges(edges))
	rg.client.Authorize = func(context.Context, *http.Request) error {
		rg.sent.Add(1)
		return nil
	}
	rg.edge = edges.Edge("callee")
	return rg
}

func (rg *rig) get(ctx context.Context) error {
	return rg.client.Do(ctx, upstream.Call{Service: "callee", Method: http.MethodGet, Path: "/x"})
}

// waitState polls the breaker until it is in state; a breaker that never
// gets there fails the test when the test binary's deadline passes.
func waitState(t *testing.T, e *resilience.Edge, state string) {
	t.Helper()
	for e.State() != state {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestABreakerOpensAfterExactlyNFailuresThenFailsFastAndRecovers(t *testing.T) {
	const failures = 5
	rg := newRig(t, testPolicy(func(p *resilience.Policy) {
		p.Failures, p.MaxAttempts, p.OpenTimeout = failures, 1, 100*time.Millisecond
	}), resiliencetest.OK(map[string]string{"ok": "yes"}))
	ctx := context.Background()

	// The callee's connections are reset: every attempt fails.
	rg.proxy.Add(t, "down", "reset_peer", "upstream", map[string]any{"timeout": 0})
	for i := 1; i <= failures; i++ {
		if err := rg.get(ctx); !fail.Is(err, fail.Unavailable) || errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("call %d: error = %v, want unavailable from the network", i, err)
		}
		want := resilience.StateClosed
		if i == failures {
			want = resilience.StateOpen
		}
		if got := rg.edge.State(); got != want {
			t.Fatalf("after %d failures: state = %s, want %s", i, got, want)
		}
	}

	// Open: every call fails fast, with no attempt on the network.
	const refused = 20
	for i := range refused {
		if err := rg.get(ctx); !fail.Is(err, fail.Unavailable) || !errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("open call %d: error = %v, want unavailable (circuit open)", i, err)
		}
	}
	if got := rg.sent.Load(); got != failures {
		t.Errorf("attempts on the network = %d, want %d: an open breaker sends nothing", got, failures)
	}
	if got := rg.up.Arrivals(); got != 0 {
		t.Errorf("requests at the callee = %d, want 0", got)
	}
	if rg.edge.RetryAfter() <= 0 {
		t.Error("an open breaker says no time is left before it probes")
	}

	// After the open timeout, a probe goes through; its success closes it.
	rg.proxy.Remove(t, "down")
	waitState(t, rg.edge, resilience.StateHalfOpen)
	if err := rg.get(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := rg.edge.State(); got != resilience.StateClosed {
		t.Errorf("after a good probe: state = %s, want closed", got)
	}
	if got := rg.up.Arrivals(); got != 1 {
		t.Errorf("requests at the callee = %d, want 1 (the probe)", got)
	}
	st := rg.edge.Status()
	if st.Requests != failures+refused+1 || st.Attempts != failures+1 || st.Failures != failures || st.Rejected != refused {
		t.Errorf("status = %+v, want requests %d, attempts %d, failures %d, rejected %d",
			st, failures+refused+1, failures+1, failures, refused)
	}
	t.Logf("verdict: breaker failures_to_open=%d refused_while_open=%d network_attempts_while_open=%d probes=1 state=%s",
		failures, refused, rg.sent.Load()-failures-1, rg.edge.State())
}

func TestAFailedProbeOpensTheBreakerAgain(t *testing.T) {
	rg := newRig(t, testPolicy(func(p *resilience.Policy) {
		p.Failures, p.MaxAttempts, p.OpenTimeout = 2, 1, 50*time.Millisecond
	}), resiliencetest.Status(http.StatusServiceUnavailable))
	ctx := context.Background()
	for range 2 {
		_ = rg.get(ctx)
	}
	waitState(t, rg.edge, resilience.StateHalfOpen)
	if err := rg.get(ctx); !fail.Is(err, fail.Unavailable) || errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("probe error = %v, want the callee's 503", err)
	}
	if got := rg.edge.State(); got != resilience.StateOpen {
		t.Errorf("after a failed probe: state = %s, want open", got)
	}
	if got := rg.up.Arrivals(); got != 3 {
		t.Errorf("requests at the callee = %d, want 3", got)
	}
}

// TestHalfOpenLetsOnlyItsProbesThrough is the herd on recovery: while the
// one probe is out, everyone else is refused without reaching the callee.
func TestHalfOpenLetsOnlyItsProbesThrough(t *testing.T) {
	release := make(chan struct{})
	rg := newRig(t, testPolicy(func(p *resilience.Policy) {
		p.Failures, p.MaxAttempts, p.OpenTimeout, p.HalfOpenProbes = 1, 1, 50*time.Millisecond, 1
	}), resiliencetest.Status(http.StatusServiceUnavailable))
	ctx := context.Background()
	_ = rg.get(ctx) // opens
	waitState(t, rg.edge, resilience.StateHalfOpen)

	rg.up.Set(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	probe := make(chan error, 1)
	go func() { probe <- rg.get(ctx) }()
	for rg.up.Arrivals() != 2 { // the probe reached the callee
		time.Sleep(time.Millisecond)
	}
	const herd = 50
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range herd {
		wg.Go(func() {
			if err := rg.get(ctx); errors.Is(err, resilience.ErrOpen) {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if refused.Load() != herd {
		t.Errorf("refused while half-open = %d, want all %d", refused.Load(), herd)
	}
	if got := rg.up.Arrivals() - 1; got != 1 {
		t.Errorf("requests at the recovering callee = %d, want 1 (the probe limit)", got)
	}
	if got := rg.edge.State(); got != resilience.StateClosed {
		t.Errorf("state = %s, want closed after the probe succeeded", got)
	}
	t.Logf("verdict: herd=%d probes_reaching_callee=%d probe_limit=1 refused=%d", herd, rg.up.Arrivals()-1, refused.Load())
}

// TestRetriesStopAtTheirBound counts the requests reaching a failing
// callee: exactly requests x attempts, where attempts is MaxAttempts for a
// retryable failure of an idempotent call and 1 for anything else.
func TestRetriesStopAtTheirBound(t *testing.T) {
	const (
		maxAttempts = 3
		requests    = 10
	)
	tests := []struct {
		name       string
		method     string
		idempotent bool
		status     int
		want       int // attempts per request
	}{
		{"GET 503", http.MethodGet, false, http.StatusServiceUnavailable, maxAttempts},
		{"GET 502", http.MethodGet, false, http.StatusBadGateway, maxAttempts},
		{"GET 504", http.MethodGet, false, http.StatusGatewayTimeout, maxAttempts},
		{"GET 429", http.MethodGet, false, http.StatusTooManyRequests, maxAttempts},
		{"PUT 503", http.MethodPut, false, http.StatusServiceUnavailable, maxAttempts},
		{"DELETE 503", http.MethodDelete, false, http.StatusServiceUnavailable, maxAttempts},
		{"idempotent POST 503", http.MethodPost, true, http.StatusServiceUnavailable, maxAttempts},
		{"POST 503 is never retried", http.MethodPost, false, http.StatusServiceUnavailable, 1},
		{"PATCH 503 is never retried", http.MethodPatch, false, http.StatusServiceUnavailable, 1},
		{"GET 500 is a bug, not retried", http.MethodGet, false, http.StatusInternalServerError, 1},
		{"GET 400", http.MethodGet, false, http.StatusBadRequest, 1},
		{"GET 401", http.MethodGet, false, http.StatusUnauthorized, 1},
		{"GET 404", http.MethodGet, false, http.StatusNotFound, 1},
		{"GET 409", http.MethodGet, false, http.StatusConflict, 1},
		{"GET 422", http.MethodGet, false, http.StatusUnprocessableEntity, 1},
		{"idempotent POST 422", http.MethodPost, true, http.StatusUnprocessableEntity, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rg := newRig(t, testPolicy(func(p *resilience.Policy) {
				p.MaxAttempts, p.Failures = maxAttempts, 1000 // the breaker stays out of it
			}), resiliencetest.Status(tc.status))
			for range requests {
				err := rg.client.Do(context.Background(), upstream.Call{Service: "callee", Method: tc.method, Path: "/x",
					Body: map[string]int{"n": 1}, Idempotent: tc.idempotent})
				var se *upstream.StatusError
				if !errors.As(err, &se) || se.Status != tc.status {
					t.Fatalf("error = %v, want the callee's %d", err, tc.status)
				}
			}
			if got, want := rg.up.Arrivals(), int64(requests*tc.want); got != want {
				t.Errorf("requests at the callee = %d, want %d x %d = %d", got, requests, tc.want, want)
			}
			if got, want := rg.edge.Status().Retries, uint64(requests*(tc.want-1)); got != want {
				t.Errorf("retries counted = %d, want %d", got, want)
			}
		})
	}
}

// TestBrokenConnectionsAreRetriedOnlyWhenSafe resets every connection: the
// request may or may not have been handled, so only an idempotent call is
// sent again.
func TestBrokenConnectionsAreRetriedOnlyWhenSafe(t *testing.T) {
	tests := []struct {
		method     string
		idempotent bool
		want       int64
	}{
		{http.MethodGet, false, 3},
		{http.MethodPut, false, 3},
		{http.MethodPost, true, 3},
		{http.MethodPost, false, 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s idempotent=%v", tc.method, tc.idempotent), func(t *testing.T) {
			rg := newRig(t, testPolicy(func(p *resilience.Policy) { p.MaxAttempts, p.Failures = 3, 1000 }),
				resiliencetest.OK(map[string]string{}))
			rg.proxy.Add(t, "reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
			err := rg.client.Do(context.Background(), upstream.Call{Service: "callee", Method: tc.method, Path: "/x",
				Body: map[string]int{"n": 1}, Idempotent: tc.idempotent})
			if !fail.Is(err, fail.Unavailable) {
				t.Fatalf("error = %v, want unavailable", err)
			}
			if got := rg.sent.Load(); got != tc.want {
				t.Errorf("attempts on the network = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRetryAfterIsHonoured tells apart a client that waits as asked from
// one that retries on its own schedule, by counts alone: a wait that fits
// the budget is made (and the retry succeeds); one that does not is not
// made, although the backoff alone would have retried within milliseconds.
func TestRetryAfterIsHonoured(t *testing.T) {
	tests := []struct {
		retryAfter string
		budget     time.Duration
		wantErr    bool
		arrivals   int64
	}{
		{"1", 5 * time.Second, false, 2},
		{"3", 1500 * time.Millisecond, true, 1},
		{"86400", 5 * time.Second, true, 1},
		{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 5 * time.Second, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.retryAfter, func(t *testing.T) {
			var n atomic.Int64
			busy := resiliencetest.Status(http.StatusTooManyRequests, "Retry-After: "+tc.retryAfter)
			rg := newRig(t, testPolicy(nil), func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					busy(w, r)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			ctx, cancel := context.WithTimeout(context.Background(), tc.budget)
			defer cancel()
			err := rg.get(ctx)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !fail.Is(err, fail.TooMany) {
				t.Errorf("error = %v, want the callee's too many requests", err)
			}
			if got := rg.up.Arrivals(); got != tc.arrivals {
				t.Errorf("requests at the callee = %d, want %d", got, tc.arrivals)
			}
		})
	}
}

// TestASlowDependencyCostsNoMoreThanTheBudget is the cascading timeout:
// 5 s of latency in front of the callee, and callers with 2 s left. Every
// call ends as its budget does, unavailable, and no attempt starts after
// the deadline or is given a deadline beyond the caller's.
func TestASlowDependencyCostsNoMoreThanTheBudget(t *testing.T) {
	const calls = 10
	var beyond, late, attempts atomic.Int64
	rg := newRig(t, testPolicy(nil), resiliencetest.OK(map[string]string{}))
	rg.proxy.Add(t, "slow", "latency", "downstream", map[string]any{"latency": 5000})

	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			callerDeadline, _ := ctx.Deadline()
			cl := *rg.client // the same breakers and connections, another hook
			cl.Authorize = func(actx context.Context, _ *http.Request) error {
				attempts.Add(1)
				if d, _ := actx.Deadline(); d.After(callerDeadline) {
					beyond.Add(1)
				}
				if time.Now().After(callerDeadline) {
					late.Add(1)
				}
				return nil
			}
			errs <- cl.Do(ctx, upstream.Call{Service: "callee", Method: http.MethodGet, Path: "/slow"})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !fail.Is(err, fail.Unavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want unavailable, past the deadline", err)
		}
	}
	if late.Load() != 0 || beyond.Load() != 0 {
		t.Errorf("attempts started after the deadline = %d, given a deadline beyond the caller's = %d; want 0 and 0",
			late.Load(), beyond.Load())
	}
	if attempts.Load() != calls {
		t.Errorf("attempts = %d, want %d: a timeout is not retried", attempts.Load(), calls)
	}
	t.Logf("verdict: slow dependency calls=%d attempts=%d started_after_deadline=%d deadline_beyond_caller=%d kind=%s",
		calls, attempts.Load(), late.Load(), beyond.Load(), fail.Unavailable)
}

// TestEachAttemptIsCappedWithinTheBudget checks the deadline each attempt
// runs under: the policy's cap when the caller has more time, what the
// caller has left when it has less.
func TestEachAttemptIsCappedWithinTheBudget(t *testing.T) {
	const attemptCap = 100 * time.Millisecond
	rg := newRig(t, testPolicy(func(p *resilience.Policy) { p.AttemptTimeout = attemptCap }), resiliencetest.OK(map[string]string{}))
	for _, budget := range []time.Duration{time.Hour, 50 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		callerDeadline, _ := ctx.Deadline()
		var attemptDeadline time.Time
		var capAt time.Time
		cl := *rg.client
		cl.Authorize = func(actx context.Context, _ *http.Request) error {
			attemptDeadline, _ = actx.Deadline()
			capAt = time.Now().Add(attemptCap)
			return nil
		}
		if err := cl.Do(ctx, upstream.Call{Service: "callee", Method: http.MethodGet, Path: "/"}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if attemptDeadline.After(callerDeadline) || attemptDeadline.After(capAt) {
			t.Errorf("budget %v: attempt deadline %v is beyond the caller's %v or the cap %v", budget, attemptDeadline, callerDeadline, capAt)
		}
	}
}

// TestNoRetryStormAgainstAFailingDependency runs steady load against a
// callee that answers 503 to everything: attempts per request stay within
// MaxAttempts, the breaker opens after Failures of them, and from then on
// not one request reaches the callee.
func TestNoRetryStormAgainstAFailingDependency(t *testing.T) {
	const (
		workers     = 8
		perWorker   = 50
		failures    = 5
		maxAttempts = 3
	)
	rg := newRig(t, testPolicy(func(p *resilience.Policy) {
		p.Failures, p.MaxAttempts, p.OpenTimeout = failures, maxAttempts, time.Hour
	}), resiliencetest.Status(http.StatusServiceUnavailable))
	load := func() (requests, unavailable int64) {
		var wg sync.WaitGroup
		var n, u atomic.Int64
		for range workers {
			wg.Go(func() {
				for range perWorker {
					n.Add(1)
					if err := rg.get(context.Background()); fail.Is(err, fail.Unavailable) {
						u.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return n.Load(), u.Load()
	}

	requests, unavailable := load()
	attempts := rg.up.Arrivals()
	if unavailable != requests {
		t.Errorf("unavailable = %d of %d requests, want all", unavailable, requests)
	}
	if attempts > requests*maxAttempts {
		t.Errorf("attempts at the dependency = %d for %d requests, over %d per request", attempts, requests, maxAttempts)
	}
	// Attempts already in flight when the breaker opened end normally, and
	// at most one per worker can be.
	if attempts > failures+workers-1 {
		t.Errorf("attempts at the dependency = %d, want at most %d failures and %d in flight", attempts, failures, workers-1)
	}
	if got := rg.edge.State(); got != resilience.StateOpen {
		t.Fatalf("state = %s, want open", got)
	}

	more, _ := load()
	afterOpen := rg.up.Arrivals() - attempts
	if afterOpen != 0 {
		t.Errorf("attempts at the dependency with the breaker open = %d for %d requests, want 0", afterOpen, more)
	}
	st := rg.edge.Status()
	t.Logf("verdict: retry storm requests=%d attempts=%d per_request=%.3f bound=%d attempts_while_open=%d rejected=%d retries=%d",
		requests+more, attempts, float64(attempts)/float64(requests+more), maxAttempts, afterOpen, st.Rejected, st.Retries)
}

// TestAFullBulkheadRefusesAtOnce holds Bulkhead calls in flight at a callee
// that does not answer: one more is refused without reaching it.
func TestAFullBulkheadRefusesAtOnce(t *testing.T) {
	const size = 2
	release := make(chan struct{})
	rg := newRig(t, testPolicy(func(p *resilience.Policy) { p.Bulkhead = size }), func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	errs := make(chan error, size)
	for range size {
		go func() { errs <- rg.get(context.Background()) }()
	}
	for rg.up.Arrivals() != size {
		time.Sleep(time.Millisecond)
	}
	err := rg.get(context.Background())
	if !fail.Is(err, fail.Unavailable) || !errors.Is(err, resilience.ErrFull) {
		t.Errorf("error = %v, want unavailable (bulkhead full)", err)
	}
	close(release)
	for range size {
		if err := <-errs; err != nil {
			t.Errorf("a call within the bulkhead failed: %v", err)
		}
	}
	if got := rg.up.Arrivals(); got != size {
		t.Errorf("requests at the callee = %d, want %d", got, size)
	}
	if st := rg.edge.Status(); st.Rejected != 1 || st.State != resilience.StateClosed {
		t.Errorf("status = %+v, want 1 rejected and the breaker closed", st)
	}
	// The slots are free again.
	if err := rg.get(context.Background()); err != nil {
		t.Errorf("after the calls ended: %v", err)
	}
}

func TestAuthorizeSeesEveryAttemptAndCanStopTheCall(t *testing.T) {
	rg := newRig(t, testPolicy(nil), resiliencetest.Status(http.StatusServiceUnavailable))
	var seen []string
	rg.client.Authorize = func(_ context.Context, r *http.Request) error {
		seen = append(seen, r.Method+" "+r.URL.Path)
		r.Header.Set("Authorization", "Bearer service-token")
		return nil
	}
	_ = rg.get(context.Background())
	if len(seen) != 3 {
		t.Errorf("Authorize saw %v, want the 3 attempts", seen)
	}

	refused := errors.New("no service key")
	rg.client.Authorize = func(context.Context, *http.Request) error { return refused }
	before := rg.up.Arrivals()
	err := rg.get(context.Background())
	if !errors.Is(err, refused) {
		t.Errorf("error = %v, want Authorize's own", err)
	}
	if got := rg.up.Arrivals() - before; got != 0 {
		t.Errorf("requests sent after Authorize refused = %d, want 0", got)
	}
	if st := rg.edge.Status(); st.ConsecutiveFailures != 3 {
		t.Errorf("consecutive failures = %d, want 3: a refusal on our side says nothing of the callee", st.ConsecutiveFailures)
	}
}

// BenchmarkAnOpenBreakerFailsFast measures what a call costs its caller
// once the callee's breaker is open: no resolution, no connection, no wait.
func BenchmarkAnOpenBreakerFailsFast(b *testing.B) {
	p := resilience.DefaultPolicy()
	p.Failures, p.OpenTimeout = 1, time.Hour
	edges := resilience.NewEdges("caller", p, nil)
	cl := upstream.New("caller", &resolver{addrs: map[string]string{}}, upstream.WithEdges(edges))
	call := upstream.Call{Service: "callee", Method: http.MethodGet, Path: "/x"}
	_ = cl.Do(context.Background(), call) // no instance: a failure, which opens it
	if edges.Edge("callee").State() != resilience.StateOpen {
		b.Fatal("the breaker did not open")
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := cl.Do(context.Background(), call); !errors.Is(err, resilience.ErrOpen) {
			b.Fatalf("error = %v, want the open circuit", err)
		}
	}
}
