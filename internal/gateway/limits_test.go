package gateway_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/web"
)

// clock is a hand-moved clock, so that token buckets refill only when a
// test says so.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestTokenBucketPerClient(t *testing.T) {
	clk := newClock()
	l := gateway.NewLimits(gateway.LimitOptions{RPS: 2, Burst: 3, Now: clk.Now})
	allowed := func(client string, n int) int {
		ok := 0
		for range n {
			if _, yes := l.Allow(client); yes {
				ok++
			}
		}
		return ok
	}
	if got := allowed("sub:alice", 10); got != 3 {
		t.Errorf("alice at once: %d of 10 allowed, want the burst of 3", got)
	}
	if got := allowed("sub:bob", 10); got != 3 {
		t.Errorf("bob after alice's excess: %d of 10 allowed, want his own burst of 3", got)
	}
	wait, ok := l.Allow("sub:alice")
	if ok || wait != time.Second {
		t.Errorf("alice over her rate: allowed=%v wait=%v, want refused, wait 1s (half a second rounded up to Retry-After's whole seconds)", ok, wait)
	}
	clk.Advance(500 * time.Millisecond) // one token at 2/s
	if got := allowed("sub:alice", 5); got != 1 {
		t.Errorf("alice half a second later: %d allowed, want 1", got)
	}
	clk.Advance(10 * time.Second) // refilled, never past the burst
	if got := allowed("sub:alice", 10); got != 3 {
		t.Errorf("alice after a rest: %d allowed, want the burst of 3", got)
	}

	slow := gateway.NewLimits(gateway.LimitOptions{RPS: 0.1, Burst: 1, Now: clk.Now})
	slow.Allow("ip:192.0.2.1")
	if wait, ok := slow.Allow("ip:192.0.2.1"); ok || wait != 10*time.Second {
		t.Errorf("at 0.1/s: allowed=%v wait=%v, want refused, wait 10s", ok, wait)
	}
}

func TestBucketsAreBoundedAndIdleOnesDropped(t *testing.T) {
	clk := newClock()
	l := gateway.NewLimits(gateway.LimitOptions{RPS: 1, Burst: 1, MaxClients: 3, Now: clk.Now})
	for i := range 100 {
		l.Allow(fmt.Sprintf("ip:10.0.0.%d", i))
	}
	if got := l.Clients(); got != 3 {
		t.Fatalf("after 100 clients, %d buckets kept, want the bound of 3", got)
	}

	// The least recently seen goes first: a, b, c spent their token; a is
	// seen again; d arrives and b is dropped, so b starts afresh while a is
	// still refused.
	l = gateway.NewLimits(gateway.LimitOptions{RPS: 1, Burst: 1, MaxClients: 3, Now: clk.Now})
	for _, c := range []string{"a", "b", "c", "a", "d"} {
		l.Allow(c)
	}
	if _, ok := l.Allow("a"); ok {
		t.Error("a, recently seen, lost its bucket: allowed at once")
	}
	if _, ok := l.Allow("b"); !ok {
		t.Error("b, least recently seen, kept its bucket: refused")
	}

	// A bucket idle long enough to be full again is dropped when the next
	// client arrives: keeping it would change nothing.
	l = gateway.NewLimits(gateway.LimitOptions{RPS: 1, Burst: 2, MaxClients: 100, Now: clk.Now})
	for i := range 10 {
		l.Allow(fmt.Sprintf("ip:10.0.1.%d", i))
	}
	clk.Advance(time.Second) // not yet full again (2 tokens at 1/s)
	l.Allow("ip:10.0.2.1")
	if got := l.Clients(); got != 11 {
		t.Errorf("after 1s idle, %d buckets, want all 11 kept", got)
	}
	clk.Advance(time.Second)
	l.Allow("ip:10.0.2.2")
	if got := l.Clients(); got != 2 {
		t.Errorf("after 2s idle, %d buckets, want 2: the ten full ones dropped", got)
	}
}

// limited is a gateway that forwards, through a reverse proxy, to an
// upstream that counts what reaches it.
type limited struct {
	url    string
	signer *auth.Signer
	mu     sync.Mutex
	hits   int
	bodies []string
}

