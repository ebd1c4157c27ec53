package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Log keys of the trace context, the same that request logs carry.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// LogHandler wraps h so that every record logged with a context that
// carries a span (InfoContext, WarnContext, ...) says which, with trace_id
// and span_id: background work (an event consumer, the saga runner, the
// outbox relay) then logs in the trace it works for, as requests do. A
// logger that was given trace_id already (as the request logger is, with
// With) is left as it is, and so is a record that has one, so nothing is
// said twice. Wrapping a handler twice wraps it once.
func LogHandler(h slog.Handler) slog.Handler {
	if th, ok := h.(traceHandler); ok {
		return th
	}
	return traceHandler{inner: h}
}

// traceHandler is LogHandler's handler. traced is set once the logger was
// given trace_id with With.
type traceHandler struct {
	inner  slog.Handler
	traced bool
}

func (h traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if h.traced || !sc.IsValid() || hasAttr(r, TraceIDKey) {
		return h.inner.Handle(ctx, r)
	}
	r = r.Clone()
	r.AddAttrs(slog.String(TraceIDKey, sc.TraceID().String()), slog.String(SpanIDKey, sc.SpanID().String()))
	return h.inner.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	traced := h.traced
	for _, a := range attrs {
		traced = traced || a.Key == TraceIDKey
	}
	return traceHandler{inner: h.inner.WithAttrs(attrs), traced: traced}
}

// WithGroup keeps the wrapping; the trace ids of a record logged in a
// group then sit in that group.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{inner: h.inner.WithGroup(name), traced: h.traced}
}

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

// ContextOf returns ctx in the trace that traceparent names (a W3C
// traceparent, as an event carries it), with the span it names as the
// remote parent of the spans started in it and the span its logs name.
// An empty or malformed traceparent leaves ctx as it is.
func ContextOf(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
