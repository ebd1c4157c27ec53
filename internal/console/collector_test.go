package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// provider returns a tracer provider for service whose spans go to c
// straight from the SDK, as in one process.
func provider(c *Collector, service string) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		sdktrace.WithSpanProcessor(c.Processor()))
}

func TestSpansFromTheSDKKeepTheirTraceAndNameTheirPeer(t *testing.T) {
	c := NewCollector()
	gw, orders := provider(c, "gateway"), provider(c, "orders")

	ctx, client := gw.Tracer("t").Start(context.Background(), "POST", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", 4000)))
	_, server := orders.Tracer("t").Start(ctx, "POST /api/v1/orders", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int("http.response.status_code", 201)))
	server.End()
	client.End()
	_, pub := orders.Tracer("t").Start(ctx, "publish orders.order.created", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", "orders.order.created")))
	pub.SetStatus(codes.Error, "broker away")
	pub.End()

	id := client.SpanContext().TraceID().String()
	spans, ok := c.Trace(id)
	if !ok || len(spans) != 3 {
		t.Fatalf("trace %s = %d spans (kept %v), want 3", id, len(spans), ok)
	}
	byKind := map[string]Span{}
	for _, s := range spans {
		byKind[s.Kind] = s
	}
	if got := byKind["client"]; got.Service != "gateway" || got.Peer != "orders" {
		t.Errorf("client span = %+v, want gateway calling orders (named by the server span it caused)", got)
	}
	if got := byKind["server"]; got.HTTPStatus != 201 || got.Status != "ok" || got.ParentID != client.SpanContext().SpanID().String() {
		t.Errorf("server span = %+v", got)
	}
	if got := byKind["producer"]; got.Peer != Broker || got.Topic != "orders.order.created" || got.Status != "error" {
		t.Errorf("producer span = %+v", got)
	}
	if _, ok := c.Trace("no-such-trace"); ok {
		t.Error("an unknown trace was found")
	}
}

func TestAClientSpanBeforeItsServerSpanIsNamedByAddress(t *testing.T) {
	c := NewCollector()
	c.SetAddresses(map[string]string{"127.0.0.1:4001": "catalog"})
	_, client := provider(c, "orders").Tracer("t").Start(context.Background(), "GET", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", 4001)))
	client.End()
	spans, _ := c.Trace(client.SpanContext().TraceID().String())
	if len(spans) != 1 || spans[0].Peer != "catalog" {
		t.Fatalf("spans = %+v, want one client span to catalog", spans)
	}
}

func TestLiveMeasuresTheLastWindowOfServerSpans(t *testing.T) {
	c := NewCollector()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	add := func(ago time.Duration, ms float64, status string) {
		c.Add(Span{TraceID: fmt.Sprint(ago, ms), SpanID: "s", Service: "orders", Kind: "server", Status: status,
			Start: now.Add(-ago), DurationMS: ms})
	}
	add(time.Minute, 999, "error") // outside the window
	for i := range 9 {
		add(time.Second, float64(i+1), "ok")
	}
	add(2*time.Second, 100, "error")
	got := c.Live()["orders"]
	if got.Rate != 1 || got.Errors != 0.1 || got.P50 != 5 || got.P99 != 100 {
		t.Errorf("live = %+v, want rate 1/s, errors 0.1, p50 5 ms, p99 100 ms", got)
	}
	now = now.Add(time.Minute)
	if got := c.Live()["orders"]; got.Rate != 0 {
		t.Errorf("a minute later, live = %+v, want nothing", got)
	}
}

func TestTracesAreListedNewestFirstAndTheOldestForgotten(t *testing.T) {
	c := NewCollector()
	start := time.Now()
	for i := range maxTraces + 5 {
		c.Add(Span{TraceID: fmt.Sprintf("t%05d", i), SpanID: "root", Service: "gateway", Name: "GET /api/v1/products", Kind: "server", Status: "ok", Start: start.Add(time.Duration(i) * time.Millisecond), DurationMS: 2})
	}
	c.Add(Span{TraceID: fmt.Sprintf("t%05d", maxTraces+4), SpanID: "child", ParentID: "root", Service: "catalog", Name: "GET /api/v1/products", Kind: "server", Status: "error", Start: start, DurationMS: 1})
	if _, ok := c.Trace("t00000"); ok {
		t.Error("the oldest trace is still kept")
	}
	list := c.Traces("", 3)
	if len(list) != 3 || list[0].TraceID != fmt.Sprintf("t%05d", maxTraces+4) {
		t.Fatalf("latest = %+v", list)
	}
	if got := list[0]; got.Spans != 2 || !got.Error || got.Root != "GET /api/v1/products" || len(got.Services) != 2 {
		t.Errorf("summary = %+v", got)
	}
	if got := c.Traces("catalog", 10); len(got) != 1 {
		t.Errorf("catalog's traces = %+v, want the one it took part in", got)
	}
}

func TestASlowSubscriberMissesSpansWithoutSlowingTheShop(t *testing.T) {
	c := NewCollector()
	spans, stop := c.Subscribe()
	defer stop()
	for i := range subscriberBuf + 10 {
		c.Add(Span{TraceID: fmt.Sprint(i), SpanID: "s", Service: "catalog", Kind: "server", Status: "ok", Start: time.Now()})
	}
	if len(spans) != subscriberBuf {
		t.Errorf("subscriber holds %d spans, want its buffer's %d", len(spans), subscriberBuf)
	}
	stop()
	c.Add(Span{TraceID: "after", SpanID: "s", Service: "catalog", Kind: "server", Status: "ok", Start: time.Now()})
	if len(spans) != subscriberBuf {
		t.Error("an ended subscription still receives spans")
	}
}

// The real OTLP/HTTP exporter, as a service in its own process uses it,
// delivers its spans to the console's receiver.
func TestOTLPExportsReachTheCollector(t *testing.T) {
	c := NewCollector()
	srv := httptest.NewServer(OTLPHandler(c))
	defer srv.Close()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(srv.URL+OTLPPath))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "payments"))))
	_, span := tp.Tracer("t").Start(context.Background(), "payments orders.order.created", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", "orders.order.created")))
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, ok := c.Trace(span.SpanContext().TraceID().String())
	if !ok || len(spans) != 1 {
		t.Fatalf("collector has %v", spans)
	}
	if got := spans[0]; got.Service != "payments" || got.Kind != "consumer" || got.Peer != Broker || got.Topic != "orders.order.created" {
		t.Errorf("span = %+v", got)
	}
}

func TestOTLPRefusesWhatIsNotAnExport(t *testing.T) {
	c := NewCollector()
	for _, tt := range []struct {
		contentType, body string
		want              int
	}{
		{"text/plain", "hello", http.StatusUnsupportedMediaType},
		{"application/x-protobuf", "\xff\xff\xff", http.StatusBadRequest},
		{"application/json", `{"resourceSpans": 7}`, http.StatusBadRequest},
	} {
		r := httptest.NewRequest(http.MethodPost, OTLPPath, strings.NewReader(tt.body))
		r.Header.Set("Content-Type", tt.contentType)
		w := httptest.NewRecorder()
		OTLPHandler(c).ServeHTTP(w, r)
		if w.Code != tt.want || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %q: %d %s, want %d problem", tt.contentType, tt.body, w.Code, w.Header().Get("Content-Type"), tt.want)
		}
	}
	if got := c.Traces("", 10); len(got) != 0 {
		t.Errorf("refused exports added %v", got)
	}
}