func newLimited(t *testing.T, opt gateway.LimitOptions) *limited {
	t.Helper()
	lg := &limited{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		lg.mu.Lock()
		lg.hits++
		lg.bodies = append(lg.bodies, string(b))
		lg.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	forward := httputil.NewSingleHostReverseProxy(target)

	routes := http.NewServeMux()
	routes.Handle("/api/v1/things", forward)
	routes.Handle("/api/v1/things/{id}", forward)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lg.signer = auth.NewSigner(key, time.Hour)
	gw := &host.Service{
		Name:     "gateway",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   gateway.Limit(routes, gateway.NewLimits(opt)),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("gateway"),
		Verifier: auth.NewVerifier(lg.signer),
	}
	gw.Health.SetReady(true)
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	lg.url = srv.URL
	return lg
}

func (lg *limited) token(t *testing.T, subject string) string {
	t.Helper()
	tok, _, err := lg.signer.Sign(subject, "customer")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (lg *limited) reached() (int, []string) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return lg.hits, append([]string(nil), lg.bodies...)
}

// send makes one request; a body of nil sends none, and chunked hides its
// length so that it goes chunked.
func (lg *limited) send(t *testing.T, method, path, token, contentType string, body io.Reader, chunked bool) (*http.Response, []byte) {
	t.Helper()
	if chunked && body != nil {
		body = struct{ io.Reader }{body} // an unknown length: sent chunked
	}
	req, err := http.NewRequest(method, lg.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	lg := newLimited(t, gateway.LimitOptions{RPS: 0.01, Burst: 2})
	alice, bob := lg.token(t, "alice"), lg.token(t, "bob")
	count := func(token string, n int) (ok, refused int) {
		for range n {
			resp, body := lg.send(t, "GET", "/api/v1/things/1", token, "", nil, false)
			switch resp.StatusCode {
			case http.StatusNoContent:
				ok++
			case http.StatusTooManyRequests:
				refused++
				p := wantProblem(t, resp, body, http.StatusTooManyRequests)
				if p.Detail == "" {
					t.Error("429 without a detail")
				}
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 100 {
					t.Errorf("Retry-After = %q, want whole seconds from 1 to 100 (one token at 0.01/s)", resp.Header.Get("Retry-After"))
				}
			default:
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
		}
		return ok, refused
	}
	if ok, refused := count(alice, 5); ok != 2 || refused != 3 {
		t.Errorf("alice: %d ok, %d refused; want the burst of 2, then 3 refused", ok, refused)
	}
	if ok, refused := count(bob, 5); ok != 2 || refused != 3 {
		t.Errorf("bob: %d ok, %d refused; want his own burst of 2", ok, refused)
	}
	// Anonymous clients are counted by address: all of this test's share one.
	if ok, refused := count("", 5); ok != 2 || refused != 3 {
		t.Errorf("anonymous: %d ok, %d refused; want the address's burst of 2", ok, refused)
	}
	hits, _ := lg.reached()
	if hits != 6 {
		t.Errorf("upstream reached %d times, want 6: no refused request goes on", hits)
	}
	// Probes are the host's, beside the limited routes: never refused.
	for range 5 {
		if resp, body := lg.send(t, "GET", "/ready", "", "", nil, false); resp.StatusCode != http.StatusOK {
			t.Fatalf("/ready = %d %s after the address's bucket ran dry", resp.StatusCode, body)
		}
	}
}

func TestBodyLimitsAndContentType(t *testing.T) {
	const max = 1000
	lg := newLimited(t, gateway.LimitOptions{RPS: 1000, Burst: 1000, MaxBody: max})
	token := lg.token(t, "alice")
	small := `{"name":"` + strings.Repeat("x", 100) + `"}`
	big := `{"name":"` + strings.Repeat("x", max) + `"}`
	exact := `{"name":"` + strings.Repeat("x", max-len(`{"name":""}`)) + `"}`
	cases := []struct {
		name, method, contentType, body string
		chunked                         bool
		want                            int
	}{
		{"small JSON", "POST", "application/json", small, false, 204},
		{"small JSON, chunked", "POST", "application/json", small, true, 204},
		{"exactly the limit, chunked", "PUT", "application/json; charset=utf-8", exact, true, 204},
		{"a +json type is JSON", "PATCH", "application/merge-patch+json", small, false, 204},
		{"too large", "POST", "application/json", big, false, 413},
		{"too large, chunked", "POST", "application/json", big, true, 413},
		{"far too large, chunked", "PUT", "application/json", strings.Repeat(big, 1000), true, 413},
		{"text", "POST", "text/plain", small, false, 415},
		{"form", "PUT", "application/x-www-form-urlencoded", "a=b", false, 415},
		{"no content type", "PATCH", "", small, false, 415},
		{"garbled content type", "POST", "json;;;=", small, true, 415},
		{"no body needs no type", "POST", "", "", false, 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := lg.reached()
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			resp, got := lg.send(t, c.method, "/api/v1/things", token, c.contentType, body, c.chunked)
			after, bodies := lg.reached()
			if c.want != 204 {
				wantProblem(t, resp, got, c.want)
				if after != before {
					t.Errorf("a refused request reached the upstream (%d -> %d)", before, after)
				}
				return
			}
			if resp.StatusCode != 204 || after != before+1 {
				t.Fatalf("status %d %s, upstream %d -> %d; want 204 once", resp.StatusCode, got, before, after)
			}
			if last := bodies[len(bodies)-1]; last != c.body {
				t.Errorf("upstream received %d bytes, want the %d sent", len(last), len(c.body))
			}
		})
	}
}

func TestLimitKeepsTheRoutePatternForMetrics(t *testing.T) {
	lg := newLimited(t, gateway.LimitOptions{RPS: 100, Burst: 100})
	lg.send(t, "GET", "/api/v1/things/42", "", "", nil, false)
	resp, body := lg.send(t, "GET", "/metrics", "", "", nil, false)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	if !strings.Contains(string(body), `route="/api/v1/things/{id}"`) {
		t.Errorf("metrics lack the inner route pattern /api/v1/things/{id}:\n%s", grepLines(string(body), "http_requests_total"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
