package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// resolver maps service names to addresses and records what it is asked.
type resolver struct {
	mu        sync.Mutex
	addrs     map[string]string
	forgotten []string
	deadlines []time.Time // the deadline of each Resolve's context, zero if none
}

func (r *resolver) Resolve(ctx context.Context, service string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, d)
	addr, ok := r.addrs[service]
	if !ok {
		return "", fail.New(fail.Unavailable, "no healthy instance of %s", service)
	}
	return addr, nil
}

func (r *resolver) Forget(service string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgotten = append(r.forgotten, service)
}

// serve starts h as the service named "callee" and returns a client and the resolver it uses.
func serve(t *testing.T, h http.HandlerFunc) (*upstream.Client, *resolver) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r := &resolver{addrs: map[string]string{"callee": strings.TrimPrefix(srv.URL, "http://")}}
	return upstream.New("caller", r), r
}

func TestProblemAnswersKeepTheirKindAndDetail(t *testing.T) {
	tests := []struct {
		status int
		kind   fail.Kind
	}{
		{http.StatusBadRequest, fail.Malformed},
		{http.StatusUnauthorized, fail.Unauthenticated},
		{http.StatusForbidden, fail.Forbidden},
		{http.StatusNotFound, fail.NotFound},
		{http.StatusConflict, fail.Conflict},
		{http.StatusRequestEntityTooLarge, fail.TooLarge},
		{http.StatusUnsupportedMediaType, fail.Unsupported},
		{http.StatusUnprocessableEntity, fail.Invalid},
		{http.StatusTooManyRequests, fail.TooMany},
		{http.StatusInternalServerError, fail.Internal},
		{http.StatusBadGateway, fail.Unavailable},
		{http.StatusServiceUnavailable, fail.Unavailable},
		{http.StatusGatewayTimeout, fail.Unavailable},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			cl, r := serve(t, func(w http.ResponseWriter, req *http.Request) {
				web.WriteProblem(w, req, tc.status, "the callee's own words")
			})
			var out map[string]any
			err := cl.Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/x", Out: &out})
			if fail.KindOf(err) != tc.kind {
				t.Fatalf("kind = %v (%v), want %v", fail.KindOf(err), err, tc.kind)
			}
			var fe *fail.Error
			if !errors.As(err, &fe) || fe.Message != "the callee's own words" {
				t.Errorf("message = %q, want the callee's detail", fe.Message)
			}
			var se *upstream.StatusError
			if !errors.As(err, &se) || se.Status != tc.status || se.Service != "callee" {
				t.Errorf("cause = %v, want a StatusError for callee %d", err, tc.status)
			}
			if out != nil {
				t.Errorf("Out was filled from an error answer: %v", out)
			}
			if len(r.forgotten) != 0 {
				t.Errorf("a service that answered was forgotten: %v", r.forgotten)
			}
		})
	}
}

func TestAnErrorWithoutProblemDetailSaysWhoAnswered(t *testing.T) {
	cl, _ := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>oops</html>", http.StatusConflict)
	})
	err := cl.Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/x"})
	if !fail.Is(err, fail.Conflict) {
		t.Fatalf("error = %v, want conflict", err)
	}
	if msg := fail.MessageOf(err); !strings.Contains(msg, "callee") || !strings.Contains(msg, "409") {
		t.Errorf("message = %q, want it to name callee and 409", msg)
	}
}

