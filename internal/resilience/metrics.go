package resilience

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Collectors returns the Prometheus collectors of every edge, present and
// future, for the caller's own registry. Each scrape reads the same
// counters the admin listing shows, labelled by service (the caller) and
// upstream.
func (e *Edges) Collectors() []prometheus.Collector {
	return []prometheus.Collector{collector{e}}
}

var (
	edgeLabels = []string{"service", "upstream"}

	descState = prometheus.NewDesc("microshop_breaker_state",
		"Circuit breaker state per edge: 0 closed, 1 half-open, 2 open.", edgeLabels, nil)
	descTransitions = prometheus.NewDesc("microshop_breaker_transitions_total",
		"Circuit breaker state changes per edge, by the state entered.", append(edgeLabels, "state"), nil)
	descRequests = prometheus.NewDesc("microshop_upstream_requests_total",
		"Calls made to an upstream, refused ones included.", edgeLabels, nil)
	descAttempts = prometheus.NewDesc("microshop_upstream_attempts_total",
		"Attempts that went to the network, retries included.", edgeLabels, nil)
	descFailures = prometheus.NewDesc("microshop_upstream_failures_total",
		"Attempts the breaker counted as failures: unreachable, too slow, 5xx or 429.", edgeLabels, nil)
	descRetries = prometheus.NewDesc("microshop_upstream_retries_total",
		"Retries of retryable failures of idempotent calls.", edgeLabels, nil)
	descRejected = prometheus.NewDesc("microshop_upstream_rejected_total",
		"Calls refused without reaching the network, by reason: open (breaker) or bulkhead.", append(edgeLabels, "reason"), nil)
	descFallbacks = prometheus.NewDesc("microshop_upstream_fallbacks_total",
		"Answers served from a fallback instead of the upstream.", edgeLabels, nil)
)

type collector struct{ edges *Edges }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTransitions, descRequests, descAttempts, descFailures, descRetries, descRejected, descFallbacks} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, e := range c.edges.all() {
		from, to := e.from, e.to
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(e.breaker.State()), from, to)
		for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
			counter(descTransitions, e.entered[s].Load(), from, to, stateName(s))
		}
		counter(descRequests, e.requests.Load(), from, to)
		counter(descAttempts, e.attempts.Load(), from, to)
		counter(descFailures, e.failures.Load(), from, to)
		counter(descRetries, e.retries.Load(), from, to)
		counter(descRejected, e.refusedOpen.Load(), from, to, "open")
		counter(descRejected, e.refusedFull.Load(), from, to, "bulkhead")
		counter(descFallbacks, e.fallbacks.Load(), from, to)
	}
}
