// Package registry is microshop's service registry: instances announce
// themselves with a time to live and renew it by heartbeat; an instance that
// stops renewing drops out. Clients resolve a service name to the address of
// a healthy instance, balancing round-robin.
package registry

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Instance is one running copy of a service.
type Instance struct {
	ID      string    `json:"id"`
	Service string    `json:"service"`
	Address string    `json:"address"`
	Healthy bool      `json:"healthy"`
	Expires time.Time `json:"-"`
}

// Service groups the live instances of one service.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"`
}

// Registry holds the instances that have heartbeated within their TTL.
type Registry struct {
	mu        sync.Mutex
	instances map[string]Instance
	now       func() time.Time
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{instances: map[string]Instance{}, now: time.Now}
}

// Heartbeat registers inst or renews it, for ttl from now.
func (r *Registry) Heartbeat(inst Instance, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst.Expires = r.now().Add(ttl)
	r.instances[inst.ID] = inst
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
	for _, inst := range r.instances {
		if inst.Expires.After(now) {
			byName[inst.Service] = append(byName[inst.Service], inst)
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
			for id, inst := range r.instances {
				if !inst.Expires.After(now) {
					delete(r.instances, id)
				}
			}
			r.mu.Unlock()
		}
	}
}
