// Package facade is the strangler fig in front of the legacy monolith: the
// gateway sends each of the monolith's old routes either to the monolith or
// to the new service that owns it now, and moves a route at runtime.
//
// A move is copy, pause, copy the rest, hand over, switch:
//
//  1. the monolith's data for the route is copied into the new service
//     through the monolith's export API and the service's import API, while
//     traffic still flows to the monolith;
//  2. the route's gate closes: new requests wait at the facade, and the
//     requests already in flight to the monolith finish;
//  3. what changed since the first copy is copied (the monolith numbers
//     every write, so the second pass reads only what is newer);
//  4. the monolith records that it has handed the data over, and refuses
//     writes to it from then on; one more copy takes anything that still
//     reached it before;
//  5. the route switches to the service and the gate opens: the waiting
//     requests go to the service, which owns the data from then on.
//
// No request is dropped: a request in flight finishes where it started, and
// one that arrives during the pause waits a moment. A move is one way: the
// monolith no longer has what the service has written since.
package facade

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// Legacy is the monolith's name in the registry, and a route's target while
// the monolith serves it.
const Legacy = "legacy"

// Route is one of the monolith's old routes and the service that takes it
// over.
type Route struct {
	Path    string // the old path: "/profile" serves itself and /profile/...
	Domain  string // the monolith's name for the route's data
	Service string // the new service that owns the data once the route moves
}

// Routes are the monolith's routes, in the order a migration usually moves
// them: the profile first (read mostly, one row per customer), then the
// orders.
var Routes = []Route{
	{Path: "/profile", Domain: "profiles", Service: "users"},
	{Path: "/orders", Domain: "orders", Service: "orders"},
}

// Caller performs calls to other services: the gateway's upstream client,
// which presents the gateway's service token on internal paths and the
// caller's token on public ones.
type Caller interface {
	Do(ctx context.Context, c upstream.Call) error
}

// Facade routes the monolith's paths and moves them.
type Facade struct {
	legacy http.Handler // forwards a request to the monolith as it came
	call   Caller       // the customers' calls, once a route has moved
	admin  Caller       // the facade's own: handovers, copies
	log    *slog.Logger
	routes []*route

	requests *prometheus.CounterVec
	moves    *prometheus.CounterVec

	syncMu   sync.Mutex
	synced   atomic.Bool
	lastSync time.Time
}

// route is one route's live state.
type route struct {
	Route
	// gate is held shared by every request for the route, for as long as
	// it is served, and exclusively by a move while it copies the rest and
	// switches: sync.RWMutex lets no new reader in once a writer waits,
	// which is exactly "new requests wait, requests in flight finish".
	gate   sync.RWMutex
	target atomic.Pointer[string]
	moveMu sync.Mutex // one move of a route at a time

	mu       sync.Mutex // guards the move's record below
	moving   bool
	movedAt  time.Time
	copied   int
	lastErr  string
	toLegacy atomic.Int64
	toNew    atomic.Int64
}

func (r *route) currentTarget() string { return *r.target.Load() }

// Options configure a facade.
type Options struct {
	// Legacy forwards a request to the monolith unchanged (the gateway's
	// proxy handler for the legacy service).
	Legacy http.Handler
	// Call serves the customers of a moved route from its new service.
	Call Caller
	// Admin reads the monolith's handovers and copies its data: through
	// breakers of its own, so that the facade asking a monolith that is
	// still starting (or gone) never opens the breaker the customers'
	// requests pass. Call when nil.
	Admin Caller
	// Start is where each route starts, by path: "legacy" (the default)
	// or the route's service, which moves the route once both answer.
	Start map[string]string
	Log   *slog.Logger
}

// New returns a facade with every route where opt.Start puts it; a route
// started on its service is moved by Run, since a move needs the monolith
// and the service up.
func New(opt Options) (*Facade, error) {
	f := &Facade{
		legacy: opt.Legacy,
		call:   opt.Call,
		admin:  opt.Admin,
		log:    opt.Log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "microshop_facade_requests_total",
			Help: "Requests the strangler-fig facade sent, by old route and destination (legacy or the new service).",
		}, []string{"route", "target"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "microshop_facade_moves_total",
			Help: "Moves of a legacy route to its new service, by route and outcome (moved or failed).",
		}, []string{"route", "outcome"}),
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.admin == nil {
		f.admin = f.call
	}
	for path, target := range opt.Start {
		if _, err := f.check(path, target); err != nil {
			return nil, fmt.Errorf("facade start: %w", err)
		}
	}
	for _, rt := range Routes {
		r := &route{Route: rt}
		legacy := Legacy
		r.target.Store(&legacy)
		f.routes = append(f.routes, r)
	}
	return f, nil
}

