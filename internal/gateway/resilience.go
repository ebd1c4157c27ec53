package gateway

import (
	"bytes"
	"cmp"
	"container/list"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// Option changes how NewProxy builds a proxy.
type Option func(*Proxy)

// WithTransport wraps the proxy's transport, e.g. to trace every forward.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(p *Proxy) { p.wrapTransport = wrap }
}

// WithEdges guards the proxy's upstreams with edges; the shop shares them
// with the gateway's own calls, so that one breaker per upstream sees all
// the gateway's traffic to it. Without it, a proxy has edges of its own
// under resilience.DefaultPolicy.
func WithEdges(edges *resilience.Edges) Option {
	return func(p *Proxy) { p.edges = edges }
}

// Edges are the proxy's outgoing edges: their breakers, bulkheads and counts.
func (p *Proxy) Edges() *resilience.Edges { return p.edges }

// exchange is one forwarded request on its way through its upstream's edge.
type exchange struct {
	service  string
	edge     *resilience.Edge
	done     func(resilience.Outcome) // the breaker's report; nil if refused
	staleKey string                   // where a good answer is kept; "" for none
	once     sync.Once
}

type exchangeKey struct{}

// settle reports the exchange's outcome to the breaker, once: the first
// report wins.
func (ex *exchange) settle(o resilience.Outcome) {
	ex.once.Do(func() {
		if ex.done != nil {
			ex.done(o)
		}
	})
}

// FallbackHeader marks an answer the gateway served from its last good
// copy because the service could not answer.
const FallbackHeader = "X-Microshop-Fallback"

// Bounds of the fallback copies: how many products, and how big each.
const (
	maxStaleEntries = 1024
	maxStaleBytes   = 16 << 10
)

// staleKey is where the answer to r is kept for a fallback: the path of a
// public product read (v1 or v2), which every caller gets the same answer
// to. Anything else is never kept: "".
func staleKey(r *http.Request) string {
	if r.Method != http.MethodGet || r.URL.RawQuery != "" {
		return ""
	}
	for _, prefix := range []string{"/api/v1/products/", "/api/v2/products/"} {
		if id, ok := strings.CutPrefix(r.URL.Path, prefix); ok && id != "" && !strings.Contains(id, "/") {
			return r.URL.Path
		}
	}
	return ""
}

// upstreamAnswered sees every answer a service gives before the client
// does: it reports the outcome to the breaker, keeps a copy of a good
// product, and answers the last good copy instead of a 502, 503 or 504.
func (p *Proxy) upstreamAnswered(resp *http.Response) error {
	ex := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		ex.settle(resilience.Failure)
	} else {
		ex.settle(resilience.Success)
	}
	if ex.staleKey == "" {
		return nil
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.Header.Get("Content-Encoding") == "" {
			resp.Body = &capture{ReadCloser: resp.Body, limit: p.stale.maxBytes, keep: func(body []byte) {
				p.stale.put(ex.staleKey, resp.Header, body)
			}}
		}
	case http.StatusNotFound, http.StatusGone:
		p.stale.forget(ex.staleKey) // gone for good: nothing to fall back to
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if c, ok := p.stale.get(ex.staleKey); ok {
			ex.edge.FellBack()
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxStaleBytes))
			_ = resp.Body.Close()
			c.into(resp)
		}
	}
	return nil
}

// unavailable answers a request its service cannot take: the last good
// copy when there is one, else a 503 problem whose Retry-After says when
// the breaker lets a probe through (1 s when it is not open).
func (p *Proxy) unavailable(w http.ResponseWriter, r *http.Request, ex *exchange, err error) {
	if c, ok := p.stale.get(ex.staleKey); ok {
		ex.edge.FellBack()
		c.serve(w)
		return
	}
	if d := ex.edge.RetryAfter(); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	web.Error(w, r, err)
}

// capture passes a body through and, once it was read whole within limit
// bytes, hands a copy to keep.
type capture struct {
	io.ReadCloser
	limit int
	keep  func([]byte)
	buf   bytes.Buffer
	over  bool
}

func (c *capture) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	if !c.over {
		if c.buf.Len()+n > c.limit {
			c.over, c.buf = true, bytes.Buffer{}
		} else {
			c.buf.Write(b[:n])
		}
	}
	if err == io.EOF && !c.over && c.keep != nil {
		c.keep(bytes.Clone(c.buf.Bytes()))
		c.keep = nil
	}
	return n, err
}

