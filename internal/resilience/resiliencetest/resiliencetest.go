// Package resiliencetest puts faults between a caller and the service it
// calls, for tests: an in-process toxiproxy in front of a real upstream
// that counts every request reaching it.
package resiliencetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Upstream is a real HTTP server on loopback that counts the requests
// reaching its handler, which a test may swap at any time.
type Upstream struct {
	// Addr is where it listens, host:port.
	Addr     string
	arrivals atomic.Int64
	handler  atomic.Pointer[http.HandlerFunc]
}

// NewUpstream starts an upstream answering with h, closed when the test ends.
func NewUpstream(t testing.TB, h http.HandlerFunc) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.Set(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.arrivals.Add(1)
		(*u.handler.Load())(w, r)
	}))
	t.Cleanup(srv.Close)
	u.Addr = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// Set makes h answer every request from now on.
func (u *Upstream) Set(h http.HandlerFunc) { u.handler.Store(&h) }

// Arrivals is how many requests reached the upstream so far.
func (u *Upstream) Arrivals() int64 { return u.arrivals.Load() }

// Status answers every request with a problem of the given status, and
// header, if any, as "Name: value" pairs.
func Status(status int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for _, h := range header {
			k, v, _ := strings.Cut(h, ": ")
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "detail": fmt.Sprintf("the upstream answered %d", status)})
	}
}

// OK answers every request 200 with body as JSON.
func OK(body any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}
}

// Proxy is an in-process toxiproxy proxy: a TCP proxy whose faults
// (toxics) a test adds and removes while calls go through it.
type Proxy struct {
	// Addr is where callers reach the upstream through the proxy.
	Addr  string
	proxy *toxiproxy.Proxy
}

// NewProxy starts a toxiproxy server in this process and a proxy on
// 127.0.0.1:0 in front of upstream (host:port), stopped when the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	p := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := server.Collection.Add(p, true); err != nil {
		t.Fatalf("starting toxiproxy in front of %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{Addr: p.Listen, proxy: p}
}

// SetUpstream points the proxy at another upstream (host:port), as when
// the process behind it came back elsewhere: the connections open now are
// closed, and new ones reach upstream. It listens again where it did, and
// keeps its toxics.
func (p *Proxy) SetUpstream(upstream string) error {
	return p.proxy.Update(&toxiproxy.Proxy{Listen: p.Addr, Upstream: upstream, Enabled: true})
}

// Upstream is where the proxy sends its connections now.
func (p *Proxy) Upstream() string {
	p.proxy.Lock()
	defer p.proxy.Unlock()
	return p.proxy.Upstream
}

// Add adds a toxic named name of the given type ("latency", "reset_peer",
// "timeout", ...) on stream ("upstream": the requests, "downstream": the
// answers), with its attributes.
func (p *Proxy) Add(t testing.TB, name, typ, stream string, attributes map[string]any) {
	t.Helper()
	p.AddSometimes(t, name, typ, stream, 1, attributes)
}

// AddSometimes adds a toxic as Add does, to each connection with the
// probability toxicity (0 to 1): the others pass untouched.
func (p *Proxy) AddSometimes(t testing.TB, name, typ, stream string, toxicity float64, attributes map[string]any) {
	t.Helper()
	spec, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": toxicity, "attributes": attributes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(string(spec))); err != nil {
		t.Fatalf("adding toxic %s: %v", name, err)
	}
}

// Remove removes the toxic named name.
func (p *Proxy) Remove(t testing.TB, name string) {
	t.Helper()
	// RemoveToxic panics on a nil context.
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("removing toxic %s: %v", name, err)
	}
}