// Collectors are the facade's metrics, for the gateway's registry.
func (f *Facade) Collectors() []prometheus.Collector {
	return []prometheus.Collector{f.requests, f.moves}
}

// check finds the route path names and says whether target is one of its
// two destinations.
func (f *Facade) check(path, target string) (Route, error) {
	i := slices.IndexFunc(Routes, func(r Route) bool { return r.Path == path })
	if i < 0 {
		paths := make([]string, len(Routes))
		for j, r := range Routes {
			paths[j] = r.Path
		}
		return Route{}, fail.New(fail.Invalid, "no legacy route %q (routes are %s)", path, strings.Join(paths, ", "))
	}
	rt := Routes[i]
	if target != Legacy && target != rt.Service {
		return Route{}, fail.New(fail.Invalid, "route %s goes to %s or %s, not %q", path, Legacy, rt.Service, target)
	}
	return rt, nil
}

func (f *Facade) route(path string) *route {
	for _, r := range f.routes {
		if r.Path == path {
			return r
		}
	}
	return nil
}

// match finds the route that serves an incoming path: the route itself or
// anything under it.
func (f *Facade) match(path string) *route {
	for _, r := range f.routes {
		if path == r.Path || strings.HasPrefix(path, r.Path+"/") {
			return r
		}
	}
	return nil
}

// Patterns are the ServeMux patterns the facade answers.
func Patterns() []string {
	var out []string
	for _, r := range Routes {
		out = append(out, r.Path, r.Path+"/")
	}
	return out
}

// ServeHTTP serves one of the monolith's old routes from wherever it lives
// now. It holds the route's gate for as long as the request is served, so a
// move waits for it to finish before it copies the rest.
func (f *Facade) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := f.match(req.URL.Path)
	if r == nil {
		http.NotFound(w, req)
		return
	}
	f.syncOnce(req.Context())
	r.gate.RLock()
	defer r.gate.RUnlock()
	target := r.currentTarget()
	f.requests.WithLabelValues(r.Path, target).Inc()
	if target == Legacy {
		r.toLegacy.Add(1)
		if f.serveLegacy(w, req) {
			return
		}
		// The monolith has handed the route over through another gateway,
		// and refused the request before reading it: learn the move, and
		// serve the request where the route is now.
		if err := f.Sync(req.Context()); err != nil || r.currentTarget() == Legacy {
			web.Error(w, req, fail.New(fail.Unavailable, "route %s is moving; try again", r.Path))
			return
		}
		f.requests.WithLabelValues(r.Path, r.Service).Inc()
	}
	r.toNew.Add(1)
	switch r.Domain {
	case "profiles":
		f.serveProfile(w, req)
	case "orders":
		f.serveOrders(w, req)
	}
}

