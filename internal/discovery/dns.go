package discovery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// DNS is the backend of kubernetes:// registry URLs: every service is a
// headless Service of its name in one namespace, and Kubernetes publishes
// the addresses of its ready pods as the SRV records
// _http._tcp.<service>.<namespace>.svc.<domain> (the port named http).
// Kubernetes keeps those records from the pods' readiness probes, so
// announcing is left to it: Announce and Keep do nothing.
type DNS struct {
	namespace string
	domain    string
	services  []string
	resolver  *net.Resolver
	cache     time.Duration

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

// NewDNS returns the registry of the headless Services in namespace of the
// cluster domain (cluster.local, usually), looked up through resolver and
// cached for cacheFor. Services lists the services named in services.
func NewDNS(namespace, domain string, services []string, resolver *net.Resolver, cacheFor time.Duration) *DNS {
	return &DNS{
		namespace: namespace,
		domain:    domain,
		services:  slices.Clone(services),
		resolver:  resolver,
		cache:     cacheFor,
		entries:   map[string]*cacheEntry{},
	}
}

// Announce does nothing: Kubernetes lists a pod once its readiness probe
// passes.
func (d *DNS) Announce(context.Context, Instance, time.Duration) error { return nil }

// Keep does nothing until ctx ends: Kubernetes keeps the records from the
// readiness probes, and drops a pod that stops or is not ready.
func (d *DNS) Keep(ctx context.Context, _ Instance, _ time.Duration, _ func() bool, _ *slog.Logger) {
	<-ctx.Done()
}

// Close releases nothing.
func (d *DNS) Close() error { return nil }

// Resolve returns the address of an instance of service, taking turns
// among them. A lookup is cached for the cache period; while DNS fails,
// the addresses it last gave are used.
func (d *DNS) Resolve(ctx context.Context, service string) (string, error) {
	e, err := d.entry(ctx, service)
	if err != nil {
		return "", err
	}
	if len(e.instances) == 0 {
		return "", fail.New(fail.Unavailable, "no ready instance of %s", service)
	}
	n := e.next.Add(1)
	return e.instances[int(n%uint64(len(e.instances)))].Address, nil
}

// Forget drops the cached addresses of service, so that the next Resolve
// looks them up again.
func (d *DNS) Forget(service string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.entries, service)
}

// Services looks up every service it was told of and lists those with
// instances. A failed lookup fails the listing: a console or a health
// check then sees that DNS does not answer, not an empty shop.
func (d *DNS) Services(ctx context.Context) ([]Service, error) {
	out := []Service{}
	for _, name := range d.services {
		insts, err := d.lookup(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(insts) > 0 {
			out = append(out, Service{Name: name, Instances: insts})
		}
	}
	return out, nil
}

func (d *DNS) entry(ctx context.Context, service string) (*cacheEntry, error) {
	d.mu.Lock()
	e, ok := d.entries[service]
	d.mu.Unlock()
	if ok && time.Since(e.fetched) < d.cache {
		return e, nil
	}
	insts, err := d.lookup(ctx, service)
	if err != nil {
		if !ok {
			return nil, err
		}
		insts = e.instances // DNS is away: keep what we knew until the next period
	}
	fresh := &cacheEntry{fetched: time.Now(), instances: insts}
	if ok {
		fresh.next.Store(e.next.Load())
	}
	d.mu.Lock()
	d.entries[service] = fresh
	d.mu.Unlock()
	return fresh, nil
}

// lookup finds the instances of service: its SRV records, and the
// addresses of each record's target, through the same resolver (a pod's
// name is only known to the cluster's DNS). A name that does not exist
// has no instances; a DNS that does not answer is unavailable.
func (d *DNS) lookup(ctx context.Context, service string) ([]Instance, error) {
	// The trailing dot makes the name absolute: no search domain is tried.
	name := service + "." + d.namespace + ".svc." + d.domain + "."
	_, records, err := d.resolver.LookupSRV(ctx, "http", "tcp", name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, err, "registry unreachable: looking up %s", service)
	}
	var out []Instance
	for _, rec := range records {
		target := strings.TrimSuffix(rec.Target, ".")
		hosts, err := d.resolver.LookupHost(ctx, rec.Target)
		if isNotFound(err) {
			continue // the pod went away between the two answers
		}
		if err != nil {
			return nil, fail.Wrap(fail.Unavailable, err, "registry unreachable: looking up %s", target)
		}
		for _, host := range hosts {
			id := target
			if len(hosts) > 1 {
				id = target + "/" + host
			}
			out = append(out, Instance{ID: id, Service: service, Address: net.JoinHostPort(host, strconv.Itoa(int(rec.Port))), Healthy: true})
		}
	}
	slices.SortFunc(out, byID)
	return out, nil
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}
