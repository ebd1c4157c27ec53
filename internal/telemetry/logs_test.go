package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/telemetry"
)

const (
	traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanID  = "00f067aa0ba902b7"
)

// lines decodes the JSON lines in buf.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandlerSaysWhichSpanALineIsLoggedIn(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil)))).With("service", "orders")
	traced := telemetry.ContextOf(context.Background(), "00-"+traceID+"-"+spanID+"-01")
	if sc := trace.SpanContextFromContext(traced); sc.TraceID().String() != traceID || sc.SpanID().String() != spanID {
		t.Fatalf("ContextOf gave span context %v, want the traceparent's", sc)
	}

	log.InfoContext(traced, "in a trace")
	log.InfoContext(context.Background(), "in none")
	log.Info("without a context")
	log.With("trace_id", "given", "span_id", "given").InfoContext(traced, "given already")
	log.InfoContext(telemetry.ContextOf(context.Background(), "not-a-traceparent"), "malformed")

	got := lines(t, &buf)
	want := []struct{ msg, traceID, spanID string }{
		{"in a trace", traceID, spanID},
		{"in none", "", ""},
		{"without a context", "", ""},
		{"given already", "given", "given"},
		{"malformed", "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		l := got[i]
		tid, _ := l["trace_id"].(string)
		sid, _ := l["span_id"].(string)
		if l["msg"] != w.msg || tid != w.traceID || sid != w.spanID || l["service"] != "orders" {
			t.Errorf("line %d = %v, want %q with trace_id %q, span_id %q and the service", i, l, w.msg, w.traceID, w.spanID)
		}
	}
	// Wrapped twice, a line still says each id once.
	if n := strings.Count(buf.String(), `"trace_id"`); n != 2 {
		t.Errorf("trace_id written %d times over all lines, want 2:\n%s", n, buf.String())
	}
}

func TestLogHandlerKeepsTheLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	traced := telemetry.ContextOf(context.Background(), "00-"+traceID+"-"+spanID+"-01")
	log.InfoContext(traced, "quiet")
	log.WarnContext(traced, "loud")
	got := lines(t, &buf)
	if len(got) != 1 || got[0]["msg"] != "loud" {
		t.Errorf("lines = %v, want only the warning", got)
	}
}