// staleCopy is the last good answer to one product read.
type staleCopy struct {
	key    string
	header http.Header
	body   []byte
	stored time.Time
}

// unkept are headers that belong to one answer only, never to a copy.
var unkept = []string{"Date", "Content-Length", "Transfer-Encoding", "Connection", "Set-Cookie", web.RequestIDHeader, "Traceparent", "Tracestate"}

// markStale sets the headers that tell a client the answer is a copy.
func (c *staleCopy) markStale(h http.Header) {
	h.Set(FallbackHeader, "stale")
	h.Set("Warning", `110 - "Response is Stale"`)
	h.Set("Age", strconv.Itoa(int(time.Since(c.stored).Seconds())))
	h.Set("Content-Length", strconv.Itoa(len(c.body)))
}

// serve answers the copy on w.
func (c *staleCopy) serve(w http.ResponseWriter) {
	for k, vs := range c.header {
		w.Header()[k] = slices.Clone(vs)
	}
	c.markStale(w.Header())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.body)
}

// into turns resp into the copy.
func (c *staleCopy) into(resp *http.Response) {
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.Header = c.header.Clone()
	c.markStale(resp.Header)
	resp.Body = io.NopCloser(bytes.NewReader(c.body))
	resp.ContentLength = int64(len(c.body))
	resp.TransferEncoding = nil
}

// staleCache keeps the last good copy of the most recently read products,
// within a bound on their number and on each one's size.
type staleCache struct {
	maxEntries, maxBytes int

	mu      sync.Mutex
	entries map[string]*list.Element // of *staleCopy
	lru     list.List                // most recently stored at the front
}

func newStaleCache(maxEntries, maxBytes int) *staleCache {
	return &staleCache{maxEntries: maxEntries, maxBytes: maxBytes, entries: map[string]*list.Element{}}
}

func (s *staleCache) put(key string, header http.Header, body []byte) {
	h := header.Clone()
	for _, k := range unkept {
		h.Del(k)
	}
	c := &staleCopy{key: key, header: h, body: body, stored: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[key]; ok {
		el.Value = c
		s.lru.MoveToFront(el)
		return
	}
	s.entries[key] = s.lru.PushFront(c)
	for s.lru.Len() > s.maxEntries {
		oldest := s.lru.Back()
		s.lru.Remove(oldest)
		delete(s.entries, oldest.Value.(*staleCopy).key)
	}
}

func (s *staleCache) get(key string) (*staleCopy, bool) {
	if key == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.entries[key]
	if !ok {
		return nil, false
	}
	return el.Value.(*staleCopy), true
}

func (s *staleCache) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.entries[key]; ok {
		s.lru.Remove(el)
		delete(s.entries, key)
	}
}

// Resilient are the services whose outgoing edges the gateway's listing
// gathers, besides its own.
var Resilient = []string{"registry", "users", "catalog", "inventory", "orders", "payments", "shipping"}

// listResilience answers every outgoing edge of the shop: the gateway's own
// and each service's, asked with the admin's token. A service that does not
// answer is named under unreachable.
func (p *Proxy) listResilience(call Caller) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Admin(r.Context()); err != nil {
			web.Error(w, r, err)
			return
		}
		token, _, _ := auth.BearerToken(r)
		var (
			mu          sync.Mutex
			edges       []resilience.Status
			unreachable = []string{}
			wg          sync.WaitGroup
		)
		for _, svc := range Resilient {
			wg.Go(func() {
				var l resilience.Listing
				err := call.Do(r.Context(), upstream.Call{Service: svc, Method: http.MethodGet,
					Path: "/api/v1/admin/resilience", Token: token, Out: &l})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					unreachable = append(unreachable, svc)
					return
				}
				edges = append(edges, l.Edges...)
			})
		}
		wg.Wait()
		// The gateway's own edges last, so that they count the calls just made.
		edges = append(edges, p.edges.List()...)
		slices.SortFunc(edges, func(a, b resilience.Status) int {
			return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
		})
		slices.Sort(unreachable)
		web.JSON(w, http.StatusOK, map[string]any{"edges": edges, "unreachable": unreachable})
	}
}
