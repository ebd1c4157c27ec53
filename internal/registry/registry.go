// Package registry is microshop's service registry: instances announce
// themselves with a time to live and renew it by heartbeat; an instance that
// stops renewing drops out. Its clients use package discovery.
package registry

import (
	"cmp"
	"context"
	"github.com/microshop/microshop/internal/discovery"
	"slices"
	"sync"
	"time"
)

// Instance and Service are the wire types of the registry's API.
type (
	Instance = discovery.Instance
	Service  = discovery.Service
)

// heartbeatRequest is the body services send to announce themselves.
type heartbeatRequest = discovery.Heartbeat

// entry is an instance and when it expires.
type entry struct {
	Instance
	expires time.Time
}

// Registry holds the instances that have heartbeated within their TTL.
type Registry struct {
	mu        sync.Mutex
	instances map[string]entry
	now       func() time.Time
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{instances: map[string]entry{}, now: time.Now}
}

// Heartbeat registers inst or renews it, for ttl from now.
func (r *Registry) Heartbeat(inst Instance, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.instances[inst.ID] = entry{Instance: inst, expires: r.now().Add(ttl)}
}

// Deregister removes an instance at once, as a clean stop does.
func (r *Registry) Deregister(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.instances, id)
}

// Services lists every service with its live instances, sorted by name.
func (r *Registry) Services() []Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	byName := map[string][]Instance{}
	for _, e := range r.instances {
		if e.expires.After(now) {
			byName[e.Service] = append(byName[e.Service], e.Instance)
		}
	}
	out := make([]Service, 0, len(byName))
	for name, insts := range byName {
		slices.SortFunc(insts, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, Service{Name: name, Instances: insts})
	}
	slices.SortFunc(out, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Instances lists the live instances of one service, sorted by id.
func (r *Registry) Instances(service string) []Instance {
	for _, s := range r.Services() {
		if s.Name == service {
			return s.Instances
		}
	}
	return nil
}

// Sweep drops the instances whose TTL has passed, until ctx ends.
func (r *Registry) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			now := r.now()
			for id, e := range r.instances {
				if !e.expires.After(now) {
					delete(r.instances, id)
				}
			}
			r.mu.Unlock()
		}
	}
}
