package console

import (
	"encoding/hex"
	"net"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span is one finished span as the console draws it: which service did
// what, for whom (peer), on which topic, how it ended and how long it took.
type Span struct {
	TraceID    string    `json:"trace_id"`
	SpanID     string    `json:"span_id"`
	ParentID   string    `json:"parent_id,omitempty"`
	Service    string    `json:"service"`
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`           // server, client, producer, consumer or internal
	Peer       string    `json:"peer,omitempty"` // a client span's callee; "broker" for messaging spans
	Topic      string    `json:"topic,omitempty"`
	Status     string    `json:"status"` // ok or error
	HTTPStatus int       `json:"http_status,omitempty"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`

	address string // a client span's server.address:server.port, resolved to Peer
}

// Broker is the name the console gives the message broker, the peer of
// every producer and consumer span.
const Broker = "broker"

// spanFields are the parts of a span both sources (the SDK in this process
// and OTLP from others) give, from which a Span is made one way.
type spanFields struct {
	traceID, spanID, parentID []byte
	service, name             string
	kind                      string
	start, end                time.Time
	errored                   bool
	attr                      func(key string) (string, int64, bool)
}

func (f spanFields) span() Span {
	s := Span{
		TraceID: hex.EncodeToString(f.traceID), SpanID: hex.EncodeToString(f.spanID),
		Service: f.service, Name: f.name, Kind: f.kind, Status: "ok",
		Start: f.start, DurationMS: float64(f.end.Sub(f.start).Microseconds()) / 1000,
	}
	if len(f.parentID) > 0 && !allZero(f.parentID) {
		s.ParentID = hex.EncodeToString(f.parentID)
	}
	if _, code, ok := f.attr("http.response.status_code"); ok {
		s.HTTPStatus = int(code)
	}
	if topic, _, ok := f.attr("messaging.destination.name"); ok && topic != "" {
		s.Topic = topic
	}
	switch s.Kind {
	case "producer", "consumer":
		s.Peer = Broker
	case "client":
		host, _, _ := f.attr("server.address")
		_, port, hasPort := f.attr("server.port")
		if host != "" && hasPort {
			s.address = net.JoinHostPort(host, strconv.FormatInt(port, 10))
		}
	}
	// A server answering 5xx failed; a 4xx is the client's mistake, and
	// otelhttp marks only the former as an error on server spans.
	if f.errored || s.HTTPStatus >= 500 {
		s.Status = "error"
	}
	return s
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// fromSDK makes a Span of a span finished in this process.
func fromSDK(s sdktrace.ReadOnlySpan) Span {
	sc, parent := s.SpanContext(), s.Parent()
	tid, sid, pid := sc.TraceID(), sc.SpanID(), parent.SpanID()
	service := ""
	for _, kv := range s.Resource().Attributes() {
		if kv.Key == "service.name" {
			service = kv.Value.AsString()
		}
	}
	attrs := s.Attributes()
	f := spanFields{
		traceID: tid[:], spanID: sid[:], service: service, name: s.Name(),
		kind: kindName(s.SpanKind()), start: s.StartTime(), end: s.EndTime(),
		errored: s.Status().Code == codes.Error,
		attr: func(key string) (string, int64, bool) {
			for _, kv := range attrs {
				if string(kv.Key) == key {
					if kv.Value.Type() == attribute.INT64 {
						return "", kv.Value.AsInt64(), true
					}
					return kv.Value.Emit(), 0, true
				}
			}
			return "", 0, false
		},
	}
	if parent.IsValid() {
		f.parentID = pid[:]
	}
	return f.span()
}

func kindName(k trace.SpanKind) string {
	switch k {
	case trace.SpanKindServer:
		return "server"
	case trace.SpanKindClient:
		return "client"
	case trace.SpanKindProducer:
		return "producer"
	case trace.SpanKindConsumer:
		return "consumer"
	}
	return "internal"
}

// fromOTLP makes Spans of the spans of an OTLP export.
func fromOTLP(rs []*tracepb.ResourceSpans) []Span {
	var out []Span
	for _, r := range rs {
		service := stringAttr(r.GetResource().GetAttributes(), "service.name")
		for _, ss := range r.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := s.GetAttributes()
				out = append(out, spanFields{
					traceID: s.GetTraceId(), spanID: s.GetSpanId(), parentID: s.GetParentSpanId(),
					service: service, name: s.GetName(), kind: otlpKind(s.GetKind()),
					start:   time.Unix(0, int64(s.GetStartTimeUnixNano())),
					end:     time.Unix(0, int64(s.GetEndTimeUnixNano())),
					errored: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					attr: func(key string) (string, int64, bool) {
						for _, kv := range attrs {
							if kv.GetKey() == key {
								if v, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_IntValue); ok {
									return "", v.IntValue, true
								}
								return kv.GetValue().GetStringValue(), 0, true
							}
						}
						return "", 0, false
					},
				}.span())
			}
		}
	}
	return out
}

func stringAttr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func otlpKind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "internal"
}
