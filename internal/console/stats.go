package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
)

// Stats is the shop at one moment, as the console shows it.
type Stats struct {
	At       time.Time                `json:"at"`
	SagaMode string                   `json:"saga_mode,omitempty"`
	Services map[string]*ServiceStats `json:"services"`
	Orders   OrderCounts              `json:"orders"`
	Broker   BrokerStats              `json:"broker"`
	Traffic  any                      `json:"traffic,omitempty"`
}

// ServiceStats is one service: its instances and health, the faults an
// admin set on it, its traffic, the breakers on its outgoing edges and its
// messaging backlog.
type ServiceStats struct {
	Health    string               `json:"health"` // up, down or unknown
	Instances []discovery.Instance `json:"instances"`
	Down      bool                 `json:"down"`
	LatencyMS int                  `json:"latency_ms"`
	ErrorRate float64              `json:"error_rate_fault"`
	Breakers  map[string]string    `json:"breakers"`
	Outbox    float64              `json:"outbox_backlog"`
	Queued    float64              `json:"queued"` // messages the broker keeps for its consumers, not yet settled
	Dead      float64              `json:"dead_letters"`
	Live
}

// OrderCounts are the orders that ended since the orders instances started,
// from their saga metrics.
type OrderCounts struct {
	Completed float64 `json:"completed"`
	Cancelled float64 `json:"cancelled"`
	Placed    float64 `json:"placed"`
	Pending   float64 `json:"pending"`
}

// BrokerStats is what waits around the broker: events committed and not yet
// published, messages kept for consumers and not yet settled, and
// deliveries given up on.
type BrokerStats struct {
	Health        string  `json:"health"`
	OutboxBacklog float64 `json:"outbox_backlog"`
	Queued        float64 `json:"queued"`
	DeadLetters   float64 `json:"dead_letters"`
}

// stats gathers the shop's state: the registry's instances, the gateway's
// views of faults, breakers and settings, every instance's metrics, and the
// traffic measured from spans. A source that does not answer leaves its
// part out rather than failing the rest.
func (c *Console) stats(ctx context.Context, r *http.Request) (Stats, error) {
	st := Stats{At: time.Now().UTC(), Services: map[string]*ServiceStats{}}
	for _, n := range c.cfg.Topology.Nodes {
		st.Services[n.Name] = &ServiceStats{Health: "unknown", Instances: []discovery.Instance{}, Breakers: map[string]string{}}
	}
	services, err := c.cfg.Services(ctx)
	if err != nil {
		return st, fmt.Errorf("listing instances: %w", err)
	}
	addresses := map[string]string{}
	for _, s := range services {
		if ss, ok := st.Services[s.Name]; ok {
			ss.Instances = s.Instances
		}
		for _, in := range s.Instances {
			addresses[in.Address] = s.Name
		}
	}
	c.cfg.Collector.SetAddresses(addresses)

	var (
		wg       sync.WaitGroup
		faults   faultListing
		breakers breakerListing
		settings struct {
			SagaMode string `json:"saga_mode"`
		}
		metrics = make([]instanceMetrics, len(addresses))
	)
	queued := map[string]*float64{}
	if c.cfg.Queued != nil {
		for _, n := range c.cfg.Topology.Nodes {
			for _, g := range n.Groups {
				v := new(float64)
				queued[n.Name+"/"+g] = v
				wg.Go(func() {
					if depth, err := c.cfg.Queued(ctx, g, n.Consumes); err == nil {
						*v = float64(depth)
					}
				})
			}
		}
	}
	wg.Go(func() { _ = c.ask(ctx, r, http.MethodGet, "/api/v1/admin/faults", &faults) })
	wg.Go(func() { _ = c.ask(ctx, r, http.MethodGet, "/api/v1/admin/resilience", &breakers) })
	if c.cfg.Ask != nil {
		wg.Go(func() {
			token, _, _ := auth.BearerToken(r)
			_ = c.cfg.Ask(ctx, "orders", "/api/v1/admin/settings", token, &settings)
		})
	}
	i := 0
	for addr, svc := range addresses {
		slot := &metrics[i]
		wg.Go(func() { *slot = c.scrape(ctx, svc, addr) })
		i++
	}
	wg.Wait()

	st.SagaMode = settings.SagaMode
	for _, f := range faults.Items {
		if ss, ok := st.Services[f.Service]; ok {
			ss.Down = ss.Down || f.Down
			ss.LatencyMS = max(ss.LatencyMS, f.LatencyMS)
			ss.ErrorRate = max(ss.ErrorRate, f.ErrorRate)
		}
	}
	st.Broker.Health = "up"
	for _, e := range breakers.Edges {
		if ss, ok := st.Services[e.From]; ok {
			ss.Breakers[e.To] = e.State
		}
		if e.To == Broker && e.State == "open" {
			st.Broker.Health = "down"
		}
	}
	for _, m := range metrics {
		if ss, ok := st.Services[m.service]; ok {
			ss.Outbox += m.outbox
			ss.Dead += m.dead
			st.Broker.OutboxBacklog += m.outbox
			st.Broker.DeadLetters += m.dead
		}
		st.Orders.Completed += m.completed
		st.Orders.Cancelled += m.cancelled
		st.Orders.Placed += m.placed
	}
	for key, v := range queued {
		svc, _, _ := strings.Cut(key, "/")
		st.Services[svc].Queued += *v
		st.Broker.Queued += *v
	}
	st.Orders.Pending = max(st.Orders.Placed-st.Orders.Completed-st.Orders.Cancelled, 0)
	live := c.cfg.Collector.Live()
	for name, ss := range st.Services {
		ss.Live = live[name]
		switch {
		case ss.Down:
			ss.Health = "down"
		case hasHealthy(ss.Instances):
			ss.Health = "up"
		case name == "registry":
			// It just answered the listing above, even when it is etcd or
			// Kubernetes DNS, which list no instance of their own.
			ss.Health = "up"
		case name != Broker:
			ss.Health = "down"
		}
	}
	st.Services[Broker].Health = st.Broker.Health
	if c.cfg.Traffic != nil {
		st.Traffic = c.cfg.Traffic.Status()
	}
	return st, nil
}

