// Package gateway is the shop's single entry point: it routes each public
// path to the service that owns it, found through the registry, verifies
// tokens before anything is forwarded, strips identity headers a client
// might forge, and serves the API documents of every service.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/fail"
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
	{"/api/v1/users/{id}/orders", "orders"},
	{"/api/v1/products", "catalog"},
	{"/api/v1/products/", "catalog"},
	{"/api/v2/products/", "catalog"},
	{"/api/v1/inventory", "inventory"},
	{"/api/v1/inventory/", "inventory"},
	{"/api/v1/orders", "orders"},
	{"/api/v1/orders/", "orders"},
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
	rp          *httputil.ReverseProxy
	log         *slog.Logger
}

type targetKey struct{}

// NewProxy returns a proxy that resolves services through resolver; the
// registry itself is reached at registryURL.
func NewProxy(resolver Resolver, registryURL string, log *slog.Logger) (*Proxy, error) {
	ru, err := url.Parse(registryURL)
	if err != nil {
		return nil, err
	}
	p := &Proxy{resolver: resolver, registryURL: ru, log: log}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	tr.IdleConnTimeout = 30 * time.Second
	tr.ResponseHeaderTimeout = 25 * time.Second
	p.rp = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(targetKey{}).(*url.URL)
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = target.Host
		},
		ErrorHandler: p.upstreamError,
	}
	return p, nil
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
		var target *url.URL
		if service == "registry" {
			target = p.registryURL
		} else {
			addr, err := p.resolver.Resolve(r.Context(), service)
			if err != nil {
				web.Error(w, r, fail.Wrap(fail.Unavailable, err, "%s is unavailable", service))
				return
			}
			target = &url.URL{Scheme: "http", Host: addr}
		}
		ctx := context.WithValue(r.Context(), targetKey{}, target)
		ctx = context.WithValue(ctx, serviceKey{}, service)
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

type serviceKey struct{}

func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	service, _ := r.Context().Value(serviceKey{}).(string)
	if service != "registry" { // the instance may be gone: resolve afresh next time
		p.resolver.Forget(service)
	}
	p.log.WarnContext(r.Context(), "upstream failed", slog.String("service", service), slog.Any("err", err))
	web.Error(w, r, fail.Wrap(fail.Unavailable, err, "%s is unavailable", service))
}
