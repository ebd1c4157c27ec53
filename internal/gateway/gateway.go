// Package gateway is the shop's single entry point: it routes each public
// path to the service that owns it, found through the registry, verifies
// tokens before anything is forwarded, strips identity headers a client
// might forge, guards each upstream with a circuit breaker and a bulkhead
// (answering the last good copy of a product when the catalog cannot), and
// serves the API documents of every service.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/web"
)

// Resolver finds a healthy instance of a service.
type Resolver interface {
	Resolve(ctx context.Context, service string) (string, error)
	Forget(service string)
}

// Route sends the paths under Pattern to Service.
type Route struct {
	Pattern string // a ServeMux pattern
	Service string
}

// Table is the gateway's route table: every public path and its owner. The
// more specific ServeMux pattern wins, so /api/v1/users/{id}/orders goes to
// orders while the rest of /api/v1/users/ goes to users.
var Table = []Route{
	{"/api/v1/users", "users"},
	{"/api/v1/users/", "users"},
	{"/api/v2/users/", "users"},
	{"/api/users/", "users"},
	{"/api/v1/auth/", "users"},
	{"/.well-known/jwks.json", "users"},
	{"/api/v1/admin/keys/", "users"},
	{"/api/v1/users/{id}/orders", "orders"},
	{"/api/v1/products", "catalog"},
	{"/api/v1/products/", "catalog"},
	{"/api/v2/products/", "catalog"},
	{"/api/v1/inventory", "inventory"},
	{"/api/v1/inventory/", "inventory"},
	{"/api/v1/orders", "orders"},
	{"/api/v1/orders/", "orders"},
	{"/api/v2/orders", "orders"},
	{"/api/v2/orders/", "orders"},
	{"/api/v2/admin/orders", "orders"},
	{"/api/v1/admin/orders", "orders"},
	{"/api/v1/admin/settings", "orders"},
	{"/api/v1/admin/read-model/", "orders"},
	{"/api/v1/payments", "payments"},
	{"/api/v1/shipments", "shipping"},
	{"/api/v1/registry/", "registry"},
}

// identityHeaders are headers that internal code could mistake for an
// authenticated identity; a client never gets to set them.
var identityHeaders = []string{"X-User-Id", "X-User-Role", "X-Forwarded-User", "X-Remote-User", "X-Authenticated-User", "X-Service-Name"}

// Proxy forwards requests to the service that owns them.
type Proxy struct {
	resolver    Resolver
	registryURL *url.URL
	registry    *registryView // set when the registry is no service to forward to
	rp          *httputil.ReverseProxy
	log         *slog.Logger
	edges       *resilience.Edges // a breaker and a bulkhead per upstream
	stale       *staleCache       // the last good copy of each product

	wrapTransport func(http.RoundTripper) http.RoundTripper
}

type targetKey struct{}

// NewProxy returns a proxy that resolves services through resolver; the
// registry itself is reached at registryURL.
func NewProxy(resolver Resolver, registryURL string, log *slog.Logger, opts ...Option) (*Proxy, error) {
	ru, err := url.Parse(registryURL)
	if err != nil {
		return nil, err
	}
	p := &Proxy{resolver: resolver, registryURL: ru, log: log, stale: newStaleCache(maxStaleEntries, maxStaleBytes)}
	for _, opt := range opts {
		opt(p)
	}
	if p.edges == nil {
		p.edges = resilience.NewEdges("gateway", resilience.DefaultPolicy(), log)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	tr.IdleConnTimeout = 30 * time.Second
	tr.ResponseHeaderTimeout = 25 * time.Second
	var rt http.RoundTripper = tr
	if p.wrapTransport != nil {
		rt = p.wrapTransport(rt)
	}
	p.rp = &httputil.ReverseProxy{
		Transport: rt,
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(targetKey{}).(*url.URL)
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = target.Host
		},
		ModifyResponse: p.upstreamAnswered,
		ErrorHandler:   p.upstreamError,
		BufferPool:     copyBuffers,
	}
	return p, nil
}

// copyBuffers lends the proxy the buffers it copies response bodies
// through. Without a pool, httputil.ReverseProxy allocates 32 KiB for every
// response: at ten thousand small answers a second that was 44% of the bytes
// the one-process shop allocated, and garbage collection took a seventh of
// its CPU.
var copyBuffers httputil.BufferPool = &bufferPool{pool: sync.Pool{New: func() any {
	b := make([]byte, 32<<10) // what ReverseProxy allocates without a pool
	return &b
}}}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

func (p *bufferPool) Put(b []byte) {
	if cap(b) != 32<<10 {
		return // not one of ours
	}
	b = b[:cap(b)]
	p.pool.Put(&b)
}

// Handler returns the handler for one route.
func (p *Proxy) Handler(service string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasDotSegment(r.URL.Path) {
			// An escaped ../ would be decoded by the service into a path the
			// route table never allowed, such as an internal one.
			web.Error(w, r, fail.New(fail.NotFound, "no route for %s", r.URL.EscapedPath()))
			return
		}
		for _, h := range identityHeaders {
			r.Header.Del(h)
		}
		// Refused at once, without a network attempt, when the upstream's
		// bulkhead is full or its breaker open.
		ex := &exchange{service: service, edge: p.edges.Edge(service), staleKey: staleKey(r)}
		leave, err := ex.edge.Enter()
		if err != nil {
			p.unavailable(w, r, ex, err)
			return
		}
		defer leave()
		if ex.done, err = ex.edge.Try(); err != nil {
			p.unavailable(w, r, ex, err)
			return
		}
		defer ex.settle(resilience.Ignored) // when neither answer nor error came back
		var target *url.URL
		if service == "registry" {
			target = p.registryURL
		} else {
			addr, err := p.resolver.Resolve(r.Context(), service)
			if err != nil {
				ex.settle(resilience.Failure)
				p.unavailable(w, r, ex, fail.Wrap(fail.Unavailable, err, "%s is unavailable", service))
				return
			}
			target = &url.URL{Scheme: "http", Host: addr}
		}
		ctx := context.WithValue(r.Context(), targetKey{}, target)
		ctx = context.WithValue(ctx, exchangeKey{}, ex)
		ex.edge.Attempted()
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// upstreamError answers a request that got no answer from its service.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := r.Context().Value(exchangeKey{}).(*exchange)
	if r.Context().Err() != nil {
		ex.settle(resilience.Ignored) // the client left: that says nothing of the service
	} else {
		ex.settle(resilience.Failure)
	}
	if ex.service != "registry" { // the instance may be gone: resolve afresh next time
		p.resolver.Forget(ex.service)
	}
	p.log.WarnContext(r.Context(), "upstream failed", slog.String("service", ex.service), slog.Any("err", err))
	p.unavailable(w, r, ex, fail.Wrap(fail.Unavailable, err, "%s is unavailable", ex.service))
}
