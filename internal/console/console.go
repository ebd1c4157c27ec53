// Package console is the shop's live console: served by the gateway, it
// draws the running shop and the real requests and events moving through it.
// It reads the telemetry a production backend would: spans (from this
// process's tracer providers, or over OTLP/HTTP from other processes),
// every instance's Prometheus metrics, the registry, and the gateway's admin
// views of faults, breakers and invariants. The browser gets it all as one
// stream of server-sent events.
package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/telemetry"
	"github.com/microshop/microshop/internal/web"
)

// How often the stream tells a browser how the shop is doing.
const (
	statsEvery      = time.Second
	invariantsEvery = 5 * time.Second
	keepAliveEvery  = 15 * time.Second
	pollTimeout     = 3 * time.Second
)

// Traffic is the built-in load generator the console starts and stops.
type Traffic interface {
	// Start runs traffic at rate arrivals a second, or changes the rate of
	// the traffic running. The admin's token who asked lets it restock.
	Start(rate float64, adminToken string) error
	// Stop ends the traffic, if any runs.
	Stop()
	// Status says whether traffic runs, at what rate, and how it went.
	Status() any
}

// Config is what a console needs.
type Config struct {
	Collector *Collector
	// Services lists the registry's services and their live instances.
	Services func(ctx context.Context) ([]discovery.Service, error)
	// Admin is the gateway's own routes: the console asks them, in process
	// and with the watching admin's credentials, for faults, breakers and
	// the audit.
	Admin http.Handler
	// Ask calls a service's admin route directly, with the watching
	// admin's token, for what the gateway has no view of (the saga style,
	// the legacy monolith's figures).
	Ask func(ctx context.Context, service, path, token string, out any) error
	// Queued asks the broker how many messages it keeps for a consumer
	// group that consumes topics: the queue's depth, read where it is kept,
	// so that it shows while the consumer is down. Nil: not shown.
	Queued   func(ctx context.Context, group string, topics []string) (int, error)
	Traffic  Traffic
	Topology Topology
	// Scrape reads one instance's metrics page; nil: over HTTP.
	Scrape func(ctx context.Context, address string) (io.ReadCloser, error)
	Log    *slog.Logger
}

// Console serves the console's API.
type Console struct {
	cfg Config
}

// New returns a console.
func New(cfg Config) *Console {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Scrape == nil {
		cfg.Scrape = scrapeHTTP
	}
	return &Console{cfg: cfg}
}

// Mount puts the console's page, assets and API on mux. Everything but the
// page and its assets is for admins.
func (c *Console) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", servePage)
	mux.Handle("GET /console/", serveAssets())
	mux.HandleFunc("GET /api/v1/console/topology", c.admin(c.topology))
	mux.HandleFunc("GET /api/v1/console/stream", c.admin(c.stream))
	mux.HandleFunc("GET /api/v1/console/traces", c.admin(c.traces))
	mux.HandleFunc("GET /api/v1/console/traces/{id}", c.admin(c.trace))
	mux.HandleFunc("GET /api/v1/console/traffic", c.admin(c.trafficStatus))
	mux.HandleFunc("PUT /api/v1/console/traffic", c.admin(c.startTraffic))
	mux.HandleFunc("DELETE /api/v1/console/traffic", c.admin(c.stopTraffic))
	mux.HandleFunc("GET /api/v1/console/legacy", c.admin(c.legacy))
}

func (c *Console) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Admin(r.Context()); err != nil {
			web.Error(w, r, err)
			return
		}
		h(w, r)
	}
}

func (c *Console) topology(w http.ResponseWriter, _ *http.Request) {
	web.JSON(w, http.StatusOK, c.cfg.Topology)
}

func (c *Console) traces(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			web.Error(w, r, fail.New(fail.Invalid, "limit must be a whole number from 1 to 200"))
			return
		}
		limit = n
	}
	web.JSON(w, http.StatusOK, map[string]any{"items": c.cfg.Collector.Traces(r.URL.Query().Get("service"), limit)})
}

func (c *Console) trace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	spans, ok := c.cfg.Collector.Trace(id)
	if !ok {
		web.Error(w, r, fail.New(fail.NotFound, "no trace %q is kept (the console keeps the latest %d)", id, maxTraces))
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"trace_id": id, "spans": spans})
}

// maxRate bounds what the console's traffic button may ask for.
const maxRate = 500

