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
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/web"
)

// Worker is a background loop owned by a service; it returns when ctx ends.
// A worker of a service with Faults is stopped while the instance is down
// and run again when it comes back up, as after a restart, so it must be
// safe to run more than once; a loop that is not (an event consumer
// registers with its inbox once) is one of Consumers instead.
type Worker func(ctx context.Context)

// Service is one service ready to run.
type Service struct {
	Name     string
	Addr     string // listen address; port 0 picks a free one
	Log      *slog.Logger
	Routes   *http.ServeMux
	Health   *web.Health
	Metrics  *web.Metrics
	Verifier *auth.Verifier        // nil: tokens are not checked here
	Services *auth.ServiceVerifier // checks service tokens on internal paths (see ServiceOnly); nil: not checked
	// Internal, when set, names the paths that take service tokens instead
	// of every internal path (see ServiceOnlyOn).
	Internal func(path string) bool
	Workers  []Worker
	// Consumers are background loops that run for the service's whole life,
	// never restarted. While Faults has the instance down they must pause
	// by themselves: an event consumer does, when it subscribes through
	// Faults.Subscriber.
	Consumers []Worker

	Registry    discovery.Registry // nil: the instance is not announced
	RegistryTTL time.Duration
	// Advertise, when set, is the host other processes reach this
	// instance at (a pod's IP, a container's name): the registry is told
	// it, with the bound port. Empty: the bound address, or, when that is
	// every interface (0.0.0.0), this machine's first non-loopback address.
	Advertise string
	// OnListen, when set, learns the bound address before the service is
	// announced.
	OnListen func(addr string)
	// Faults, when set, injects the faults an admin asks for: latency and
	// errors on every request, or the instance down as if its process had
	// died (its routes are mounted on Routes with fault.Mount).
	Faults *fault.Injector

	opsOnce sync.Once
	// Tracing, when set, traces every request (telemetry.Middleware).
	Tracing web.Middleware
}

// Handler returns the service's full HTTP handler: ops endpoints and routes
// behind request ids, panic recovery, security headers, metrics, access logs
// and token verification. It may be called more than once.
func (s *Service) Handler() http.Handler {
	s.opsOnce.Do(func() {
		s.Routes.HandleFunc("GET /healthz", s.Health.ServeHealthz)
		s.Routes.HandleFunc("GET /ready", s.Health.ServeReady)
		s.Routes.Handle("GET /metrics", s.Metrics.Handler())
		if s.Faults != nil {
			s.Metrics.Registry.MustRegister(s.Faults.Collectors()...)
		}
	})
	mw := []web.Middleware{web.RequestID(s.Log)}
	if s.Tracing != nil {
		mw = append(mw, s.Tracing) // after the request id, so its logs carry both
	}
	mw = append(mw,
		web.Deadline, // a caller's budget bounds the work here too
		web.Recover,
		web.SecurityHeaders,
		s.Metrics.Middleware,
		web.AccessLog,
	)
	if s.Faults != nil {
		// A dead process answers nothing, so down is decided before any
		// middleware sees the request; injected latency and errors come
		// after the metrics and logs, which count them as what clients see.
		mw = append([]web.Middleware{s.Faults.Gate}, mw...)
		mw = append(mw, s.Faults.Middleware)
	}
	internal := InternalPath
	if s.Internal != nil {
		internal = s.Internal
	}
	mw = append(mw, ServiceOnlyOn(s.Services, internal))
	if s.Verifier != nil {
		mw = append(mw, auth.Authenticate(s.Verifier))
	}
	return web.Chain(web.Routed(s.Routes), mw...)
}

