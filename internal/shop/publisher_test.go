package shop

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/microshop/microshop/internal/bus/rabbitbus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
)

type countingPublisher struct {
	calls int
	err   error
	sent  []event.Event
}

func (c *countingPublisher) Publish(_ context.Context, e event.Event) error {
	c.calls++
	c.sent = append(c.sent, e)
	return c.err
}

// TestBrokerPublishesGoThroughABreaker: a broker that keeps failing opens
// the service's broker edge, after which publishes fail fast without
// reaching it; a broker that answers "no queue bound yet" is not failing.
func TestBrokerPublishesGoThroughABreaker(t *testing.T) {
	p := resilience.DefaultPolicy()
	p.OpenTimeout = time.Hour
	edges := resilience.NewEdges("orders", p, nil)
	e, _ := event.New("orders", "orders.order.created", "OrderCreated", 1, "o1", map[string]string{"order_id": "o1"})

	unroutable := &countingPublisher{err: fmt.Errorf("publishing: %w", rabbitbus.ErrUnroutable)}
	g := guardedPublisher{edge: edges.Edge("quiet-broker"), pub: unroutable, tracer: noop.NewTracerProvider().Tracer("")}
	for range 3 * p.Failures {
		_ = g.Publish(context.Background(), e)
	}
	if state := g.edge.State(); state != resilience.StateClosed || unroutable.calls != 3*p.Failures {
		t.Errorf("unroutable publishes: breaker %s after %d calls, want closed after %d", state, unroutable.calls, 3*p.Failures)
	}

	down := &countingPublisher{err: errors.New("connection refused")}
	g = guardedPublisher{edge: edges.Edge("broker"), pub: down, tracer: noop.NewTracerProvider().Tracer("")}
	for range p.Failures {
		_ = g.Publish(context.Background(), e)
	}
	for range 10 {
		if err := g.Publish(context.Background(), e); !fail.Is(err, fail.Unavailable) || !errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("publish with the breaker open: %v, want a fast circuit-open refusal", err)
		}
	}
	if down.calls != p.Failures || g.edge.State() != resilience.StateOpen {
		t.Errorf("broker reached %d times, breaker %s; want %d and open", down.calls, g.edge.State(), p.Failures)
	}
}

// TestAPublishIsAProducerSpanItsEventCarries: the publish continues the
// trace the event was committed in, and the event leaves carrying the
// publish's own span, so each delivery is the publish's child.
func TestAPublishIsAProducerSpanItsEventCarries(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pub := &countingPublisher{}
	g := guardedPublisher{edge: resilience.NewEdges("orders", resilience.DefaultPolicy(), nil).Edge("broker"), pub: pub, tracer: tp.Tracer("t")}
	e, _ := event.New("orders", "orders.order.created", "OrderCreated", 1, "o1", map[string]string{"order_id": "o1"})
	e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := g.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want the publish", len(spans))
	}
	s := spans[0]
	if s.SpanKind() != trace.SpanKindProducer || s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("publish span: kind %v, parent %s, trace %s", s.SpanKind(), s.Parent().SpanID(), s.SpanContext().TraceID())
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + s.SpanContext().SpanID().String() + "-01"
	if got := pub.sent[0].TraceParent; got != want {
		t.Errorf("the event left with traceparent %s, want the publish's %s", got, want)
	}
	if e.TraceParent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Error("the caller's event was changed")
	}
}