func (c *Console) trafficStatus(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Traffic == nil {
		web.Error(w, r, fail.New(fail.Unavailable, "this gateway has no load generator"))
		return
	}
	web.JSON(w, http.StatusOK, c.cfg.Traffic.Status())
}

func (c *Console) startTraffic(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Rate float64 `json:"rate"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	if in.Rate < 1 || in.Rate > maxRate {
		web.Error(w, r, fail.New(fail.Invalid, "rate must be from 1 to %d arrivals a second", maxRate))
		return
	}
	if c.cfg.Traffic == nil {
		web.Error(w, r, fail.New(fail.Unavailable, "this gateway has no load generator"))
		return
	}
	token, _, _ := auth.BearerToken(r)
	if err := c.cfg.Traffic.Start(in.Rate, token); err != nil {
		web.Error(w, r, err)
		return
	}
	web.LoggerFrom(r.Context()).InfoContext(r.Context(), "console traffic started", slog.Float64("rate", in.Rate))
	web.JSON(w, http.StatusOK, c.cfg.Traffic.Status())
}

func (c *Console) stopTraffic(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Traffic == nil {
		web.Error(w, r, fail.New(fail.Unavailable, "this gateway has no load generator"))
		return
	}
	c.cfg.Traffic.Stop()
	web.LoggerFrom(r.Context()).InfoContext(r.Context(), "console traffic stopped")
	web.JSON(w, http.StatusOK, c.cfg.Traffic.Status())
}

// stream sends the watching browser every span as it ends, the shop's
// state every second and the invariants every five, until it goes away.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// A stream outlives the server's write timeout by design.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		c.cfg.Log.Warn("console stream cannot lift the write deadline; browsers will reconnect", slog.Any("err", err))
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	spans, unsubscribe := c.cfg.Collector.Subscribe()
	defer unsubscribe()

	out := &sse{w: w, rc: rc}
	ctx := r.Context()
	stats := make(chan Stats, 1)
	invariants := make(chan json.RawMessage, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { poll(ctx, r, statsEvery, stats, c.stats) })
	wg.Go(func() { poll(ctx, r, invariantsEvery, invariants, c.invariants) })

	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	// The stream ends with the credential that opened it; the browser
	// signs in again.
	var expired <-chan time.Time
	if p, ok := auth.PrincipalFrom(r.Context()); ok && !p.Expires.IsZero() {
		t := time.NewTimer(time.Until(p.Expires))
		defer t.Stop()
		expired = t.C
	}
	_ = out.comment("microshop console") // the browser knows at once it is connected
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-expired:
			_ = out.send("expired", map[string]string{"detail": "the token that opened this stream has expired"})
			return
		case s := <-spans:
			err = out.send("span", s)
		case s := <-stats:
			err = out.send("stats", s)
		case v := <-invariants:
			err = out.send("invariants", v)
		case <-keepAlive.C:
			err = out.comment("keep-alive")
		}
		if err != nil {
			return // the browser went away
		}
	}
}

// poll runs get every interval, and at once, and hands each result on; a
// result the stream has not sent yet is replaced by the newer one.
func poll[T any](ctx context.Context, r *http.Request, every time.Duration, out chan T, get func(context.Context, *http.Request) (T, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(telemetry.Untraced(ctx), pollTimeout)
		v, err := get(pctx, r)
		cancel()
		if err == nil {
			select {
			case <-out:
			default:
			}
			out <- v
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sse writes server-sent events, flushing each.
type sse struct {
	w  io.Writer
	rc *http.ResponseController
}

func (s *sse) send(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, data); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) comment(text string) error {
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	return s.rc.Flush()
}

// ask calls one of the gateway's admin routes in process, as the admin
// watching (their principal and token come from r), and decodes its answer.
func (c *Console) ask(ctx context.Context, r *http.Request, method, path string, out any) error {
	req := r.Clone(ctx)
	req.Method = method
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, "", ""
	req.RequestURI = ""
	req.Body, req.ContentLength = http.NoBody, 0
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	c.cfg.Admin.ServeHTTP(rec, req)
	if rec.code != http.StatusOK {
		return fmt.Errorf("%s %s answered %d: %s", method, path, rec.code, rec.body.String())
	}
	return json.Unmarshal(rec.body.Bytes(), out)
}

// recorder keeps an in-process answer.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func (c *Console) invariants(ctx context.Context, r *http.Request) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.ask(ctx, r, http.MethodGet, "/api/v1/admin/audit", &raw)
	return raw, err
}