// Run serves until ctx ends. It returns once the listener is closed, requests
// in flight are done, the workers have stopped and the instance has left the
// registry. While Faults has the instance down, its workers and heartbeats
// stop (see package fault); they start again when it comes back up.
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
	if s.Faults != nil {
		ln = s.Faults.Listener(ln)
	}

	var wg sync.WaitGroup
	// Workers outlive ctx until the requests in flight are done: they are
	// stopped last, in the drain below.
	work := &workers{ctx: context.WithoutCancel(ctx), fns: s.Workers}
	consumers := &workers{ctx: context.WithoutCancel(ctx), fns: s.Consumers}
	consumers.start()
	up := true
	if s.Faults != nil {
		s.Faults.OnSwitch(func(down bool) { s.switchTo(down, work) })
		up = !s.Faults.Down()
	}
	if up {
		work.start()
	}

	serveCtx, stopServe := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- web.Serve(serveCtx, ln, handler, s.Log) }()

	// Findable before ready: the instance is announced (healthy, since it
	// already serves) before it says it is ready, and kept announced after.
	// It is ready before the heartbeats start, so the first says healthy.
	regCtx, stopReg := context.WithCancel(context.Background())
	announced := s.announced(addr)
	inst := discovery.Instance{ID: s.Name + "-" + announced, Service: s.Name, Address: announced}
	if s.Registry != nil && up {
		if err := s.Registry.Announce(ctx, inst, s.RegistryTTL); err != nil {
			s.Log.Warn("announcing to the registry failed; heartbeats will retry", slog.Any("err", err))
		}
	}
	s.Health.SetReady(up)
	if s.Registry != nil {
		healthy := s.Health.Ready
		if s.Faults != nil {
			// While the instance is down it does not heartbeat, as a dead
			// process does not: the registry drops it once its TTL passes,
			// not at once, and callers meet the dead address meanwhile.
			healthy = func() bool {
				select {
				case <-s.Faults.Up():
				case <-regCtx.Done():
				}
				return s.Health.Ready()
			}
		}
		wg.Go(func() { s.Registry.Keep(regCtx, inst, s.RegistryTTL, healthy, s.Log) })
	}
	s.Log.Info("service ready", slog.String("addr", addr))

	select {
	case <-ctx.Done():
	case err = <-errc: // the listener failed on its own
	}
	// Drain: no more switching up or down, then leave the registry first so
	// callers stop choosing this instance, then finish the requests in
	// flight, then stop the workers for good.
	if s.Faults != nil {
		s.Faults.OnSwitch(nil)
	}
	s.Health.SetReady(false)
	stopReg()
	stopServe()
	if err == nil {
		err = <-errc
	}
	work.halt(true)
	consumers.halt(true)
	wg.Wait()
	s.Log.Info("service stopped")
	return err
}

// switchTo takes the instance down or brings it back up, for Faults: down,
// it is not ready and its workers stop (a relay leaves its outbox to the
// next run; consumers pause by themselves, see Consumers); up, its workers
// start again and it is ready.
func (s *Service) switchTo(down bool, work *workers) {
	if down {
		s.Health.SetReady(false)
		work.halt(false)
		s.Log.Warn("service taken down by fault injection: connections reset, workers and heartbeats stopped")
		return
	}
	work.start()
	s.Health.SetReady(true)
	s.Log.Warn("service brought back up after fault injection")
}

// workers runs a service's background work, and stops it and starts it
// afresh when the instance is taken down and brought back up.
type workers struct {
	ctx context.Context // every run of the workers derives from it
	fns []Worker

	mu    sync.Mutex
	stop  context.CancelFunc // nil while stopped
	wg    sync.WaitGroup
	ended bool
}

// start runs every worker, unless they run already or have ended.
func (w *workers) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.stop != nil {
		return
	}
	ctx, stop := context.WithCancel(w.ctx)
	w.stop = stop
	for _, f := range w.fns {
		w.wg.Go(func() { f(ctx) })
	}
}

// halt stops the workers and waits until every one has returned; with end,
// they never start again.
func (w *workers) halt(end bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = w.ended || end
	if w.stop == nil {
		return
	}
	w.stop()
	w.stop = nil
	w.wg.Wait()
}

// announced is the address the registry is told for an instance bound at
// addr: one that other processes can dial.
func (s *Service) announced(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if s.Advertise != "" {
		return net.JoinHostPort(s.Advertise, port)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return addr
	}
	if ip := machineAddress(); ip != "" {
		return net.JoinHostPort(ip, port)
	}
	return addr
}

// machineAddress is this machine's first non-loopback unicast address,
// IPv4 first (a pod's or a container's own), or "" when it has none.
func machineAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	var v6 string
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || !ipnet.IP.IsGlobalUnicast() {
			continue
		}
		if ipnet.IP.To4() != nil {
			return ipnet.IP.String()
		}
		if v6 == "" {
			v6 = ipnet.IP.String()
		}
	}
	return v6
}
