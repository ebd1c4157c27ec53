package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/telemetry"
)

// Options tune a Relay. The zero value of each field means its default.
type Options struct {
	// Service names the service in the metrics' "service" label.
	Service string
	// Holder names this relay in the lease; a fresh uuid by default.
	Holder string
	// Batch is how many events one pass reads (default 100).
	Batch int
	// Poll is how long the relay waits for a wake-up before it looks
	// again anyway (default 1s); a standby relay also looks this often
	// whether the lease is free.
	Poll time.Duration
	// Lease is how long the relay may publish without renewing its lease
	// (default 15s). A relay that dies keeps the others waiting this long.
	Lease time.Duration
	// PublishTimeout bounds one publish, acknowledgement included (default 10s).
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered, doubling wait after
	// failed passes (defaults 100ms and 10s). The relay never gives up an
	// event: it waits and tries the same event again.
	MinBackoff, MaxBackoff time.Duration
	// Retention is how long published events are kept before the relay
	// purges them (default 72h; negative keeps them for ever).
	Retention time.Duration
	// PurgeEvery is how often the relay purges (default 1h).
	PurgeEvery time.Duration

	// BeforePublish and AfterPublish are failpoints for tests: called
	// with each event just before it is published, and after the broker
	// has acknowledged it but before it is marked published. A non-nil
	// error stops the relay at once, as a crash there would: Run returns
	// that error, the event stays unmarked and the lease stays held.
	BeforePublish func(event.Event) error
	AfterPublish  func(event.Event) error
}

// WithDefaults fills in what o leaves unset. Every relay of the shop (the
// SQL outbox's here, the document outbox's in package docdb) runs on them.
func (o Options) WithDefaults() Options {
	if o.Holder == "" {
		o.Holder = uuid.Must(uuid.NewV7()).String()
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 15 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.Retention == 0 {
		o.Retention = 72 * time.Hour
	}
	if o.PurgeEvery <= 0 {
		o.PurgeEvery = time.Hour
	}
	return o
}

// Relay publishes what services commit to their outbox. Several relays may
// run on one database (one per instance of a service): a lease makes one of
// them the publisher at a time and the others stand by, so events go out in
// the order they were committed and each once, except when a relay dies
// between publishing an event and marking it, or loses its lease in the
// middle of a publish; then the next publisher sends it again, with the
// same id, and the consumers' inbox drops the copy.
type Relay struct {
	db   *sqldb.DB
	pub  bus.Publisher
	log  *slog.Logger
	opts Options
	wake chan struct{}

	leasedAt  time.Time // when this relay last took or renewed the lease; Run's goroutine only
	published prometheus.Counter
	failures  prometheus.Counter
	backlog   *backlogCollector
}

// NewRelay returns a relay that publishes db's outbox to pub, logging to log
// (nil discards). It does nothing until Run.
func NewRelay(db *sqldb.DB, pub bus.Publisher, log *slog.Logger, opts Options) *Relay {
	opts = opts.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{}
	if opts.Service != "" {
		labels["service"] = opts.Service
	}
	r := &Relay{
		db: db, pub: pub, log: log, opts: opts,
		wake: make(chan struct{}, 1),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total", Help: "Events the outbox relay published and marked.", ConstLabels: labels,
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_errors_total", Help: "Failed attempts to publish an outbox event.", ConstLabels: labels,
		}),
	}
	r.backlog = &backlogCollector{
		db: db, log: log,
		count: prometheus.NewDesc("outbox_backlog", "Committed events not yet published.", nil, labels),
		lag:   prometheus.NewDesc("outbox_relay_lag_seconds", "How long the oldest unpublished event has waited.", nil, labels),
	}
	return r
}

// Wake asks the relay to look at the outbox now rather than at its next
// poll; call it after committing events, for low latency. It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending; one is enough
	}
}

// Backlog reports what the relay has yet to publish.
func (r *Relay) Backlog(ctx context.Context) (Backlog, error) { return Pending(ctx, r.db) }

// Collectors returns the relay's metrics for the service's registry: the
// backlog and the relay lag (measured when scraped, so they tell the truth
// even when no relay runs), and counters of published events and of failed
// publishes.
func (r *Relay) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.backlog, r.published, r.failures}
}

// failedPublish is the error of a publish that failed: which event, and why.
type failedPublish struct {
	event event.Event
	err   error
}

func (f failedPublish) Error() string {
	return "publishing event " + f.event.ID + ": " + f.err.Error()
}
func (f failedPublish) Unwrap() error { return f.err }

// crash is a failpoint's error: the relay stops as if the process had died.
type crash struct{ err error }

func (c crash) Error() string { return "outbox relay stopped by a failpoint: " + c.err.Error() }
func (c crash) Unwrap() error { return c.err }

// Run publishes the outbox until ctx ends, then gives up its lease so that
// another relay can take over at once, and returns nil. It returns early
// only with a failpoint's error. Failures to reach the database or the
// broker are logged and retried after a backoff, never skipped.
func (r *Relay) Run(ctx context.Context) error {
	failures := 0
	nextPurge := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		n, leader, err := r.pass(ctx)
		if c := (crash{}); errors.As(err, &c) {
			return err
		}
		if ctx.Err() != nil {
			r.release()
			return nil
		}
		wait, wake := r.opts.Poll, r.wake
		switch {
		case err != nil:
			failures++
			wait = r.backoff(failures)
			wake = nil // a commit must not cut a backoff short, or a broker outage turns into a busy loop
			lctx := ctx
			if f := (failedPublish{}); errors.As(err, &f) {
				lctx = telemetry.ContextOf(ctx, f.event.TraceParent) // the line is in the trace of the event it could not send
			}
			r.log.WarnContext(lctx, "outbox relay: pass failed; retrying", slog.Any("err", err),
				slog.Int("failures", failures), slog.Duration("retry_in", wait))
		case n == r.opts.Batch:
			failures, wait = 0, 0 // there may be more: carry on at once
		default:
			failures = 0
		}
		if leader && err == nil && r.opts.Retention > 0 && !time.Now().Before(nextPurge) {
			nextPurge = time.Now().Add(r.opts.PurgeEvery)
			if _, err := Purge(ctx, r.db, time.Now().Add(-r.opts.Retention)); err != nil {
				r.log.WarnContext(ctx, "outbox relay: purge failed", slog.Any("err", err))
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			r.release()
			return nil
		case <-wake:
		case <-timer.C:
		}
	}
}

