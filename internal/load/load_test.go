package load_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/load"
)

// catalogStock is the fake shop's products: "cactus" has the least stock, so
// short-stock orders ask too much of it; "lamp" is low enough to restock.
func catalogStock() map[string]int64 {
	return map[string]int64{"cactus": 3, "lamp": 45, "mug": 1000, "tee": 1000}
}

// run starts a generator with opt against f and returns its report.
func run(t *testing.T, ctx context.Context, opt load.Options) (*load.Generator, load.Report) {
	t.Helper()
	g, err := load.New(opt)
	if err != nil {
		t.Fatalf("New(%+v): %v", opt, err)
	}
	rep, err := g.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return g, rep
}

func TestNewRefusesBadOptions(t *testing.T) {
	good := load.Options{Target: "http://127.0.0.1:8080", Rate: 10}
	for _, tc := range []struct {
		name string
		edit func(*load.Options)
	}{
		{"no target", func(o *load.Options) { o.Target = "" }},
		{"not http", func(o *load.Options) { o.Target = "ftp://127.0.0.1:8080" }},
		{"no host", func(o *load.Options) { o.Target = "http://" }},
		{"relative", func(o *load.Options) { o.Target = "127.0.0.1:8080" }},
		{"a query", func(o *load.Options) { o.Target = "http://127.0.0.1:8080/?x=1" }},
		{"zero rate", func(o *load.Options) { o.Rate = 0 }},
		{"negative rate", func(o *load.Options) { o.Rate = -5 }},
		{"NaN rate", func(o *load.Options) { o.Rate = math.NaN() }},
		{"infinite rate", func(o *load.Options) { o.Rate = math.Inf(1) }},
		{"rate over the bound", func(o *load.Options) { o.Rate = load.MaxRate + 1 }},
		{"negative duration", func(o *load.Options) { o.Duration = -time.Second }},
		{"negative in flight", func(o *load.Options) { o.MaxInFlight = -1 }},
		{"negative customers", func(o *load.Options) { o.Customers = -1 }},
		{"negative drain", func(o *load.Options) { o.Drain = -time.Second }},
		{"admin email alone", func(o *load.Options) { o.Admin = load.Credentials{Email: fakeAdmin} }},
		{"admin password alone", func(o *load.Options) { o.Admin = load.Credentials{Password: "x"} }},
		{"negative weight", func(o *load.Options) { o.Mix = load.Mix{Browse: 1, Order: -1} }},
		{"no step weighs", func(o *load.Options) { o.Mix = load.Mix{Declined: 0.5} }},
		{"order fractions over 1", func(o *load.Options) { o.Mix = load.Mix{Order: 1, Declined: 0.6, ShortStock: 0.5} }},
		{"NaN fraction", func(o *load.Options) { o.Mix = load.Mix{Order: 1, Declined: math.NaN()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := good
			tc.edit(&opt)
			if g, err := load.New(opt); err == nil {
				t.Errorf("New(%+v) = %v, nil; want an error", opt, g)
			}
		})
	}
	if _, err := load.New(good); err != nil {
		t.Errorf("New(%+v): %v; want it accepted", good, err)
	}
	if _, err := load.New(load.Options{Target: "https://shop.example.com/", Rate: 0.5, Admin: load.Credentials{Token: "t"}}); err != nil {
		t.Errorf("an https target with an admin token refused: %v", err)
	}
}

// TestArrivalsAreOpenLoop holds every shopper's answer back far longer than
// the gap between arrivals: shoppers keep arriving on schedule all the
// same, so that many are waiting on the shop at once.
func TestArrivalsAreOpenLoop(t *testing.T) {
	f := newFakeShop(t, catalogStock())
	f.slow.Store(int64(2 * time.Second))
	_, rep := run(t, t.Context(), load.Options{Target: f.srv.URL, Rate: 40, Duration: time.Second, Mix: load.Mix{Browse: 1}, MaxInFlight: 1000})

	// 40 arrivals are due in the second; a closed loop would have made
	// one per worker, each waiting 2 s for its answer.
	if rep.Arrivals < 30 || rep.Arrivals > 50 {
		t.Errorf("arrivals = %d, want about 40 (rate 40/s for 1s)", rep.Arrivals)
	}
	if got := f.maxInFlight.Load(); got < 30 {
		t.Errorf("at most %d shoppers waited on the shop at once; want about 40, the arrivals of the whole run", got)
	}
	if rep.Skipped != 0 {
		t.Errorf("skipped = %d, want 0 under MaxInFlight 1000", rep.Skipped)
	}
	if browse := rep.LatencyMS["browse_catalog"].Count + rep.LatencyMS["view_product"].Count + rep.LatencyMS["view_product_v2"].Count; browse != rep.Arrivals+1 {
		t.Errorf("browse requests answered = %d, want one per arrival (%d) and the setup's look at the catalog", browse, rep.Arrivals)
	}
}

// TestMaxInFlightSkipsArrivals: over the cap an arrival is dropped and
// counted, never queued.
func TestMaxInFlightSkipsArrivals(t *testing.T) {
	f := newFakeShop(t, catalogStock())
	f.slow.Store(int64(1500 * time.Millisecond))
	_, rep := run(t, t.Context(), load.Options{Target: f.srv.URL, Rate: 50, Duration: time.Second, Mix: load.Mix{Browse: 1}, MaxInFlight: 5})

	if got := f.maxInFlight.Load(); got > 5 {
		t.Errorf("%d shoppers waited on the shop at once, over MaxInFlight 5", got)
	}
	if rep.Skipped < 20 {
		t.Errorf("skipped = %d of %d arrivals; with 5 steps of 1.5 s in flight, most of the 50 arrivals should be", rep.Skipped, rep.Arrivals)
	}
	if ran := rep.Arrivals - rep.Skipped; ran > 5 {
		t.Errorf("%d arrivals ran a step (of %d, %d skipped); want at most 5", ran, rep.Arrivals, rep.Skipped)
	}
}

func TestSetRate(t *testing.T) {
	f := newFakeShop(t, catalogStock())
	g, err := load.New(load.Options{Target: f.srv.URL, Rate: 1, Mix: load.Mix{Browse: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan load.Report, 1)
	go func() {
		rep, err := g.Run(ctx)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- rep
	}()
	for !g.Snapshot().Running {
		time.Sleep(10 * time.Millisecond)
	}

	arrivalsOver := func(d time.Duration) int64 {
		before := g.Snapshot().Arrivals
		time.Sleep(d)
		return g.Snapshot().Arrivals - before
	}
	g.SetRate(400)
	if got := g.Snapshot().Rate; got != 400 {
		t.Errorf("rate after SetRate(400) = %v", got)
	}
	if n := arrivalsOver(time.Second); n < 200 {
		t.Errorf("%d arrivals in a second at 400/s; want about 400", n)
	}
	for _, bad := range []float64{0, -1, math.NaN(), load.MaxRate * 2} {
		g.SetRate(bad)
		if got := g.Snapshot().Rate; got != 400 {
			t.Errorf("SetRate(%v) changed the rate to %v; want it ignored", bad, got)
		}
	}
	g.SetRate(2)
	time.Sleep(100 * time.Millisecond) // arrivals already under way at 400/s
	if n := arrivalsOver(time.Second); n > 5 {
		t.Errorf("%d arrivals in a second at 2/s", n)
	}
	cancel()
	rep := <-done
	if rep.Rate != 2 {
		t.Errorf("report rate = %v, want the last one set, 2", rep.Rate)
	}
	if _, err := g.Run(t.Context()); err == nil {
		t.Error("a second Run succeeded; a generator runs once")
	}
}

// TestRunFollowsEveryOrder checks the counts of a whole run against the
// shop's: every request counted once, every order followed to the end the
// shop gave it, each kind of order ending the way it should, and stock
// topped up without ever making a short-stock order fit.
func TestRunFollowsEveryOrder(t *testing.T) {
	f := newFakeShop(t, catalogStock())
	var progress []load.Snapshot
	_, rep := run(t, t.Context(), load.Options{
		Target: f.srv.URL, Rate: 60, Duration: 1500 * time.Millisecond,
		Customers: 20,
		Admin:     load.Credentials{Email: fakeAdmin, Password: fakePassword},
		Mix:       load.Mix{Stock: 1, Order: 2, Declined: 0.2, ShortStock: 0.2},
		Progress:  func(s load.Snapshot) { progress = append(progress, s) },
	})

	f.counted.Lock()
	requests, ok := f.requests, f.byStatus[200]+f.byStatus[201]+f.byStatus[202]
	f.counted.Unlock()
	f.mu.Lock()
	restocks, maxCactus := f.restocks, f.maxSet["cactus"]
	f.mu.Unlock()
	if rep.Requests != int64(requests) || rep.OK != int64(ok) || rep.Failed != 0 {
		t.Errorf("report: %d requests, %d ok, %d failed; the shop answered %d, %d of them 2xx",
			rep.Requests, rep.OK, rep.Failed, requests, ok)
	}
	ends := f.ends()
	if rep.OrdersPlaced == 0 || rep.OrdersPlaced != int64(ends["COMPLETED"]+ends["CANCELLED"]) {
		t.Errorf("orders placed = %d; the shop took %v", rep.OrdersPlaced, ends)
	}
	if rep.CheckoutsCompleted != int64(ends["COMPLETED"]) || rep.Cancelled != int64(ends["CANCELLED"]) || rep.Pending != 0 {
		t.Errorf("completed %d, cancelled %d, pending %d; the shop ended %v", rep.CheckoutsCompleted, rep.Cancelled, rep.Pending, ends)
	}
	for _, want := range []string{"good:COMPLETED", "declined:CANCELLED", "short_stock:CANCELLED"} {
		if rep.Outcomes[want] == 0 {
			t.Errorf("no %s order in %v", want, rep.Outcomes)
		}
	}
	if rep.Unexpected != 0 {
		t.Errorf("unexpected = %d; outcomes %v", rep.Unexpected, rep.Outcomes)
	}
	if rep.Restocks == 0 || rep.Restocks != int64(restocks) {
		t.Errorf("restocks = %d, the shop saw %d; the lamp (45, under the low mark) should have been topped up", rep.Restocks, restocks)
	}
	if maxCactus >= 1000 {
		t.Errorf("the short-stock product was restocked to %d, enough for a short-stock order", maxCactus)
	}
	if c := rep.LatencyMS["checkout"]; c.Count != rep.OrdersPlaced || c.P50 != 42 || c.Max != 42 {
		t.Errorf("checkout latency = %+v; want %d samples of 42 ms, the orders' own updated_at - created_at", c, rep.OrdersPlaced)
	}
	if rep.LatencyMS["place_order"].Count != rep.OrdersPlaced {
		t.Errorf("place_order latency has %d samples for %d orders", rep.LatencyMS["place_order"].Count, rep.OrdersPlaced)
	}
	if rep.ThroughputRPS <= 0 || rep.CompletedPerS <= 0 {
		t.Errorf("throughput %v/s, completed %v/s; want both above 0", rep.ThroughputRPS, rep.CompletedPerS)
	}
	if len(progress) == 0 {
		t.Fatal("Progress was never called")
	}
	if last := progress[len(progress)-1]; last.Running || last.Draining || last.Placed != rep.OrdersPlaced {
		t.Errorf("last progress = %+v; want it stopped, with the report's %d orders", last, rep.OrdersPlaced)
	}
}

// TestOrdersAloneKeepStockInStock: a run of nothing but good orders checks
// no stock, yet tops it up as its orders take it, so no good order is
// cancelled for short stock.
func TestOrdersAloneKeepStockInStock(t *testing.T) {
	f := newFakeShop(t, map[string]int64{"cactus": 3, "lamp": 160, "mug": 160, "tee": 160})
	_, rep := run(t, t.Context(), load.Options{
		Target: f.srv.URL, Rate: 200, Duration: 1500 * time.Millisecond,
		Customers: 20,
		Admin:     load.Credentials{Email: fakeAdmin, Password: fakePassword},
		Mix:       load.Mix{Order: 1},
	})
	if rep.OrdersPlaced < 200 || rep.Restocks == 0 {
		t.Fatalf("%d orders placed, %d restocks; want a run that takes more than the stock there was", rep.OrdersPlaced, rep.Restocks)
	}
	if rep.Outcomes["good:CANCELLED"] != 0 || rep.Unexpected != 0 {
		t.Errorf("outcomes %v, %d unexpected: good orders found the stock gone", rep.Outcomes, rep.Unexpected)
	}
}

// Old-shop steps read a customer's profile and orders through the
// monolith's API, signed in like any other step.
func TestLegacyStepsUseTheOldAPI(t *testing.T) {
	f := newFakeShop(t, catalogStock())
	_, rep := run(t, t.Context(), load.Options{
		Target: f.srv.URL, Rate: 40, Duration: 500 * time.Millisecond, Customers: 5,
		Mix: load.Mix{Legacy: 1},
	})
	if rep.Failed != 0 || rep.LatencyMS["legacy_profile"].Count == 0 || rep.LatencyMS["legacy_orders"].Count == 0 {
		t.Errorf("report: %d failed, latencies %v; want old-shop profile and orders reads, none failed", rep.Failed, rep.LatencyMS)
	}
}

// TestRateLimitedIsCounted: a 429 is an error of its own kind, and nothing
// is retried for it.
func TestRateLimitedIsCounted(t *testing.T) {
	f := newFakeShop(t, catalogStock())
	f.limited.Store(true)
	_, rep := run(t, t.Context(), load.Options{Target: f.srv.URL, Rate: 50, Duration: time.Second, Mix: load.Mix{Browse: 1}})

	f.counted.Lock()
	limited := f.byStatus[429]
	f.counted.Unlock()
	if limited == 0 || rep.Errors["rate_limited"] != limited {
		t.Errorf("errors = %v; the shop answered 429 %d times", rep.Errors, limited)
	}
	if rep.Failed != int64(limited) {
		t.Errorf("failed = %d, want the %d answers 429", rep.Failed, limited)
	}
}

func TestRunRefusesAShopItCannotUse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stock map[string]int64
		admin load.Credentials
	}{
		{"no product", map[string]int64{}, load.Credentials{}},
		{"wrong admin password", catalogStock(), load.Credentials{Email: fakeAdmin, Password: "wrong-password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeShop(t, tc.stock)
			g, err := load.New(load.Options{Target: f.srv.URL, Rate: 10, Duration: time.Second, Admin: tc.admin})
			if err != nil {
				t.Fatal(err)
			}
			if rep, err := g.Run(t.Context()); err == nil {
				t.Errorf("Run = %+v, nil; want an error", rep)
			}
		})
	}
	g, err := load.New(load.Options{Target: "http://127.0.0.1:1", Rate: 10, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(t.Context()); err == nil {
		t.Error("Run against a closed port succeeded")
	}
}