func hasHealthy(instances []discovery.Instance) bool {
	for _, in := range instances {
		if in.Healthy {
			return true
		}
	}
	return false
}

// faultListing is the part of GET /api/v1/admin/faults the console reads.
type faultListing struct {
	Items []struct {
		Service   string  `json:"service"`
		LatencyMS int     `json:"latency_ms"`
		ErrorRate float64 `json:"error_rate"`
		Down      bool    `json:"down"`
	} `json:"items"`
}

// breakerListing is the part of GET /api/v1/admin/resilience the console reads.
type breakerListing struct {
	Edges []struct {
		From  string `json:"from"`
		To    string `json:"to"`
		State string `json:"state"`
	} `json:"edges"`
}

// instanceMetrics is what the console reads off one instance's /metrics.
type instanceMetrics struct {
	service                      string
	outbox, dead                 float64
	placed, completed, cancelled float64
}

// scrape reads one instance's metrics; an instance that does not answer
// counts nothing.
func (c *Console) scrape(ctx context.Context, service, address string) instanceMetrics {
	m := instanceMetrics{service: service}
	body, err := c.cfg.Scrape(ctx, address)
	if err != nil {
		return m
	}
	defer body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return m
	}
	m.outbox = sum(families["outbox_backlog"], nil)
	m.dead = sum(families["dead_letters"], nil)
	m.placed = sum(families["microshop_orders_placed_total"], nil)
	m.completed = sum(families["microshop_sagas_total"], map[string]string{"outcome": "completed"})
	m.cancelled = sum(families["microshop_sagas_total"], map[string]string{"outcome": "cancelled"})
	return m
}

// sum adds up the samples of a counter or gauge family whose labels match.
func sum(f *dto.MetricFamily, match map[string]string) float64 {
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.GetMetric() {
		for k, v := range match {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

// scrapeHTTP fetches an instance's metrics page. The request is not traced:
// the console's polling is not the shop's traffic.
func scrapeHTTP(ctx context.Context, address string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+address+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s/metrics answered %d", address, resp.StatusCode)
	}
	return resp.Body, nil
}
