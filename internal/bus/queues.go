package bus

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Queues measures the depth of every queue a service consumes from: it
// remembers each subscription made through its Broker, and at every scrape
// asks the broker how many messages wait for each group, as the gauge
// bus_waiting_messages{group}. A queue that grows is a consumer that is
// down, slow or failing.
type Queues struct {
	Broker
	desc *prometheus.Desc

	mu   sync.Mutex
	subs map[string]Subscription // by group
}

// NewQueues wraps b for the service named service.
func NewQueues(b Broker, service string) *Queues {
	labels := prometheus.Labels{}
	if service != "" {
		labels["service"] = service
	}
	return &Queues{
		Broker: b,
		desc: prometheus.NewDesc("bus_waiting_messages",
			"Messages the broker keeps for a consumer group, not yet settled: the depth of its queue.",
			[]string{"group"}, labels),
		subs: map[string]Subscription{},
	}
}

// Subscribe remembers s, then subscribes through the wrapped broker.
func (q *Queues) Subscribe(ctx context.Context, s Subscription, h Handler) error {
	q.mu.Lock()
	q.subs[s.Group] = s
	q.mu.Unlock()
	return q.Broker.Subscribe(ctx, s, h)
}

// scrapeTimeout bounds what one scrape waits for the broker.
const scrapeTimeout = 2 * time.Second

// Describe implements prometheus.Collector.
func (q *Queues) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

// Collect implements prometheus.Collector: one sample per group, left out
// while the broker cannot say.
func (q *Queues) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	subs := make([]Subscription, 0, len(q.subs))
	for _, s := range q.subs {
		subs = append(subs, s)
	}
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, s := range subs {
		n, err := q.Broker.Waiting(ctx, s)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), s.Group)
	}
}
