package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/load"
)

// loadUsage explains `microshop load`; its flags follow it.
const loadUsage = `Usage: microshop load [--target URL] [--rate N] [--duration D] [--json]
                      [--admin-email E] [--admin-password P]

Sends shoppers to a running shop through its gateway, at a steady rate that
slow answers do not slow (an open loop): they sign up, browse, check stock
and check out, some with the declined card or more than the stock left, and
every order is followed to its end. Progress goes to stderr; the report to
stdout, and with --json as one JSON object on its last line.

With the admin's password (better from MICROSHOP_ADMIN_PASSWORD than from a
flag, which other users can see), products that run low are restocked.
`

// loadTraffic is `microshop load`: it runs the load generator against a
// shop and reports what it measured.
func loadTraffic(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := load.DefaultMix
	var (
		target    = fs.String("target", "http://127.0.0.1:8080", "the gateway's base URL")
		rate      = fs.Float64("rate", 10, "shoppers arriving a second")
		duration  = fs.Duration("duration", 30*time.Second, "how long shoppers arrive; 0 means until interrupted")
		customers = fs.Int("customers", load.DefaultCustomers, "customers to sign up and shop as")
		inFlight  = fs.Int("max-in-flight", load.DefaultMaxInFlight, "shopper steps under way at once; arrivals over it are skipped")
		drain     = fs.Duration("drain", load.DefaultDrain, "how long to wait, after the last arrival, for placed orders to end")
		email     = fs.String("admin-email", or(getenv("MICROSHOP_ADMIN_EMAIL"), "admin@microshop.local"), "the admin's email, for restocking (default $MICROSHOP_ADMIN_EMAIL, else the shop's default)")
		password  = fs.String("admin-password", "", "the admin's password, for restocking (default $MICROSHOP_ADMIN_PASSWORD)")
		asJSON    = fs.Bool("json", false, "end the report with one line of JSON")
		mix       load.Mix
	)
	fs.Float64Var(&mix.Browse, "browse", d.Browse, "weight of browsing steps")
	fs.Float64Var(&mix.Stock, "stock", d.Stock, "weight of stock checks")
	fs.Float64Var(&mix.Order, "order", d.Order, "weight of checkouts")
	fs.Float64Var(&mix.Legacy, "legacy", d.Legacy, "weight of old-shop steps: a profile or the orders read through the monolith's API (/profile, /orders)")
	fs.Float64Var(&mix.Declined, "declined", d.Declined, "fraction of orders paid with the declined card")
	fs.Float64Var(&mix.ShortStock, "short-stock", d.ShortStock, "fraction of orders for more than the stock left")
	fs.Usage = func() {
		fmt.Fprint(stderr, loadUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	var admin load.Credentials
	if pw := or(*password, getenv("MICROSHOP_ADMIN_PASSWORD")); pw != "" {
		admin = load.Credentials{Email: *email, Password: pw}
	}
	started := time.Now()
	progress := plainProgress(stderr, started)
	if isTerminal(stderr) {
		progress = barProgress(stderr, started, *duration)
	}
	gen, err := load.New(load.Options{
		Target: *target, Rate: *rate, Duration: *duration, MaxInFlight: *inFlight,
		Customers: *customers, Admin: admin, Mix: mix, Drain: *drain, Progress: progress,
	})
	if err != nil {
		fs.Usage()
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	rep, err := gen.Run(ctx)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	writeReport(stdout, rep)
	if *asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("encoding the report: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return nil
}

func or(s, otherwise string) string {
	if s != "" {
		return s
	}
	return otherwise
}

// plainProgress writes one line a second, for a log or a pipe.
func plainProgress(w io.Writer, started time.Time) func(load.Snapshot) {
	return func(s load.Snapshot) {
		fmt.Fprintf(w, "%5.0fs %s\n", time.Since(started).Seconds(), progressLine(s))
	}
}

// barProgress redraws one line a second on a terminal: a bar when the run
// has a duration, and the counters.
func barProgress(w io.Writer, started time.Time, duration time.Duration) func(load.Snapshot) {
	const width = 24
	return func(s load.Snapshot) {
		elapsed := time.Since(started)
		head := fmt.Sprintf("%4.0fs", elapsed.Seconds())
		if duration > 0 {
			done := min(float64(elapsed)/float64(duration), 1)
			if !s.Running {
				done = 1
			}
			n := int(done * width)
			head = fmt.Sprintf("[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat("-", width-n), done*100, head)
		}
		fmt.Fprintf(w, "\r%s %s\033[K", head, progressLine(s))
		if !s.Running && !s.Draining {
			fmt.Fprintln(w)
		}
	}
}

func progressLine(s load.Snapshot) string {
	state := "running"
	switch {
	case s.Draining:
		state = "waiting for orders to end"
	case !s.Running:
		state = "done"
	}
	return fmt.Sprintf("%g/s  sent %d  ok %d  failed %d  skipped %d  orders %d: %d completed, %d cancelled, %d pending  (%s)",
		s.Rate, s.Sent, s.OK, s.Failed, s.Skipped, s.Placed, s.Completed, s.Cancelled, s.Pending, state)
}

// writeReport writes rep for a person to read.
func writeReport(w io.Writer, rep load.Report) {
	fmt.Fprintf(w, "load on %s: %.1fs of arrivals at %g/s, then %.1fs for orders to end\n",
		rep.Target, rep.DurationS, rep.Rate, rep.DrainS)
	fmt.Fprintf(w, "  arrivals   %d, %d of them skipped at the in-flight cap\n", rep.Arrivals, rep.Skipped)
	fmt.Fprintf(w, "  requests   %d: %d ok, %d failed; %.1f/s\n", rep.Requests, rep.OK, rep.Failed, rep.ThroughputRPS)
	fmt.Fprintf(w, "  customers  %d signed up; %d restocks\n", rep.Customers, rep.Restocks)
	fmt.Fprintf(w, "  orders     %d placed: %d completed (%.1f/s), %d cancelled, %d pending; %d ended otherwise than meant\n",
		rep.OrdersPlaced, rep.CheckoutsCompleted, rep.CompletedPerS, rep.Cancelled, rep.Pending, rep.Unexpected)
	fmt.Fprintf(w, "  outcomes   %s\n", counts(rep.Outcomes))
	fmt.Fprintf(w, "  errors     %s\n", counts(rep.Errors))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  latency (ms)\tp50\tp90\tp99\tmax\tcount\t")
	for _, op := range latencyOrder(rep.LatencyMS) {
		l := rep.LatencyMS[op]
		fmt.Fprintf(tw, "  %s\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", op, l.P50, l.P90, l.P99, l.Max, l.Count)
	}
	_ = tw.Flush()
}

// latencyOrder lists the checkout's two measures first, then the rest by
// name.
func latencyOrder(m map[string]load.Latency) []string {
	first := []string{"checkout", "place_order"}
	var ops []string
	for _, op := range first {
		if _, ok := m[op]; ok {
			ops = append(ops, op)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(first, op) {
			ops = append(ops, op)
		}
	}
	return ops
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
