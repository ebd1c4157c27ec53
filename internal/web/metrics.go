package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// Metrics records RED metrics (rate, errors, duration) per route of one
// service, on a registry of its own so that services sharing a process still
// expose only their own figures.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewMetrics returns metrics for the named service, with Go runtime and
// process collectors registered.
func NewMetrics(service string) *Metrics {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"service": service}
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests served, by route, method and status code.",
			ConstLabels: labels,
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Time to serve an HTTP request, by route and method.",
			ConstLabels: labels,
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight", Help: "HTTP requests being served.", ConstLabels: labels,
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Middleware records each request under the route pattern that served it, so
// that ids in paths do not explode the label space.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		route := new(string)
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey, route)))
		m.inFlight.Dec()
		if *route == "" {
			*route = "unmatched"
		}
		m.requests.WithLabelValues(*route, r.Method, strconv.Itoa(sw.Status())).Inc()
		m.duration.WithLabelValues(*route, r.Method).Observe(time.Since(start).Seconds())
	})
}

// Routed wraps a ServeMux so that the pattern it matched reaches the metrics
// middleware, however many layers copied the request in between.
func Routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if route, ok := r.Context().Value(routeKey).(*string); ok {
			*route = r.Pattern
		}
		// The request's span, if traced, is named by its method and route,
		// not its path: "POST /api/v1/orders", whether the pattern named
		// the method or not.
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() && r.Pattern != "" {
			name := r.Pattern
			if !strings.Contains(name, " ") {
				name = r.Method + " " + name
			}
			span.SetName(name)
		}
	})
}
