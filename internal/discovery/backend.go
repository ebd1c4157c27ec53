package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Registry is where instances are announced and found, whatever keeps
// them: the built-in registry, etcd or Kubernetes DNS. Services announce
// through it (package host), callers resolve through it (package
// upstream, the gateway) and the console lists it.
type Registry interface {
	// Announce registers inst as healthy once, for ttl: a service that
	// already serves calls it before it says it is ready, so that ready
	// means findable.
	Announce(ctx context.Context, inst Instance, ttl time.Duration) error
	// Keep keeps inst registered until ctx ends, then deregisters it.
	// healthy is asked before each renewal; while it blocks, the
	// registration is not renewed, as a stopped process's is not.
	Keep(ctx context.Context, inst Instance, ttl time.Duration, healthy func() bool, log *slog.Logger)
	// Resolve returns the address (host:port) of a healthy instance of
	// service, taking turns among them, or fails with fail.Unavailable.
	Resolve(ctx context.Context, service string) (string, error)
	// Forget drops what is known of service's instances, after one failed
	// to answer, so that the next Resolve asks again.
	Forget(service string)
	// Services lists every service and its instances, healthy or not.
	Services(ctx context.Context) ([]Service, error)
	// Close releases the backend's connections once nobody uses it.
	Close() error
}

var (
	_ Registry = (*Client)(nil)
	_ Registry = (*Etcd)(nil)
	_ Registry = (*DNS)(nil)
)

// Option tunes the registry New returns; an option a backend has no use
// for is ignored.
type Option func(*options)

type options struct {
	cache     time.Duration
	authorize func(ctx context.Context, r *http.Request) error
	services  []string
	resolver  *net.Resolver
	log       *slog.Logger
}

// WithCache has resolutions cached for d (the built-in registry, DNS);
// etcd's view is kept current by a watch instead.
func WithCache(d time.Duration) Option { return func(o *options) { o.cache = d } }

// WithAuthorize adds the caller's credentials to every request to the
// built-in registry (see Client.Authorize).
func WithAuthorize(f func(ctx context.Context, r *http.Request) error) Option {
	return func(o *options) { o.authorize = f }
}

// WithServices names the services Kubernetes DNS lists: DNS can answer
// for a name, not list the names it knows.
func WithServices(names []string) Option { return func(o *options) { o.services = names } }

// WithResolver has Kubernetes DNS looked up through r instead of the
// system's resolver.
func WithResolver(r *net.Resolver) Option { return func(o *options) { o.resolver = r } }

// WithLogger has the backend log what it does on its own (etcd's watch).
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// New returns the registry rawURL names, by its scheme:
//
//   - http://host:port or https://: the built-in registry;
//   - etcd://host:port[,host:port...][?prefix=/microshop]: etcd, every
//     instance a key under prefix, held by a lease;
//   - kubernetes://namespace[?domain=cluster.local]: Kubernetes DNS, the
//     SRV records of each service's headless Service in namespace.
//
// The registry must be closed once nobody uses it.
func New(rawURL string, opts ...Option) (Registry, error) {
	o := options{cache: time.Second, resolver: net.DefaultResolver, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("registry URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("registry URL %q: want http://host:port", rawURL)
		}
		c := NewClient(strings.TrimRight(rawURL, "/"), o.cache)
		c.Authorize = o.authorize
		return c, nil
	case "etcd":
		endpoints, prefix, err := etcdTarget(u)
		if err != nil {
			return nil, fmt.Errorf("registry URL %q: %w", rawURL, err)
		}
		return NewEtcd(endpoints, prefix, o.log)
	case "kubernetes":
		namespace, domain, err := kubernetesTarget(u)
		if err != nil {
			return nil, fmt.Errorf("registry URL %q: %w", rawURL, err)
		}
		return NewDNS(namespace, domain, o.services, o.resolver, o.cache), nil
	}
	return nil, fmt.Errorf("registry URL %q: want http://host:port, etcd://host:port or kubernetes://namespace", rawURL)
}

// etcdTarget reads the endpoints and key prefix of an etcd:// URL.
func etcdTarget(u *url.URL) (endpoints []string, prefix string, err error) {
	if u.User != nil || (u.Path != "" && u.Path != "/") {
		return nil, "", fmt.Errorf("want etcd://host:port[,host:port][?prefix=/microshop]")
	}
	for ep := range strings.SplitSeq(u.Host, ",") {
		if host, port, err := net.SplitHostPort(ep); err != nil || host == "" || port == "" {
			return nil, "", fmt.Errorf("endpoint %q: want host:port", ep)
		}
		endpoints = append(endpoints, ep)
	}
	prefix = "/microshop"
	if p := u.Query().Get("prefix"); p != "" {
		prefix = p
	}
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
		return nil, "", fmt.Errorf("prefix %q: want /name, with no trailing slash", prefix)
	}
	return endpoints, prefix, nil
}

// kubernetesTarget reads the namespace and cluster domain of a
// kubernetes:// URL.
func kubernetesTarget(u *url.URL) (namespace, domain string, err error) {
	namespace = u.Host
	if !isDNSLabel(namespace) || u.User != nil || (u.Path != "" && u.Path != "/") {
		return "", "", fmt.Errorf("want kubernetes://namespace[?domain=cluster.local], the namespace a DNS label")
	}
	domain = "cluster.local"
	if d := u.Query().Get("domain"); d != "" {
		domain = d
	}
	for label := range strings.SplitSeq(domain, ".") {
		if !isDNSLabel(label) {
			return "", "", fmt.Errorf("domain %q: not a DNS name", domain)
		}
	}
	return namespace, domain, nil
}

// isDNSLabel says whether s is an RFC 1123 label, as Kubernetes names
// namespaces and Services.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
