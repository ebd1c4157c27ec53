package shop

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/bus/rabbitbus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
)

type countingPublisher struct {
	calls int
	err   error
}

func (c *countingPublisher) Publish(context.Context, event.Event) error {
	c.calls++
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
	g := guardedPublisher{edge: edges.Edge("quiet-broker"), pub: unroutable}
	for range 3 * p.Failures {
		_ = g.Publish(context.Background(), e)
	}
	if state := g.edge.State(); state != resilience.StateClosed || unroutable.calls != 3*p.Failures {
		t.Errorf("unroutable publishes: breaker %s after %d calls, want closed after %d", state, unroutable.calls, 3*p.Failures)
	}

	down := &countingPublisher{err: errors.New("connection refused")}
	g = guardedPublisher{edge: edges.Edge("broker"), pub: down}
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
