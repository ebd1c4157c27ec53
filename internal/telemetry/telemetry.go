// Package telemetry traces every HTTP hop with OpenTelemetry: each service
// has a tracer provider of its own, spans are carried across calls in W3C
// trace context (traceparent), every answer says which trace it belongs to,
// and request logs carry the trace and span ids. Spans are exported over
// OTLP/HTTP when an endpoint is configured; without one they are still
// made and propagated, so traces stay whole end to end.
package telemetry

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/web"
)

// Propagator carries trace context and baggage in W3C headers.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// NewProvider returns the tracer provider of one service. With an OTLP
// endpoint (e.g. http://127.0.0.1:4318) its spans are exported there in
// batches; Shutdown flushes them.
func NewProvider(ctx context.Context, service, endpoint string) (*sdktrace.TracerProvider, error) {
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		// Every trace is kept unless its caller said not to (a traceparent
		// with the sampled flag off): that is how the console's own polling
		// stays out of the traffic it draws.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if endpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"))
		if err != nil {
			return nil, fmt.Errorf("creating the OTLP exporter of %s: %w", service, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// Middleware starts a server span for every request (continuing the
// caller's trace), answers with the trace context in traceparent, and gives
// the request's logger the trace and span ids.
func Middleware(service string, tp trace.TracerProvider) web.Middleware {
	return func(next http.Handler) http.Handler {
		inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			if !trace.SpanContextFromContext(ctx).IsValid() { // an ops path: answered in a trace no one records
				ctx = Untraced(ctx)
			}
			Propagator.Inject(ctx, propagation.HeaderCarrier(w.Header()))
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				log := web.LoggerFrom(ctx).With(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
				ctx = web.WithLogger(ctx, log)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
		return otelhttp.NewHandler(inner, service,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(Propagator),
			otelhttp.WithFilter(func(r *http.Request) bool { return !OpsPath(r.URL.Path) }),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method })) // named by route once routed
	}
}

// OpsPath reports whether p is one of the endpoints that probes and
// scrapers call every few seconds (/metrics, /healthz, /ready). They are not
// traced: a trace is the story of work done for a client.
func OpsPath(p string) bool {
	return p == "/metrics" || p == "/healthz" || p == "/ready"
}

// Untraced returns ctx in a new trace that is not sampled: no span is
// recorded under it, here or in any service it calls, since the sampled flag
// travels in traceparent. Background work that is not a client's (the
// console polling the shop for its dashboard) runs in one.
func Untraced(ctx context.Context) context.Context {
	var ids [24]byte
	_, _ = rand.Read(ids[:])
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID(ids[:16]),
		SpanID:  trace.SpanID(ids[16:]),
	})
	return trace.ContextWithSpanContext(ctx, sc)
}

// Transport wraps base so that every outgoing request is a client span
// whose context travels in the request's headers.
func Transport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(Propagator))
}

// TraceParent returns the W3C traceparent of the span in ctx, or "", for a
// message that carries its trace across the broker.
func TraceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	Propagator.Inject(ctx, carrier)
	return carrier["traceparent"]
}
