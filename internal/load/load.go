// Package load is an open-loop traffic generator for the shop: shoppers arrive
// at a set rate whatever the shop answers, and browse, check stock and check
// out through the gateway's public API, so that a run measures the shop the
// way its customers meet it, slow answers and all.
package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the Options left zero.
const (
	DefaultMaxInFlight = 256
	DefaultCustomers   = 50
	DefaultDrain       = 30 * time.Second
)

// Bounds on the options, so that a typo cannot turn the generator into a
// denial of service of the machine it runs on.
const (
	MaxRate      = 100_000
	maxCustomers = 100_000
	maxInFlight  = 100_000
)

// Options configure a Generator.
type Options struct {
	// Target is the gateway's base URL, e.g. http://127.0.0.1:8080.
	Target string
	// Rate is how many shoppers arrive a second.
	Rate float64
	// Duration is how long shoppers keep arriving; 0 means until the context
	// of Run ends.
	Duration time.Duration
	// MaxInFlight bounds the shopper steps under way at once; an arrival over
	// it is skipped and counted, never queued. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Customers is the size of the pool of signed-up shoppers; 0 means
	// DefaultCustomers. The gateway limits each token's subject, so many
	// customers spread the load the way a real crowd does.
	Customers int
	// Admin, when set, lets the generator top up stock that runs low, so
	// that a long run does not decay into nothing but short-stock orders.
	Admin Credentials
	// Mix is what the shoppers do; the zero Mix means DefaultMix.
	Mix Mix
	// Client sends every request; nil means a client with sane timeouts.
	Client *http.Client
	// Progress, when set, is called about every second while the generator
	// runs, and once more when it is done.
	Progress func(Snapshot)
	// Drain bounds how long Run waits, once arrivals stop, for steps under
	// way and for placed orders to end; 0 means DefaultDrain.
	Drain time.Duration
}

// Credentials are an account the generator signs in with: an email and a
// password, or an access token obtained elsewhere (used as is, never
// renewed).
type Credentials struct {
	Email    string
	Password string
	Token    string
}

func (c Credentials) set() bool { return c.Email != "" || c.Password != "" || c.Token != "" }

// Mix says what the shoppers do. Browse, Stock and Order are the relative
// weights of the three kinds of step; Declined and ShortStock are the
// fractions of orders paid with the card the simulated provider declines and
// asking for more than the stock left. The other orders are good: a good
// card, a few items in stock.
type Mix struct {
	Browse     float64 // list the catalog or view one product (v1 or v2)
	Stock      float64 // check one product's stock
	Order      float64 // place an order and follow it to its end
	Legacy     float64 // a customer of the old shop reads their profile or orders through its API
	Declined   float64 // of orders: paid with the declined card
	ShortStock float64 // of orders: more items than the stock left
}

// DefaultMix is a shop's ordinary day: mostly looking, some buying, and a
// few checkouts that fail for the two reasons a customer can cause.
var DefaultMix = Mix{Browse: 0.55, Stock: 0.15, Order: 0.30, Declined: 0.10, ShortStock: 0.10}

func (m Mix) validate() error {
	for _, f := range []float64{m.Browse, m.Stock, m.Order, m.Legacy, m.Declined, m.ShortStock} {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New("mix: every weight and fraction must be a finite number of at least 0")
		}
	}
	if m.Browse+m.Stock+m.Order+m.Legacy == 0 {
		return errors.New("mix: at least one of browse, stock, order and legacy must weigh more than 0")
	}
	if m.Declined+m.ShortStock > 1 {
		return errors.New("mix: the declined and short-stock fractions of orders add up to more than 1")
	}
	return nil
}

// Generator drives traffic at a shop. It runs once.
type Generator struct {
	opt    Options
	target string // without a trailing slash
	hc     *http.Client
	runID  string // names this run's customers, so runs never collide

	rate        atomic.Uint64 // float64 bits
	rateChanged chan struct{}
	followers   chan struct{} // a slot per order being followed
	started     atomic.Bool
	running     atomic.Bool
	draining    atomic.Bool

	stats    stats
	latency  recorder
	pool     pool
	admin    *account // nil without admin credentials
	products catalog
}

