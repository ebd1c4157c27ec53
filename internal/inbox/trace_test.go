package inbox_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// TestADeliveryContinuesTheEventsTrace: the work an event causes is a
// consumer span in the trace the event carries, and an event that work
// publishes carries that trace on.
func TestADeliveryContinuesTheEventsTrace(t *testing.T) {
	db := openDB(t, sqldb.SQLite)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	in := inbox.New(db, "svc", nil)
	in.Trace(tp)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var seen trace.SpanContext
	h := in.Handle("svc", func(ctx context.Context, e event.Event) error {
		seen = trace.SpanContextFromContext(ctx)
		next, err := event.New("svc", "svc.thing.done", "ThingDone", 1, e.Key, map[string]string{"id": e.Key})
		if err != nil {
			return err
		}
		return outbox.Add(ctx, db, next)
	})
	e, err := event.New("orders", "orders.order.created", "OrderCreated", 1, "o1", map[string]string{"order_id": "o1"})
	if err != nil {
		t.Fatal(err)
	}
	e.TraceParent = "00-" + traceID + "-00f067aa0ba902b7-01"
	if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if seen.TraceID().String() != traceID {
		t.Errorf("the effect ran in trace %s, want the event's %s", seen.TraceID(), traceID)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].SpanKind() != trace.SpanKindConsumer || spans[0].Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("spans = %v, want one consumer span whose parent is the publisher's", spans)
	}
	published := sqldbtest.Outbox(t, db)
	if len(published) != 1 || published[0].TraceParent != "00-"+traceID+"-"+spans[0].SpanContext().SpanID().String()+"-01" {
		t.Errorf("the event the work published carries %q, want the consumer span's trace context", published[0].TraceParent)
	}
}
