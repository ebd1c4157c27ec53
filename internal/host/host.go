// Package host runs one microshop service: it listens, serves the service's
// routes behind the shared middleware and the ops endpoints, announces the
// instance to the registry, runs the service's background workers, and on
// cancellation drains and stops them in order.
package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/web"
)

// Worker is a background loop owned by a service; it returns when ctx ends.
type Worker func(ctx context.Context)

// Service is one service ready to run.
type Service struct {
	Name     string
	Addr     string // listen address; port 0 picks a free one
	Log      *slog.Logger
	Routes   *http.ServeMux
	Health   *web.Health
	Metrics  *web.Metrics
	Verifier *auth.Verifier // nil: tokens are not checked here
	Workers  []Worker

	Registry    *discovery.Client // nil: the instance is not announced
	RegistryTTL time.Duration
	// OnListen, when set, learns the bound address before the service is
	// announced.
	OnListen func(addr string)

	opsOnce sync.Once
}

// Handler returns the service's full HTTP handler: ops endpoints and routes
// behind request ids, panic recovery, security headers, metrics, access logs
// and token verification. It may be called more than once.
func (s *Service) Handler() http.Handler {
	s.opsOnce.Do(func() {
		s.Routes.HandleFunc("GET /healthz", s.Health.ServeHealthz)
		s.Routes.HandleFunc("GET /ready", s.Health.ServeReady)
		s.Routes.Handle("GET /metrics", s.Metrics.Handler())
	})
	mw := []web.Middleware{
		web.RequestID(s.Log),
		web.Recover,
		web.SecurityHeaders,
		s.Metrics.Middleware,
		web.AccessLog,
	}
	if s.Verifier != nil {
		mw = append(mw, auth.Authenticate(s.Verifier))
	}
	return web.Chain(web.Routed(s.Routes), mw...)
}

// Run serves until ctx ends. It returns once the listener is closed, requests
// in flight are done, the workers have stopped and the instance has left the
// registry.
func (s *Service) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("%s listening on %s: %w", s.Name, s.Addr, err)
	}
	addr := ln.Addr().String()
	if s.OnListen != nil {
		s.OnListen(addr)
	}
	handler := s.Handler()

	var wg sync.WaitGroup
	// Workers outlive ctx until the requests in flight are done: they are
	// stopped last, in the drain below.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	for _, w := range s.Workers {
		wg.Go(func() { w(workCtx) })
	}

	serveCtx, stopServe := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- web.Serve(serveCtx, ln, handler, s.Log) }()

	// Findable before ready: the instance is announced (healthy, since it
	// already serves) before it says it is ready, and kept announced after.
	regCtx, stopReg := context.WithCancel(context.Background())
	if s.Registry != nil {
		inst := discovery.Instance{ID: s.Name + "-" + addr, Service: s.Name, Address: addr}
		if err := s.Registry.Announce(ctx, inst, s.RegistryTTL); err != nil {
			s.Log.Warn("announcing to the registry failed; heartbeats will retry", slog.Any("err", err))
		}
		wg.Go(func() { s.Registry.Keep(regCtx, inst, s.RegistryTTL, s.Health.Ready, s.Log) })
	}
	s.Health.SetReady(true)
	s.Log.Info("service ready", slog.String("addr", addr))

	select {
	case <-ctx.Done():
	case err = <-errc: // the listener failed on its own
	}
	// Drain: leave the registry first so callers stop choosing this
	// instance, then finish the requests in flight, then stop the workers.
	s.Health.SetReady(false)
	stopReg()
	stopServe()
	if err == nil {
		err = <-errc
	}
	stopWork()
	wg.Wait()
	s.Log.Info("service stopped")
	return err
}
