package console

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/telemetry"
	"github.com/microshop/microshop/internal/web"
)

// maxExport bounds one OTLP export's body; the SDK's batches are far smaller.
const maxExport = 8 << 20

// OTLPPath is where the console takes spans over OTLP/HTTP, the path every
// OTLP exporter posts to: pointing OTEL_EXPORTER_OTLP_ENDPOINT at the
// console, or the shop at a collector or Jaeger instead, changes nothing else.
const OTLPPath = "/v1/traces"

// OTLPHandler takes OTLP/HTTP trace exports, protobuf or JSON, into c. The
// path is internal: only services, with their service tokens, post to it.
func OTLPHandler(c *Collector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &collectorpb.ExportTraceServiceRequest{}
		if err := decodeExport(r, req); err != nil {
			web.Error(w, r, err)
			return
		}
		c.Add(fromOTLP(req.GetResourceSpans())...)
		body, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	})
}

func decodeExport(r *http.Request, into proto.Message) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxExport+1))
	if err != nil {
		return fail.Wrap(fail.Malformed, err, "reading the export")
	}
	if len(body) > maxExport {
		return fail.New(fail.TooLarge, "an export is at most %d bytes", maxExport)
	}
	switch mt {
	case "application/x-protobuf":
		err = proto.Unmarshal(body, into)
	case "application/json":
		err = protojson.Unmarshal(body, into)
	default:
		return fail.New(fail.Unsupported, "OTLP exports are application/x-protobuf or application/json")
	}
	if err != nil {
		return fail.Wrap(fail.Malformed, err, "decoding the export")
	}
	return nil
}

// Resolver finds an instance of a service, as the registry client does.
type Resolver interface {
	Resolve(ctx context.Context, service string) (string, error)
}

// Exporter returns an OTLP/HTTP exporter that sends a process's spans to
// the console in the gateway, wherever the registry says it runs, signed
// with the process's service token by authorize: how the spans of a service
// in its own process reach the console. Its requests are not traced.
func Exporter(ctx context.Context, gateway Resolver, authorize func(*http.Request) error) (sdktrace.SpanExporter, error) {
	client := &http.Client{Transport: viaRegistry{resolve: gateway, authorize: authorize, base: http.DefaultTransport}}
	exp, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL("http://gateway"+OTLPPath),
		otlptracehttp.WithHTTPClient(client))
	if err != nil {
		return nil, fmt.Errorf("creating the console's span exporter: %w", err)
	}
	return exp, nil
}

// viaRegistry sends each request to a live instance of the service its URL
// names, with a service token.
type viaRegistry struct {
	resolve   Resolver
	authorize func(*http.Request) error
	base      http.RoundTripper
}

func (v viaRegistry) RoundTrip(r *http.Request) (*http.Response, error) {
	addr, err := v.resolve.Resolve(r.Context(), r.URL.Hostname())
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.URL.Host, r.Host = addr, addr
	// Sending spans is not work anyone should see traced, nor could it be
	// without tracing its own export, and that one's, without end.
	telemetry.Propagator.Inject(telemetry.Untraced(r.Context()), propagation.HeaderCarrier(r.Header))
	if v.authorize != nil {
		if err := v.authorize(r); err != nil {
			return nil, err
		}
	}
	return v.base.RoundTrip(r)
}