func TestASuccessfulCallSendsAndDecodesJSON(t *testing.T) {
	var got struct {
		method, path, contentType, accept, auth, agent, custom string
		body                                                   map[string]any
	}
	cl, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path = r.Method, r.URL.RequestURI()
		got.contentType, got.accept = r.Header.Get("Content-Type"), r.Header.Get("Accept")
		got.auth, got.agent, got.custom = r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("Idempotency-Key")
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		web.JSON(w, http.StatusCreated, map[string]any{"id": "o1", "total_cents": 1250})
	})
	var out struct {
		ID         string `json:"id"`
		TotalCents int64  `json:"total_cents"`
	}
	err := cl.Do(context.Background(), upstream.Call{
		Service: "callee", Method: "POST", Path: "/api/v1/orders?x=1",
		Body: map[string]any{"quantity": 2}, Out: &out, Token: "tok",
		Header: http.Header{"Idempotency-Key": {"k1"}},
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if out.ID != "o1" || out.TotalCents != 1250 {
		t.Errorf("out = %+v, want o1 1250", out)
	}
	if got.method != "POST" || got.path != "/api/v1/orders?x=1" || got.body["quantity"] != float64(2) {
		t.Errorf("server saw %s %s %v", got.method, got.path, got.body)
	}
	if got.contentType != "application/json" || got.accept != "application/json" || got.auth != "Bearer tok" ||
		got.agent != "microshop-caller" || got.custom != "k1" {
		t.Errorf("headers: content-type %q accept %q authorization %q user-agent %q idempotency-key %q",
			got.contentType, got.accept, got.auth, got.agent, got.custom)
	}
}

func TestAnUnresolvableServiceIsUnavailable(t *testing.T) {
	cl := upstream.New("caller", &resolver{addrs: map[string]string{}})
	err := cl.Do(context.Background(), upstream.Call{Service: "nowhere", Method: "GET", Path: "/"})
	if !fail.Is(err, fail.Unavailable) {
		t.Errorf("error = %v, want unavailable", err)
	}
}

func TestARefusedConnectionIsUnavailableAndForgetsTheInstance(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	r := &resolver{addrs: map[string]string{"callee": addr}}
	err = upstream.New("caller", r).Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/"})
	if !fail.Is(err, fail.Unavailable) {
		t.Fatalf("error = %v, want unavailable", err)
	}
	if msg := fail.MessageOf(err); !strings.Contains(msg, "callee") || strings.Contains(msg, addr) {
		t.Errorf("message = %q, want it to name the service and not its address", msg)
	}
	// A GET is retried on a refused connection, each attempt resolving
	// afresh after forgetting the instance that refused.
	want := slices.Repeat([]string{"callee"}, resilience.DefaultPolicy().MaxAttempts)
	if !slices.Equal(r.forgotten, want) {
		t.Errorf("forgotten = %v, want %v", r.forgotten, want)
	}
}

func TestTheRequestIDTravelsWithTheCall(t *testing.T) {
	seen := make(chan string, 1)
	cl, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get(web.RequestIDHeader)
		w.WriteHeader(http.StatusNoContent)
	})
	// The id reaches the context the way it does in a service: through the
	// request id middleware of the request being served.
	caller := web.RequestID(slog.New(slog.DiscardHandler))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cl.Do(r.Context(), upstream.Call{Service: "callee", Method: "GET", Path: "/"}); err != nil {
			t.Errorf("Do: %v", err)
		}
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set(web.RequestIDHeader, "req-42")
	caller.ServeHTTP(httptest.NewRecorder(), req)
	if got := <-seen; got != "req-42" {
		t.Errorf("callee saw request id %q, want req-42", got)
	}

	// With no request id in the context, none is made up.
	if err := cl.Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/"}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "" {
		t.Errorf("callee saw request id %q with none in the context", got)
	}
}

// TestTheDefaultDeadlineAppliesOnlyWithoutOne checks the deadline the call
// runs under, as the resolver and the callee see it through the call's context.
func TestTheDefaultDeadlineAppliesOnlyWithoutOne(t *testing.T) {
	cl, r := serve(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

	before := time.Now()
	if err := cl.Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	got := r.deadlines[0]
	if got.IsZero() {
		t.Fatal("a call without a deadline ran without one")
	}
	if got.Before(before.Add(upstream.DefaultTimeout)) || got.After(after.Add(upstream.DefaultTimeout)) {
		t.Errorf("deadline = %v after the call began, want %v", got.Sub(before), upstream.DefaultTimeout)
	}

	own := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), own)
	defer cancel()
	if err := cl.Do(ctx, upstream.Call{Service: "callee", Method: "GET", Path: "/"}); err != nil {
		t.Fatal(err)
	}
	if got := r.deadlines[1]; !got.Equal(own) {
		t.Errorf("deadline = %v, want the caller's own %v untouched", got, own)
	}
}

func TestACancelledContextStopsTheCall(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	cl, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cl.Do(ctx, upstream.Call{Service: "callee", Method: "GET", Path: "/"}) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want it to wrap context.Canceled", err)
	}
}

// hugeBody answers status with a JSON object whose one string is n bytes long.
func hugeBody(status, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"detail":"`)
		chunk := strings.Repeat("a", 64<<10)
		for written := 0; written < n; written += len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return // the client stopped reading
			}
		}
		_, _ = io.WriteString(w, `"}`)
	}
}

func TestAHugeAnswerIsNotReadWhole(t *testing.T) {
	const size = 16 << 20 // well over any sane answer

	cl, _ := serve(t, hugeBody(http.StatusOK, size))
	var out struct {
		Detail string `json:"detail"`
	}
	err := cl.Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/", Out: &out})
	if err == nil {
		t.Fatalf("a %d-byte answer was decoded whole (%d bytes kept)", size, len(out.Detail))
	}
	if fail.Is(err, fail.Unavailable) || strings.Contains(err.Error(), "deadline") {
		t.Errorf("error = %v, want a decoding failure at the bound, not a timeout", err)
	}

	cl, _ = serve(t, hugeBody(http.StatusConflict, size))
	err = cl.Do(context.Background(), upstream.Call{Service: "callee", Method: "GET", Path: "/"})
	if !fail.Is(err, fail.Conflict) {
		t.Fatalf("error = %v, want conflict", err)
	}
	if msg := fail.MessageOf(err); len(msg) > 1<<10 {
		t.Errorf("a %d-byte problem detail became a %d-byte message", size, len(msg))
	}
}
