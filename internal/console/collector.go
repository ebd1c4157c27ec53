package console

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Limits of what a Collector keeps: the latest traces, each up to a size,
// and the last window of every service's server spans for its live rates.
const (
	maxTraces     = 2000
	maxTraceSpans = 400
	window        = 10 * time.Second
	subscriberBuf = 1024
)

// Collector receives every finished span of the shop, from this process's
// tracer providers (Processor) or from other processes over OTLP
// (OTLPHandler). It keeps the latest traces, measures each service's rate,
// errors and latency from its server spans, and passes every span on to the
// consoles watching. It is safe for concurrent use.
type Collector struct {
	now func() time.Time

	mu        sync.Mutex
	traces    map[string]*traceEntry
	order     []string            // trace ids, oldest first
	recent    map[string][]sample // service -> its server spans in the last window
	addresses map[string]string   // host:port -> service, to name a client span's callee
	subs      map[chan Span]struct{}
	dropped   int // spans a slow console did not get
}

type traceEntry struct {
	spans []Span
}

type sample struct {
	at       time.Time
	duration float64
	errored  bool
}

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	return &Collector{
		now:    time.Now,
		traces: map[string]*traceEntry{}, recent: map[string][]sample{},
		addresses: map[string]string{}, subs: map[chan Span]struct{}{},
	}
}

// Add takes finished spans in: each is kept with its trace, counted, and
// sent to every subscriber that keeps up.
func (c *Collector) Add(spans ...Span) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range spans {
		if s.TraceID == "" || s.Service == "" {
			continue
		}
		t := c.traces[s.TraceID]
		if t == nil {
			t = &traceEntry{}
			c.traces[s.TraceID] = t
			c.order = append(c.order, s.TraceID)
			c.evict()
		}
		if s.Kind == "client" && s.Peer == "" {
			s.Peer = c.peerOf(t, s)
		}
		if len(t.spans) < maxTraceSpans {
			t.spans = append(t.spans, s)
		}
		if s.Kind == "server" {
			c.recent[s.Service] = append(prune(c.recent[s.Service], c.now()), sample{at: s.Start, duration: s.DurationMS, errored: s.Status == "error"})
		}
		for ch := range c.subs {
			select {
			case ch <- s:
			default:
				c.dropped++
			}
		}
	}
}

// peerOf names the service a client span called: the service of the server
// span it caused, if that has arrived (it ends first), else whoever listens
// at the address it called. c.mu is held.
func (c *Collector) peerOf(t *traceEntry, s Span) string {
	for _, child := range t.spans {
		if child.ParentID == s.SpanID && child.Kind == "server" {
			return child.Service
		}
	}
	return c.addresses[s.address]
}

// evict forgets the oldest traces beyond maxTraces. c.mu is held.
func (c *Collector) evict() {
	for len(c.order) > maxTraces {
		delete(c.traces, c.order[0])
		c.order = c.order[1:]
	}
}

// prune drops the samples older than the window.
func prune(s []sample, now time.Time) []sample {
	cut := sort.Search(len(s), func(i int) bool { return now.Sub(s[i].at) <= window })
	return s[cut:]
}

// SetAddresses tells the collector which service listens where, so that
// client spans that arrive before their server span still name their callee.
func (c *Collector) SetAddresses(addresses map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addresses = addresses
}

// Subscribe returns a channel of every span from now on, and the function
// that ends the subscription. A subscriber that falls behind misses spans
// rather than slowing the shop down.
func (c *Collector) Subscribe() (<-chan Span, func()) {
	ch := make(chan Span, subscriberBuf)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// Live is one service's traffic over the last window, from its server spans.
type Live struct {
	Rate   float64 `json:"rate"`   // requests a second
	Errors float64 `json:"errors"` // the fraction that failed
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
}

// Live returns every service's traffic over the last window.
func (c *Collector) Live() map[string]Live {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := map[string]Live{}
	for svc, s := range c.recent {
		s = prune(s, now)
		c.recent[svc] = s
		if len(s) == 0 {
			out[svc] = Live{}
			continue
		}
		durations := make([]float64, len(s))
		failed := 0
		for i, x := range s {
			durations[i] = x.duration
			if x.errored {
				failed++
			}
		}
		slices.Sort(durations)
		out[svc] = Live{
			Rate:   float64(len(s)) / window.Seconds(),
			Errors: float64(failed) / float64(len(s)),
			P50:    percentile(durations, 0.50),
			P99:    percentile(durations, 0.99),
		}
	}
	return out
}

// percentile reads the p-th quantile of sorted values, by nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Trace returns the spans of one trace in the order they started.
func (c *Collector) Trace(id string) ([]Span, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.traces[id]
	if !ok {
		return nil, false
	}
	spans := slices.Clone(t.spans)
	slices.SortStableFunc(spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return spans, true
}

// TraceSummary describes one trace in a list of them.
type TraceSummary struct {
	TraceID    string    `json:"trace_id"`
	Root       string    `json:"root"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	Services   []string  `json:"services"`
	Spans      int       `json:"spans"`
	Error      bool      `json:"error"`
}

// Traces lists the latest traces that service took part in (any service
// when it is ""), newest first, at most limit.
func (c *Collector) Traces(service string, limit int) []TraceSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []TraceSummary{}
	for _, id := range slices.Backward(c.order) {
		if len(out) >= limit {
			break
		}
		sum := summarize(id, c.traces[id].spans)
		if service == "" || slices.Contains(sum.Services, service) {
			out = append(out, sum)
		}
	}
	return out
}

func summarize(id string, spans []Span) TraceSummary {
	sum := TraceSummary{TraceID: id, Spans: len(spans)}
	var end time.Time
	for i, s := range spans {
		if i == 0 || s.Start.Before(sum.Start) {
			sum.Start = s.Start
		}
		if e := s.Start.Add(time.Duration(s.DurationMS * float64(time.Millisecond))); e.After(end) {
			end = e
		}
		if s.ParentID == "" || sum.Root == "" {
			sum.Root = s.Name
		}
		if !slices.Contains(sum.Services, s.Service) {
			sum.Services = append(sum.Services, s.Service)
		}
		sum.Error = sum.Error || s.Status == "error"
	}
	sum.DurationMS = float64(end.Sub(sum.Start).Microseconds()) / 1000
	return sum
}

// Processor returns a span processor that hands every span a tracer
// provider of this process finishes to c, as it ends: in one process the
// console takes spans straight from the SDK.
func (c *Collector) Processor() sdktrace.SpanProcessor { return processor{c} }

type processor struct{ c *Collector }

func (p processor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (p processor) OnEnd(s sdktrace.ReadOnlySpan)                   { p.c.Add(fromSDK(s)) }
func (p processor) Shutdown(context.Context) error                  { return nil }
func (p processor) ForceFlush(context.Context) error                { return nil }
