// Package discovery is the client side of service discovery: it keeps an
// instance announced and resolves a service name to the address of a
// healthy instance, taking turns among them. Three registries sit behind
// one interface, chosen by URL: microshop's built-in registry over HTTP
// (package registry is the server), etcd (an instance is a key under a
// lease), and Kubernetes DNS (the endpoints of headless Services).
package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/telemetry"
)

// Client is the backend of http:// registry URLs: it talks to the built-in
// registry over HTTP, keeps an instance registered there and resolves
// service names to instance addresses.
type Client struct {
	base  string
	hc    *http.Client
	cache time.Duration

	// Authorize, when set before the client is first used, is called on
	// every request to the registry just before it is sent: it adds the
	// caller's service credentials. An error stops the request unsent.
	Authorize func(ctx context.Context, r *http.Request) error

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	fetched   time.Time
	instances []Instance
	next      atomic.Uint64
}

// NewClient returns a client of the registry at baseURL that caches each
// resolution for cacheFor.
func NewClient(baseURL string, cacheFor time.Duration) *Client {
	return &Client{
		base:    baseURL,
		hc:      &http.Client{Timeout: 2 * time.Second},
		cache:   cacheFor,
		entries: map[string]*cacheEntry{},
	}
}

// Keep registers inst and renews it every ttl/3 until ctx ends, then
// deregisters it. healthy is asked before each heartbeat. Failed heartbeats
// are logged and retried at the next tick: a registry that restarts learns
// the instance again within one interval.
func (c *Client) Keep(ctx context.Context, inst Instance, ttl time.Duration, healthy func() bool, log *slog.Logger) {
	beat := func() {
		inst.Healthy = healthy()
		if err := c.heartbeat(ctx, inst, ttl); err != nil && ctx.Err() == nil {
			log.Warn("registry heartbeat failed", slog.String("instance", inst.ID), slog.Any("err", err))
		}
	}
	beat()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := c.deregister(dctx, inst.ID); err != nil {
				log.Warn("registry deregister failed", slog.String("instance", inst.ID), slog.Any("err", err))
			}
			cancel()
			return
		case <-t.C:
			beat()
		}
	}
}

// Instance is one running copy of a service.
type Instance struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
}

// Service groups the live instances of one service.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"`
}

// Heartbeat is the body of PUT /v1/instances/{id}: announce or renew.
type Heartbeat struct {
	Service    string `json:"service"`
	Address    string `json:"address"`
	Healthy    bool   `json:"healthy"`
	TTLSeconds int    `json:"ttl_seconds"`
}

// Announce registers inst as healthy once, for ttl: a service that already
// serves calls it before it says it is ready, so that ready means findable.
func (c *Client) Announce(ctx context.Context, inst Instance, ttl time.Duration) error {
	inst.Healthy = true
	return c.heartbeat(ctx, inst, ttl)
}

// heartbeat announces or renews inst. Heartbeats are the registry's
// upkeep, not anyone's work: they run in traces that are not recorded.
func (c *Client) heartbeat(ctx context.Context, inst Instance, ttl time.Duration) error {
	ctx = telemetry.Untraced(ctx)
	body, _ := json.Marshal(Heartbeat{Service: inst.Service, Address: inst.Address, Healthy: inst.Healthy, TTLSeconds: int(ttl / time.Second)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/v1/instances/"+url.PathEscape(inst.ID), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req, nil)
}

func (c *Client) deregister(ctx context.Context, id string) error {
	ctx = telemetry.Untraced(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/v1/instances/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	return c.send(req, nil)
}

// Services lists every service and its instances.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/services", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Services []Service `json:"services"`
	}
	if err := c.send(req, &out); err != nil {
		return nil, err
	}
	return out.Services, nil
}

// Resolve returns the address (host:port) of a healthy instance of service,
// taking turns among them. It fails with fail.Unavailable when there is none.
func (c *Client) Resolve(ctx context.Context, service string) (string, error) {
	e, err := c.entry(ctx, service)
	if err != nil {
		return "", err
	}
	if len(e.instances) == 0 {
		return "", fail.New(fail.Unavailable, "no healthy instance of %s", service)
	}
	n := e.next.Add(1)
	return e.instances[int(n%uint64(len(e.instances)))].Address, nil
}

// Forget drops the cached instances of service, so that the next Resolve asks
// the registry again; callers use it after an instance failed to answer.
func (c *Client) Forget(service string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, service)
}

func (c *Client) entry(ctx context.Context, service string) (*cacheEntry, error) {
	c.mu.Lock()
	e, ok := c.entries[service]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) < c.cache {
		return e, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/services/"+url.PathEscape(service), nil)
	if err != nil {
		return nil, err
	}
	var out Service
	if err := c.send(req, &out); err != nil {
		if ok { // the registry is away: keep using what we knew, and ask again only after another cache period
			stale := &cacheEntry{fetched: time.Now(), instances: e.instances}
			stale.next.Store(e.next.Load())
			c.mu.Lock()
			c.entries[service] = stale
			c.mu.Unlock()
			return stale, nil
		}
		return nil, err
	}
	fresh := &cacheEntry{fetched: time.Now()}
	for _, inst := range out.Instances {
		if inst.Healthy {
			fresh.instances = append(fresh.instances, inst)
		}
	}
	if ok {
		fresh.next.Store(e.next.Load())
	}
	c.mu.Lock()
	c.entries[service] = fresh
	c.mu.Unlock()
	return fresh, nil
}

// Close releases nothing: the client holds no connection of its own.
func (c *Client) Close() error { return nil }

func (c *Client) send(req *http.Request, out any) error {
	if c.Authorize != nil {
		if err := c.Authorize(req.Context(), req); err != nil {
			return fmt.Errorf("authorizing a registry request: %w", err)
		}
	}
	// A lookup made for a request is part of its trace.
	telemetry.Propagator.Inject(req.Context(), propagation.HeaderCarrier(req.Header))
	resp, err := c.hc.Do(req)
	if err != nil {
		return fail.Wrap(fail.Unavailable, err, "registry unreachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fail.New(fail.Unavailable, "registry answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding registry answer: %w", err)
	}
	return nil
}