// serveLegacy forwards req to the monolith, and says whether it answered.
// An answer of 410 Gone, which the monolith gives for a domain it has
// handed over (before it reads the body, and writing nothing), is held back
// so the request can be served by the route's new service instead; the body
// is kept for that.
func (f *Facade) serveLegacy(w http.ResponseWriter, req *http.Request) bool {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, req.Body, web.MaxBodyBytes))
		if err != nil {
			web.Error(w, req, fail.New(fail.TooLarge, "body larger than %d bytes", web.MaxBodyBytes))
			return true
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	gw := &goneWriter{w: w}
	f.legacy.ServeHTTP(gw, req)
	if !gw.gone {
		return true
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return false
}

// goneWriter passes an answer through, unless it is 410 Gone: then it
// writes nothing, and remembers. The answer's headers wait in a map of
// their own until its status is known.
type goneWriter struct {
	w           http.ResponseWriter
	h           http.Header
	gone, wrote bool
}

func (g *goneWriter) Header() http.Header {
	if g.wrote && !g.gone {
		return g.w.Header()
	}
	if g.h == nil {
		g.h = http.Header{}
	}
	return g.h
}

func (g *goneWriter) WriteHeader(code int) {
	if g.wrote {
		return
	}
	g.wrote = true
	if code == http.StatusGone {
		g.gone = true
		return
	}
	dst := g.w.Header()
	for k, vv := range g.h {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
	g.w.WriteHeader(code)
}

func (g *goneWriter) Write(b []byte) (int, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	if g.gone {
		return len(b), nil
	}
	return g.w.Write(b)
}

// FlushError lets the proxy flush a streamed answer; a held-back one is
// never flushed.
func (g *goneWriter) FlushError() error {
	if g.gone || !g.wrote {
		return nil
	}
	return http.NewResponseController(g.w).Flush()
}

// Move moves the route at path to target and answers the route's state
// once it is there. Moving a route where it already is changes nothing.
func (f *Facade) Move(ctx context.Context, path, target string) (RouteState, error) {
	if _, err := f.check(path, target); err != nil {
		return RouteState{}, err
	}
	r := f.route(path)
	if !r.moveMu.TryLock() {
		return RouteState{}, fail.New(fail.Conflict, "route %s is moving already", path)
	}
	defer r.moveMu.Unlock()
	// The monolith may have handed the route over through another gateway.
	if err := f.Sync(ctx); err != nil {
		return RouteState{}, err
	}
	switch current := r.currentTarget(); {
	case current == target:
		return f.state(r), nil
	case target == Legacy:
		return RouteState{}, fail.New(fail.Conflict, "route %s moved to %s, which owns its data now: a route does not move back to the monolith", path, r.Service)
	}
	r.mu.Lock()
	r.moving, r.lastErr = true, ""
	r.mu.Unlock()
	began := time.Now()
	copied, paused, err := f.move(ctx, r)
	r.mu.Lock()
	r.moving = false
	if err != nil {
		r.lastErr = fail.MessageOf(err)
	} else { // lastErr may tell of a failed copy after the handover
		r.movedAt, r.copied = time.Now().UTC(), copied
	}
	r.mu.Unlock()
	if err != nil {
		f.moves.WithLabelValues(path, "failed").Inc()
		f.log.WarnContext(ctx, "moving a legacy route failed; it stays on the monolith", slog.String("route", path), slog.Any("err", err))
		return RouteState{}, err
	}
	f.moves.WithLabelValues(path, "moved").Inc()
	f.log.InfoContext(ctx, "legacy route moved", slog.String("route", path), slog.String("service", r.Service), slog.Int("copied", copied),
		slog.Duration("took", time.Since(began)), slog.Duration("paused", paused))
	return f.state(r), nil
}

// move runs the steps of the package comment for r, and says how many
// records it copied and how long the route was paused: how long a request
// that came meanwhile waited, at most.
func (f *Facade) move(ctx context.Context, r *route) (copied int, paused time.Duration, err error) {
	// 1. Copy while the monolith keeps serving.
	first, cursor, err := f.copyData(ctx, r, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("copying %s to %s: %w", r.Domain, r.Service, err)
	}
	// 2. Pause the route: wait for the requests in flight to end.
	pausedAt := time.Now()
	r.gate.Lock()
	defer func() {
		r.gate.Unlock()
		paused = time.Since(pausedAt)
	}()
	// 3. Copy what they wrote since.
	rest, cursor, err := f.copyData(ctx, r, cursor)
	if err != nil {
		return 0, 0, fmt.Errorf("copying the last changes of %s to %s: %w", r.Domain, r.Service, err)
	}
	// 4. The monolith hands the data over. If this fails, the route stays
	// on the monolith; should the monolith have recorded it all the same
	// (an answer lost), it refuses the route's requests (and the facade
	// follows its 410 to the service) until a sync sees the handover.
	if err := f.handOver(ctx, r); err != nil {
		return 0, 0, fmt.Errorf("handing %s over to %s: %w", r.Domain, r.Service, err)
	}
	// Once handed over, the monolith refuses the domain's writes, so a copy
	// now is final even for a write that reached it some other way (another
	// gateway that has not seen the move yet). Normally it finds nothing.
	// The handover is the move's point of no return: should this copy
	// fail, the route switches all the same (this gateway's own writes were
	// copied under the gate), and the failure is logged and shown.
	last, _, err := f.copyData(ctx, r, cursor)
	if err != nil {
		f.log.ErrorContext(ctx, "the copy after a handover failed: writes that reached the monolith through another gateway may be missing",
			slog.String("route", r.Path), slog.Any("err", err))
		r.mu.Lock()
		r.lastErr = "the copy after the handover failed: " + fail.MessageOf(err)
		r.mu.Unlock()
	}
	// 5. Switch.
	service := r.Service
	r.target.Store(&service)
	return first + rest + last, 0, nil
}

// handover is the monolith's record that it gave a domain to a service.
type handover struct {
	Domain   string    `json:"domain"`
	Service  string    `json:"service"`
	HandedAt time.Time `json:"handed_at"`
}

func (f *Facade) handOver(ctx context.Context, r *route) error {
	return f.admin.Do(ctx, upstream.Call{Service: Legacy, Method: http.MethodPost, Path: "/internal/v1/handovers",
		Body: map[string]string{"domain": r.Domain, "service": r.Service}, Idempotent: true})
}

// Sync reads from the monolith which domains it has handed over, and
// switches their routes. The monolith's record is the truth a gateway
// starts from, and the way several gateways agree.
func (f *Facade) Sync(ctx context.Context) error {
	var out struct {
		Handovers []handover `json:"handovers"`
	}
	if err := f.admin.Do(ctx, upstream.Call{Service: Legacy, Method: http.MethodGet, Path: "/internal/v1/handovers", Out: &out}); err != nil {
		return fail.Wrap(fail.Unavailable, err, "reading the monolith's handovers: %s", fail.MessageOf(err))
	}
	for _, h := range out.Handovers {
		for _, r := range f.routes {
			if r.Domain != h.Domain || r.Service != h.Service || r.currentTarget() == r.Service {
				continue
			}
			service := r.Service
			r.target.Store(&service)
			r.mu.Lock()
			if r.movedAt.IsZero() {
				r.movedAt = h.HandedAt
			}
			r.mu.Unlock()
			f.log.InfoContext(ctx, "legacy route found handed over", slog.String("route", r.Path), slog.String("service", r.Service))
		}
	}
	f.synced.Store(true)
	return nil
}

// syncOnce makes sure a gateway that has just started knows the monolith's
// handovers before it routes: it tries at most once every few seconds, and
// routes as configured meanwhile.
func (f *Facade) syncOnce(ctx context.Context) {
	if f.synced.Load() {
		return
	}
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	if f.synced.Load() || time.Since(f.lastSync) < syncRetry {
		return
	}
	f.lastSync = time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := f.Sync(ctx); err != nil {
		f.log.WarnContext(ctx, "the facade could not read the monolith's handovers yet", slog.Any("err", err))
	}
}

// How often the facade re-reads the handovers, and retries a first read or
// a configured move that failed.
const (
	syncEvery = 10 * time.Second
	syncRetry = 2 * time.Second
)

// Run keeps the route table in step with the monolith's handovers (another
// gateway may move a route) and makes the moves the configuration asks for
// at start, retrying until the monolith and the service answer.
func (f *Facade) Run(ctx context.Context, start map[string]string) {
	pending := map[string]string{}
	for path, target := range start {
		if target != Legacy {
			pending[path] = target
		}
	}
	t := time.NewTimer(0)
	defer t.Stop()
	firstTry := 250 * time.Millisecond // until the first read succeeds: the monolith may still be starting
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := f.Sync(ctx)
		for _, rt := range Routes { // in order: the profile before the orders
			target, ok := pending[rt.Path]
			if !ok || err != nil {
				continue
			}
			if _, merr := f.Move(ctx, rt.Path, target); merr != nil {
				err = merr
				continue
			}
			delete(pending, rt.Path)
		}
		// A configured move is retried soon; otherwise a monolith that
		// does not answer (or does not run) is asked again at the usual
		// pace, and a request's own first read covers the meantime.
		next := syncEvery
		switch {
		case !f.synced.Load():
			next, firstTry = firstTry, min(2*firstTry, syncEvery)
		case err != nil && len(pending) > 0:
			next = syncRetry
		}
		t.Reset(next)
	}
}

// RouteState is a route as the admin API shows it.
type RouteState struct {
	Route    string           `json:"route"`
	Target   string           `json:"target"`
	Service  string           `json:"service"`
	Moving   bool             `json:"moving"`
	Requests map[string]int64 `json:"requests"`
	MovedAt  *time.Time       `json:"moved_at"`
	Copied   int              `json:"copied"`
	Error    string           `json:"error"`
}

func (f *Facade) state(r *route) RouteState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RouteState{
		Route: r.Path, Target: r.currentTarget(), Service: r.Service, Moving: r.moving,
		Requests: map[string]int64{Legacy: r.toLegacy.Load(), r.Service: r.toNew.Load()},
		Copied:   r.copied, Error: r.lastErr,
	}
	if !r.movedAt.IsZero() {
		at := r.movedAt
		st.MovedAt = &at
	}
	return st
}

// States lists every route's state.
func (f *Facade) States() []RouteState {
	out := make([]RouteState, 0, len(f.routes))
	for _, r := range f.routes {
		out = append(out, f.state(r))
	}
	return out
}
