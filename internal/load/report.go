package load

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Report is what a run measured. Every rate is over DurationS + DrainS, the
// time in which everything counted happened.
type Report struct {
	Target    string  `json:"target"`
	Rate      float64 `json:"rate"`       // arrivals a second at the end of the run
	DurationS float64 `json:"duration_s"` // how long shoppers arrived
	DrainS    float64 `json:"drain_s"`    // how long the run then waited for steps and orders to end
	SetupS    float64 `json:"setup_s"`    // signing in and learning the catalog, before the first arrival

	Arrivals      int64   `json:"arrivals"` // shoppers due, skipped ones included
	Skipped       int64   `json:"skipped"`  // arrivals dropped because MaxInFlight steps were under way
	Requests      int64   `json:"requests"` // requests sent, setup's included
	OK            int64   `json:"ok"`       // answered 2xx
	Failed        int64   `json:"failed"`   // answered otherwise, or not at all
	ThroughputRPS float64 `json:"throughput_rps"`
	Customers     int64   `json:"customers"` // signed up by this run
	Restocks      int64   `json:"restocks"`

	OrdersPlaced       int64   `json:"orders_placed"` // accepted with 202
	CheckoutsCompleted int64   `json:"checkouts_completed"`
	CompletedPerS      float64 `json:"completed_per_s"`
	Cancelled          int64   `json:"cancelled"`
	Pending            int64   `json:"pending"` // placed, not seen to end before the run stopped waiting
	// Unexpected counts orders that ended otherwise than their kind means
	// to: a good order cancelled (its stock ran out, or a fault), a
	// declined or short-stock one completed.
	Unexpected int64 `json:"unexpected"`

	// LatencyMS is by operation: place_order (to the 202), checkout (from
	// acceptance to the order's end), and each other request a shopper
	// makes (browse_catalog, view_product, view_product_v2, check_stock,
	// poll_order, sign_up, login, restock).
	LatencyMS map[string]Latency `json:"latency_ms"`
	// Outcomes counts orders by kind and end, e.g. "good:COMPLETED",
	// "declined:CANCELLED", "short_stock:unfinished".
	Outcomes map[string]int `json:"outcomes"`
	// Errors counts failed requests by kind: rate_limited (429), http_NNN,
	// or the transport's failure (timeout, connection_refused, ...).
	Errors map[string]int `json:"errors"`
}

// Latency summarises one operation's durations, in milliseconds.
type Latency struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Count int64   `json:"count"`
}

// report gathers the counters into a Report.
func (g *Generator) report(arrived, elapsed, setup time.Duration) Report {
	s := g.Snapshot()
	secs := elapsed.Seconds()
	per := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return round(float64(n)/secs, 2)
	}
	outcomes := g.stats.outcomeCounts()
	if outcomes == nil {
		outcomes = map[string]int{}
	}
	errs := s.Errors
	if errs == nil {
		errs = map[string]int{}
	}
	return Report{
		Target:             g.target,
		Rate:               s.Rate,
		DurationS:          round(arrived.Seconds(), 3),
		DrainS:             round((elapsed - arrived).Seconds(), 3),
		SetupS:             round(setup.Seconds(), 3),
		Arrivals:           s.Arrivals,
		Skipped:            s.Skipped,
		Requests:           s.Sent,
		OK:                 s.OK,
		Failed:             s.Failed,
		ThroughputRPS:      per(s.Sent),
		Customers:          g.stats.customers.Load(),
		Restocks:           g.stats.restocks.Load(),
		OrdersPlaced:       s.Placed,
		CheckoutsCompleted: s.Completed,
		CompletedPerS:      per(s.Completed),
		Cancelled:          s.Cancelled,
		Pending:            s.Pending,
		Unexpected:         g.stats.unexpected.Load(),
		LatencyMS:          g.latency.summary(),
		Outcomes:           outcomes,
		Errors:             errs,
	}
}

func round(x float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(x*p) / p
}

// recorder keeps a histogram of durations per operation.
type recorder struct {
	mu  sync.Mutex
	ops map[string]*histogram
}

func (r *recorder) record(op string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ops == nil {
		r.ops = map[string]*histogram{}
	}
	h := r.ops[op]
	if h == nil {
		h = &histogram{}
		r.ops[op] = h
	}
	h.record(d)
}

func (r *recorder) summary() map[string]Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Latency, len(r.ops))
	for op, h := range r.ops {
		out[op] = h.summary()
	}
	return out
}

// histogram counts durations in microseconds in log-linear buckets, as HDR
// histograms do: exact below 256 µs, and above it no bucket is wider than
// 1/128 of its lower bound. A quantile is its bucket's midpoint, so it is
// within 0.4% of the true value, in memory that grows with the logarithm of
// the largest duration, never with the count: a run may last for days.
type histogram struct {
	counts   []int64
	n        int64
	min, max int64 // exact, in µs
}

// subBuckets is the number of buckets per power of two above 256 µs.
const subBuckets = 128

func (h *histogram) record(d time.Duration) {
	v := max(d.Microseconds(), 0)
	i := bucketOf(v)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]int64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
}

// bucketOf is the index of v's bucket: v itself below 2*subBuckets, then
// subBuckets buckets per power of two, indexed by v's top 8 bits.
func bucketOf(v int64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 8 // v>>shift is in [128, 256)
	return 2*subBuckets + (shift-1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketBounds is the least and the greatest value in bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*subBuckets {
		return int64(i), int64(i)
	}
	j := i - 2*subBuckets
	shift := j/subBuckets + 1
	m := int64(j%subBuckets + subBuckets)
	return m << shift, (m+1)<<shift - 1
}

// quantile is the smallest recorded value (to the bucket) that at least a
// fraction q of the values do not exceed, in µs.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := bucketBounds(i)
			return min(max((lo+hi)/2, h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) summary() Latency {
	ms := func(us int64) float64 { return round(float64(us)/1000, 3) }
	return Latency{P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)), Max: ms(h.max), Count: h.n}
}