// backoff is the wait after the n-th failed pass in a row: doubling from
// MinBackoff up to MaxBackoff, with jitter so relays of many services do not
// retry a recovering broker in step.
func (r *Relay) backoff(n int) time.Duration {
	d := r.opts.MaxBackoff
	if n < 31 {
		d = min(r.opts.MinBackoff<<(n-1), r.opts.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// pass publishes one batch if this relay holds the lease, and reports how
// many events it published and whether it was the publisher.
func (r *Relay) pass(ctx context.Context) (int, bool, error) {
	leader, err := r.acquire(ctx)
	if err != nil || !leader {
		return 0, leader, err
	}
	batch, err := r.unpublished(ctx)
	if err != nil {
		return 0, true, err
	}
	for i, row := range batch {
		if time.Since(r.leasedAt) > r.opts.Lease/2 {
			if leader, err := r.acquire(ctx); err != nil || !leader {
				return i, leader, err
			}
		}
		if err := r.publish(ctx, row); err != nil {
			return i, true, err
		}
	}
	return len(batch), true, nil
}

type row struct {
	seq   int64
	event event.Event
}

// unpublished reads the next batch, oldest first.
func (r *Relay) unpublished(ctx context.Context) ([]row, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT seq, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?`, r.opts.Batch)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var (
			rw       row
			envelope string
		)
		if err := rows.Scan(&rw.seq, &envelope); err != nil {
			return nil, fmt.Errorf("reading the outbox: %w", err)
		}
		if err := json.Unmarshal([]byte(envelope), &rw.event); err != nil {
			// Add wrote it; skipping it would lose an event, so the
			// relay stops here, loudly, until someone repairs the row.
			return nil, fmt.Errorf("decoding outbox event %d: %w", rw.seq, err)
		}
		out = append(out, rw)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	return out, nil
}

// publish sends one event, waits for the broker's acknowledgement, and
// marks the event published; a failed publish is recorded on the row.
func (r *Relay) publish(ctx context.Context, rw row) error {
	if f := r.opts.BeforePublish; f != nil {
		if err := f(rw.event); err != nil {
			return crash{err}
		}
	}
	pctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
	err := r.pub.Publish(pctx, rw.event)
	cancel()
	if err != nil {
		r.failures.Inc()
		if _, rerr := r.db.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?`,
			truncate(err.Error(), 1000), rw.seq); rerr != nil {
			err = errors.Join(err, fmt.Errorf("recording the failure: %w", rerr))
		}
		return failedPublish{event: rw.event, err: err}
	}
	if f := r.opts.AfterPublish; f != nil {
		if err := f(rw.event); err != nil {
			return crash{err}
		}
	}
	if _, err := r.db.ExecContext(ctx, `UPDATE outbox SET published_at = ?, attempts = attempts + 1, last_error = '' WHERE seq = ?`,
		sqldb.Stamp(time.Now()), rw.seq); err != nil {
		return fmt.Errorf("marking event %s published: %w", rw.event.ID, err)
	}
	r.published.Inc()
	r.log.DebugContext(telemetry.ContextOf(ctx, rw.event.TraceParent), "event published",
		slog.String("event_id", rw.event.ID), slog.String("type", rw.event.Type), slog.String("topic", rw.event.Topic))
	return nil
}

// acquire takes the lease if it is free or expired, or renews it if this
// relay holds it, and reports whether this relay holds it now.
func (r *Relay) acquire(ctx context.Context) (bool, error) {
	now := time.Now()
	res, err := r.db.ExecContext(ctx,
		`UPDATE outbox_relay SET holder = ?, expires_at = ? WHERE id = 1 AND (holder = ? OR expires_at <= ?)`,
		r.opts.Holder, now.Add(r.opts.Lease).UnixMilli(), r.opts.Holder, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("taking the relay lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("taking the relay lease: %w", err)
	}
	if n == 1 {
		r.leasedAt = now
	}
	return n == 1, nil
}

// release gives the lease up if this relay holds it, so that a standby
// relay need not wait for it to expire.
func (r *Relay) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.db.ExecContext(ctx, `UPDATE outbox_relay SET holder = '', expires_at = 0 WHERE id = 1 AND holder = ?`,
		r.opts.Holder); err != nil && !errors.Is(err, sql.ErrConnDone) {
		r.log.Warn("outbox relay: releasing the lease failed; another relay waits for it to expire", slog.Any("err", err))
	}
}

// truncate cuts s to at most n bytes, on a character boundary: MySQL
// refuses a string cut in the middle of one.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// backlogCollector measures the outbox when scraped.
type backlogCollector struct {
	db         *sqldb.DB
	log        *slog.Logger
	count, lag *prometheus.Desc
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.lag
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := Pending(ctx, c.db)
	if err != nil {
		// A scrape goes on without these two rather than failing whole;
		// the database's own health check says why.
		c.log.Warn("outbox: measuring the backlog failed", slog.Any("err", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(b.Count))
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, b.Lag(time.Now()).Seconds())
}
