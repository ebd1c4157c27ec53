package orders_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

type fixedCatalog struct{}

func (fixedCatalog) Product(_ context.Context, id string) (orders.Product, error) {
	return orders.Product{ID: id, PriceCents: 250, Currency: "USD"}, nil
}

type fixedVault struct{}

func (fixedVault) Tokenize(context.Context, string) (string, error) { return "tok", nil }

// TestOrchestratorsCommandsJoinTheOrdersTrace: the runner works outside any
// request, yet every command it sends for an order carries the trace of the
// request that placed it, from a span of its own in that trace, so one
// checkout is one trace across every service.
func TestOrchestratorsCommandsJoinTheOrdersTrace(t *testing.T) {
	db := sqldbtest.OpenMessaging(t, "orders", orderdb.Migrations)
	store := orderdb.New(db)
	runner := orders.NewRunner(store, slog.New(slog.DiscardHandler))
	rec := tracetest.NewSpanRecorder()
	runner.Trace(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	svc := orders.NewService(store, fixedCatalog{}, fixedVault{}, orders.ModeOrchestration, runner.Wake)

	placing := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled, Remote: true,
	})
	o, _, err := svc.Place(trace.ContextWithSpanContext(context.Background(), placing), "u1", "", orders.PlaceRequest{
		Items: []orders.Line{{ProductID: "p1", Quantity: 1}}, Card: "4242424242424242",
		Address: orders.Address{Name: "Ada", Line1: "1 Road", City: "London", PostalCode: "N1", Country: "GB"}})
	if err != nil {
		t.Fatal(err)
	}
	if sg, err := store.Saga(context.Background(), o.ID); err != nil || !strings.Contains(sg.TraceParent, placing.TraceID().String()) {
		t.Fatalf("stored saga traceparent = %q, %v; want the placing request's trace", sg.TraceParent, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { runner.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	command := func(topic string) event.Event {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, e := range sqldbtest.Outbox(t, db) {
				if e.Key == o.ID && e.Topic == topic {
					return e
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %s command for order %s within 10s", topic, o.ID)
		return event.Event{}
	}
	charge := command(orders.CmdCharge)

	// The reply comes in another trace (the payments consumer's); the next
	// command is still in the order's.
	reply := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
	if err := db.Atomic(reply, func(ctx context.Context) error {
		return svc.Observe(ctx, orders.Observation{OrderID: o.ID, Kind: orders.PaymentProcessed})
	}); err != nil {
		t.Fatal(err)
	}
	reserve := command(orders.CmdReserve)

	steps := map[string]sdktrace.ReadOnlySpan{}
	waitSpans := time.Now().Add(5 * time.Second)
	for len(steps) < 2 && time.Now().Before(waitSpans) {
		for _, s := range rec.Ended() {
			steps[s.Name()] = s
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct {
		cmd  event.Event
		span string
	}{{charge, "saga charge"}, {reserve, "saga reserve"}} {
		span, ok := steps[c.span]
		if !ok {
			t.Errorf("no span %q among %v", c.span, steps)
			continue
		}
		want := "00-" + placing.TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
		if c.cmd.TraceParent != want {
			t.Errorf("%s carries traceparent %q, want %q: the order's trace, from the step's span", c.cmd.Topic, c.cmd.TraceParent, want)
		}
		if span.Parent().SpanID() != placing.SpanID() {
			t.Errorf("span %q has parent %s, want the placing request's span %s", c.span, span.Parent().SpanID(), placing.SpanID())
		}
		topic := ""
		for _, a := range span.Attributes() {
			if a.Key == "messaging.destination.name" {
				topic = a.Value.AsString()
			}
		}
		if topic != c.cmd.Topic {
			t.Errorf("span %q names topic %q, want %q", c.span, topic, c.cmd.Topic)
		}
	}
}
