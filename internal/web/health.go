package web

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Check reports whether one dependency works; nil means UP.
type Check func(ctx context.Context) error

// Health serves /healthz from named checks and /ready from a readiness flag
// that the owner raises once started and lowers while draining.
type Health struct {
	mu     sync.RWMutex
	checks map[string]Check
	ready  atomic.Bool
}

// NewHealth returns a Health with no checks, not ready.
func NewHealth() *Health { return &Health{checks: map[string]Check{}} }

// Add registers a named check.
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// SetReady says whether the service can serve.
func (h *Health) SetReady(ok bool) { h.ready.Store(ok) }

// Ready reports the readiness flag.
func (h *Health) Ready() bool { return h.ready.Load() }

// Status runs every check with a short deadline and reports each as UP or
// DOWN, and whether all are UP.
func (h *Health) Status(ctx context.Context) (map[string]string, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := make(map[string]string, len(h.checks))
	healthy := true
	for name, c := range h.checks {
		if err := c(ctx); err != nil {
			out[name] = "DOWN"
			healthy = false
			continue
		}
		out[name] = "UP"
	}
	return out, healthy
}

// ServeHealthz answers {"status","checks"} with 200 when every check is UP and
// 503 otherwise.
func (h *Health) ServeHealthz(w http.ResponseWriter, r *http.Request) {
	checks, ok := h.Status(r.Context())
	status, code := "UP", http.StatusOK
	if !ok {
		status, code = "DOWN", http.StatusServiceUnavailable
	}
	JSON(w, code, map[string]any{"status": status, "checks": checks})
}

// ServeReady answers 200 while ready and 503 while starting or draining.
func (h *Health) ServeReady(w http.ResponseWriter, r *http.Request) {
	if !h.Ready() {
		JSON(w, http.StatusServiceUnavailable, map[string]string{"status": "NOT_READY"})
		return
	}
	JSON(w, http.StatusOK, map[string]string{"status": "READY"})
}