// New returns a generator for opt, or an error naming what is wrong with it.
func New(opt Options) (*Generator, error) {
	target, err := parseTarget(opt.Target)
	if err != nil {
		return nil, err
	}
	if !(opt.Rate > 0) || opt.Rate > MaxRate {
		return nil, fmt.Errorf("rate must be more than 0 and at most %d a second, not %v", MaxRate, opt.Rate)
	}
	switch {
	case opt.Duration < 0:
		return nil, fmt.Errorf("duration must not be negative, not %v", opt.Duration)
	case opt.MaxInFlight < 0 || opt.MaxInFlight > maxInFlight:
		return nil, fmt.Errorf("max in flight must be 0 (the default) to %d, not %d", maxInFlight, opt.MaxInFlight)
	case opt.Customers < 0 || opt.Customers > maxCustomers:
		return nil, fmt.Errorf("customers must be 0 (the default) to %d, not %d", maxCustomers, opt.Customers)
	case opt.Drain < 0:
		return nil, fmt.Errorf("drain must not be negative, not %v", opt.Drain)
	case opt.Admin.Token == "" && opt.Admin.set() && (opt.Admin.Email == "" || opt.Admin.Password == ""):
		return nil, errors.New("admin credentials need both an email and a password")
	}
	if opt.Mix == (Mix{}) {
		opt.Mix = DefaultMix
	}
	if err := opt.Mix.validate(); err != nil {
		return nil, err
	}
	if opt.MaxInFlight == 0 {
		opt.MaxInFlight = DefaultMaxInFlight
	}
	if opt.Customers == 0 {
		opt.Customers = DefaultCustomers
	}
	if opt.Drain == 0 {
		opt.Drain = DefaultDrain
	}
	hc := opt.Client
	if hc == nil {
		hc = defaultClient(opt.MaxInFlight)
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	g := &Generator{
		opt:         opt,
		target:      target,
		hc:          hc,
		runID:       hex.EncodeToString(id),
		rateChanged: make(chan struct{}, 1),
		followers:   make(chan struct{}, max(64, 4*opt.MaxInFlight)),
	}
	g.rate.Store(math.Float64bits(opt.Rate))
	g.pool.size = opt.Customers
	if opt.Admin.set() {
		g.admin = &account{email: opt.Admin.Email, password: opt.Admin.Password, token: opt.Admin.Token, fixed: opt.Admin.Token != ""}
	}
	return g, nil
}

// parseTarget checks that target is an absolute http or https URL with a
// host and nothing after its path, and returns it without a trailing slash.
func parseTarget(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("target %q is not a URL: %w", target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("target %q must be an http or https URL such as http://127.0.0.1:8080", target)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// defaultClient bounds every request and keeps enough idle connections for
// every step in flight, so that a run measures the shop, not dialling.
func defaultClient(inFlight int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the shop is reached directly, whatever the environment says
	tr.MaxIdleConns = inFlight * 2
	tr.MaxIdleConnsPerHost = inFlight * 2
	tr.ResponseHeaderTimeout = 15 * time.Second
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// SetRate changes how many shoppers arrive a second, at once, also while
// running. A rate that is not more than 0, or more than MaxRate, is ignored:
// stopping is the job of Run's context.
func (g *Generator) SetRate(perSecond float64) {
	if !(perSecond > 0) || perSecond > MaxRate {
		return
	}
	g.rate.Store(math.Float64bits(perSecond))
	select {
	case g.rateChanged <- struct{}{}:
	default: // a change is already signalled; the loop reads the newest rate
	}
}

// Rate is how many shoppers arrive a second.
func (g *Generator) Rate() float64 { return math.Float64frombits(g.rate.Load()) }

// Run signs in, learns the catalog, then sends shoppers until Duration passes
// or ctx ends, and waits (at most Drain) for the steps under way and the
// orders placed to end. It fails only when the run cannot start: the shop
// unreachable, the admin's credentials refused, no product to buy.
func (g *Generator) Run(ctx context.Context) (Report, error) {
	if !g.started.CompareAndSwap(false, true) {
		return Report{}, errors.New("a load generator runs only once")
	}
	began := time.Now()
	if err := g.prepare(ctx); err != nil {
		return Report{}, err
	}

	// Steps and followers outlive the arrivals by up to Drain, whatever
	// ended them: a stopped run still learns how its orders ended.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	arrivals := ctx
	if g.opt.Duration > 0 {
		var cancel context.CancelFunc
		arrivals, cancel = context.WithTimeout(ctx, g.opt.Duration)
		defer cancel()
	}
	progressDone := g.reportProgress()

	var wg sync.WaitGroup
	g.running.Store(true)
	start := time.Now()
	g.arrive(arrivals, work, &wg)
	arrived := time.Since(start)
	g.running.Store(false)

	g.draining.Store(true)
	drain := time.AfterFunc(g.opt.Drain, stopWork)
	wg.Wait()
	drain.Stop()
	g.draining.Store(false)
	elapsed := time.Since(start)
	progressDone()
	return g.report(arrived, elapsed, time.Since(began)-elapsed), nil
}

// arrive sends shoppers at the current rate until ctx ends. Arrivals are due
// on a schedule that no answer changes: when the loop is late it catches up,
// and an arrival that finds MaxInFlight steps under way is skipped.
func (g *Generator) arrive(ctx, work context.Context, wg *sync.WaitGroup) {
	slots := make(chan struct{}, g.opt.MaxInFlight)
	last := time.Now()
	next := last
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		if !time.Now().Before(next) {
			g.dispatch(work, slots, wg)
			last = next
			next = next.Add(interval(g.Rate()))
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-g.rateChanged:
			// The next arrival comes one new interval after the last one,
			// or now if that is already past.
			next = last.Add(interval(g.Rate()))
		}
	}
}

// interval is the gap between arrivals at rate, at most a day (a rate near
// zero would overflow a Duration).
func interval(rate float64) time.Duration {
	return time.Duration(min(float64(time.Second)/rate, float64(24*time.Hour)))
}

// dispatch starts one shopper's step, unless MaxInFlight are under way.
func (g *Generator) dispatch(work context.Context, slots chan struct{}, wg *sync.WaitGroup) {
	g.stats.arrivals.Add(1)
	select {
	case slots <- struct{}{}:
	default:
		g.stats.skipped.Add(1)
		return
	}
	wg.Go(func() {
		defer func() { <-slots }()
		g.step(work, wg)
	})
}

// reportProgress calls Progress about every second until the returned
// function is called, which also makes the last call.
func (g *Generator) reportProgress() (done func()) {
	if g.opt.Progress == nil {
		return func() {}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				g.opt.Progress(g.Snapshot())
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		g.opt.Progress(g.Snapshot())
	}
}

// Snapshot is the generator's counters at one moment.
type Snapshot struct {
	Running   bool           `json:"running"`  // shoppers are arriving
	Draining  bool           `json:"draining"` // arrivals stopped; waiting for steps and orders to end
	Rate      float64        `json:"rate"`     // arrivals a second
	Arrivals  int64          `json:"arrivals"` // shoppers due so far, skipped ones included
	Sent      int64          `json:"sent"`     // requests sent
	OK        int64          `json:"ok"`       // requests answered 2xx
	Failed    int64          `json:"failed"`   // requests answered otherwise, or not at all
	Skipped   int64          `json:"skipped"`  // arrivals dropped because MaxInFlight steps were under way
	Placed    int64          `json:"placed"`   // orders accepted (202)
	Completed int64          `json:"completed"`
	Cancelled int64          `json:"cancelled"`
	Pending   int64          `json:"pending"` // placed orders not yet seen to end
	Errors    map[string]int `json:"errors"`  // failed requests by kind: rate_limited, http_503, timeout, ...
}

// Snapshot returns the counters now; it is safe from any goroutine.
func (g *Generator) Snapshot() Snapshot {
	s := &g.stats
	placed, completed, cancelled := s.placed.Load(), s.completed.Load(), s.cancelled.Load()
	return Snapshot{
		Running:   g.running.Load(),
		Draining:  g.draining.Load(),
		Rate:      g.Rate(),
		Arrivals:  s.arrivals.Load(),
		Sent:      s.sent.Load(),
		OK:        s.ok.Load(),
		Failed:    s.failed.Load(),
		Skipped:   s.skipped.Load(),
		Placed:    placed,
		Completed: completed,
		Cancelled: cancelled,
		Pending:   max(0, placed-completed-cancelled),
		Errors:    s.errorCounts(),
	}
}
