// Package ordermetrics counts the orders service's business for Prometheus:
// the orders placed, the sagas ended by style and outcome, and how long a
// checkout took from its placing to its end.
package ordermetrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/orders"
)

// Metrics is an orders.Meter on Prometheus counters and a histogram.
type Metrics struct {
	placed   *prometheus.CounterVec
	sagas    *prometheus.CounterVec
	checkout *prometheus.HistogramVec
}

var _ orders.Meter = (*Metrics)(nil)

// Outcomes are the outcome label's values: how a saga ended.
var Outcomes = []string{outcome(orders.Completed), outcome(orders.Cancelled)}

// CheckoutBuckets bound the checkout histogram, in seconds: a saga ends in
// well under a second when every service answers, and in tens of seconds
// to minutes when steps are retried or time out.
var CheckoutBuckets = []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New returns the metrics of service, with a series for every saga style
// and outcome from the start (at zero), so that rates and alerts over them
// read something before the first order ends.
func New(service string) *Metrics {
	labels := prometheus.Labels{"service": service}
	m := &Metrics{
		placed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "microshop_orders_placed_total", Help: "Orders accepted, by the saga style they run under.",
			ConstLabels: labels,
		}, []string{"saga"}),
		sagas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "microshop_sagas_total", Help: "Checkout sagas ended, by style and outcome (completed or cancelled); each order once.",
			ConstLabels: labels,
		}, []string{"saga", "outcome"}),
		checkout: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "microshop_checkout_duration_seconds", Help: "Time from an order's placing to its saga's end, by style and outcome.",
			ConstLabels: labels, Buckets: CheckoutBuckets,
		}, []string{"saga", "outcome"}),
	}
	for _, saga := range orders.Modes {
		m.placed.WithLabelValues(saga)
		for _, out := range Outcomes {
			m.sagas.WithLabelValues(saga, out)
			m.checkout.WithLabelValues(saga, out)
		}
	}
	return m
}

// Collectors returns the metrics for the service's registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.placed, m.sagas, m.checkout}
}

// Placed implements orders.Meter: it counts once the order is committed.
func (m *Metrics) Placed(ctx context.Context, saga string) {
	inbox.AfterCommit(ctx, func() { m.placed.WithLabelValues(saga).Inc() })
}

// Ended implements orders.Meter. An order ends in the effect of a
// participant's event (inside that event's inbox transaction) or in the
// orchestrator's own transaction; either way it is counted once that
// transaction has committed, so an effect rolled back and redelivered is
// counted once, and a duplicate delivery, which changes nothing, never.
func (m *Metrics) Ended(ctx context.Context, saga string, final orders.Status, took time.Duration) {
	out := outcome(final)
	inbox.AfterCommit(ctx, func() {
		m.sagas.WithLabelValues(saga, out).Inc()
		m.checkout.WithLabelValues(saga, out).Observe(took.Seconds())
	})
}

func outcome(s orders.Status) string { return strings.ToLower(string(s)) }
