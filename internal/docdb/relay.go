package docdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/telemetry"
)

// LeaseCollection keeps one relay lease per collection with an outbox,
// under the collection's name.
const LeaseCollection = "outbox_relay"

// Relay publishes the events the documents of one collection keep, and then
// removes them from the document. It behaves as outbox.Relay does on SQL:
// several relays may run on one database, and a lease (a document updated
// only by its holder or once expired) makes one of them the publisher at a
// time; a document's events go out in the order they were added, and each
// once, except when a relay dies between publishing an event and removing
// it, or loses its lease in the middle of a publish: then the next publisher
// sends it again, with the same id, and the consumers' inbox drops the copy.
// Published events are removed at once, so Options.Retention and
// PurgeEvery do not apply.
type Relay struct {
	db         *DB
	collection string
	pub        bus.Publisher
	log        *slog.Logger
	opts       outbox.Options
	wake       chan struct{}

	leasedAt  time.Time // when this relay last took or renewed the lease; Run's goroutine only
	published prometheus.Counter
	failures  prometheus.Counter
	backlog   *backlogCollector
}

// NewRelay returns a relay that publishes the outbox of db's collection to
// pub, logging to log (nil discards). opts are outbox.Relay's, defaulted
// the same way. It does nothing until Run.
func NewRelay(db *DB, collection string, pub bus.Publisher, log *slog.Logger, opts outbox.Options) *Relay {
	opts = opts.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{}
	if opts.Service != "" {
		labels["service"] = opts.Service
	}
	return &Relay{
		db: db, collection: collection, pub: pub, log: log, opts: opts,
		wake: make(chan struct{}, 1),
		// The same metrics as outbox.Relay's, so dashboards and the
		// console read every service alike.
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total", Help: "Events the outbox relay published and marked.", ConstLabels: labels,
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_errors_total", Help: "Failed attempts to publish an outbox event.", ConstLabels: labels,
		}),
		backlog: &backlogCollector{
			db: db, collection: collection, log: log,
			count: prometheus.NewDesc("outbox_backlog", "Committed events not yet published.", nil, labels),
			lag:   prometheus.NewDesc("outbox_relay_lag_seconds", "How long the oldest unpublished event has waited.", nil, labels),
		},
	}
}

// Wake asks the relay to look at the outbox now rather than at its next
// poll; DB.OnCommit(relay.Wake) does it after every write with events. It
// never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending; one is enough
	}
}

// Backlog reports what the relay has yet to publish.
func (r *Relay) Backlog(ctx context.Context) (outbox.Backlog, error) {
	return Pending(ctx, r.db, r.collection)
}

// Collectors returns the relay's metrics for the service's registry: the
// backlog and the relay lag (measured when scraped), and counters of
// published events and of failed publishes.
func (r *Relay) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.backlog, r.published, r.failures}
}

// failedPublish is the error of a publish that failed: which event, and why.
type failedPublish struct {
	event event.Event
	err   error
}

func (f failedPublish) Error() string { return "publishing event " + f.event.ID + ": " + f.err.Error() }
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
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		full, err := r.pass(ctx)
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
			wake = nil // a write must not cut a backoff short, or a broker outage turns into a busy loop
			lctx := ctx
			if f := (failedPublish{}); errors.As(err, &f) {
				lctx = telemetry.ContextOf(ctx, f.event.TraceParent) // the line is in the trace of the event it could not send
			}
			r.log.WarnContext(lctx, "outbox relay: pass failed; retrying", slog.Any("err", err),
				slog.Int("failures", failures), slog.Duration("retry_in", wait))
		case full:
			failures, wait = 0, 0 // there may be more: carry on at once
		default:
			failures = 0
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
// MinBackoff up to MaxBackoff, with jitter.
func (r *Relay) backoff(n int) time.Duration {
	d := r.opts.MaxBackoff
	if n < 31 {
		d = min(r.opts.MinBackoff<<(n-1), r.opts.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// pending is a document with unpublished events, as the relay reads it.
type pending struct {
	ID     any        `bson:"_id"`
	Outbox []bson.Raw `bson:"outbox"`
}

// pass publishes the events of one batch of documents, oldest first, if
// this relay holds the lease, and reports whether the batch was full.
func (r *Relay) pass(ctx context.Context) (bool, error) {
	leader, err := r.acquire(ctx)
	if err != nil || !leader {
		return false, err
	}
	docs, err := r.unpublished(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range docs {
		if len(d.Outbox) == 0 {
			// A marker left on an empty outbox (a removal cut between its
			// two steps) would read as an event waiting forever.
			if err := r.clearMarker(ctx, d.ID); err != nil {
				return false, err
			}
			continue
		}
		for _, raw := range d.Outbox {
			if time.Since(r.leasedAt) > r.opts.Lease/2 {
				if leader, err := r.acquire(ctx); err != nil || !leader {
					return false, err
				}
			}
			if err := r.publish(ctx, d.ID, raw); err != nil {
				return false, err
			}
		}
	}
	return len(docs) == r.opts.Batch, nil
}

// unpublished reads the next batch of documents with events, those whose
// oldest event is oldest first.
func (r *Relay) unpublished(ctx context.Context) ([]pending, error) {
	cur, err := r.db.Collection(r.collection).Find(ctx,
		bson.D{{Key: SinceField, Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetSort(bson.D{{Key: SinceField, Value: 1}, {Key: "_id", Value: 1}}).
			SetLimit(int64(r.opts.Batch)).
			SetProjection(bson.D{{Key: OutboxField, Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading the outbox of %s: %w", r.collection, err)
	}
	var docs []pending
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading the outbox of %s: %w", r.collection, err)
	}
	return docs, nil
}

// publish sends one event, waits for the broker's acknowledgement, and
// removes it from its document.
func (r *Relay) publish(ctx context.Context, docID any, raw bson.Raw) error {
	var (
		en entry
		e  event.Event
	)
	if err := bson.Unmarshal(raw, &en); err != nil {
		// Events wrote it; skipping it would lose an event, so the relay
		// stops here, loudly, until someone repairs the document.
		return fmt.Errorf("decoding an outbox entry of %s %v: %w", r.collection, docID, err)
	}
	if err := json.Unmarshal([]byte(en.Envelope), &e); err != nil {
		return fmt.Errorf("decoding outbox event %s of %s %v: %w", en.ID, r.collection, docID, err)
	}
	if f := r.opts.BeforePublish; f != nil {
		if err := f(e); err != nil {
			return crash{err}
		}
	}
	pctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
	err := r.pub.Publish(pctx, e)
	cancel()
	if err != nil {
		r.failures.Inc()
		return failedPublish{event: e, err: err}
	}
	// Counted once the broker has it, before it leaves the document: what
	// a reader of the metric sees drained has been counted. (An event whose
	// removal fails is published, and counted, again.)
	r.published.Inc()
	if f := r.opts.AfterPublish; f != nil {
		if err := f(e); err != nil {
			return crash{err}
		}
	}
	if err := r.remove(ctx, docID, raw); err != nil {
		return fmt.Errorf("removing published event %s: %w", e.ID, err)
	}
	r.log.DebugContext(telemetry.ContextOf(ctx, e.TraceParent), "event published",
		slog.String("event_id", e.ID), slog.String("type", e.Type), slog.String("topic", e.Topic))
	return nil
}

// remove takes a published event out of its document, by its exact stored
// value ($pullAll compares whole values, on MongoDB and on FerretDB alike),
// and moves the document's SinceField to its next event, or drops it when
// none is left. Events added meanwhile stay: the field is dropped only from
// a document whose outbox is empty at that moment.
func (r *Relay) remove(ctx context.Context, docID any, raw bson.Raw) error {
	// A removal, once begun, runs to its end: a relay stopped between its
	// two steps would leave the document's marker behind.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	coll := r.db.Collection(r.collection)
	return r.db.Exclusive(func() error {
		var after struct {
			Outbox []entry `bson:"outbox"`
		}
		err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: docID}},
			bson.D{{Key: "$pullAll", Value: bson.D{{Key: OutboxField, Value: bson.A{raw}}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&after)
		if err != nil {
			return err
		}
		if len(after.Outbox) > 0 {
			_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: docID}},
				bson.D{{Key: "$set", Value: bson.D{{Key: SinceField, Value: after.Outbox[0].AddedAt}}}})
			return err
		}
		return r.unmark(ctx, docID)
	})
}

// removeTimeout bounds a removal that outlives the relay's stop.
const removeTimeout = 5 * time.Second

// unmark drops the marker of a document whose outbox is empty; a
// document that got an event meanwhile keeps it. r.db's lock is held.
func (r *Relay) unmark(ctx context.Context, docID any) error {
	_, err := r.db.Collection(r.collection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: docID}, {Key: OutboxField, Value: bson.D{{Key: "$size", Value: 0}}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: SinceField, Value: ""}}}})
	return err
}

// clearMarker drops a marker found on an empty outbox.
func (r *Relay) clearMarker(ctx context.Context, docID any) error {
	return r.db.Exclusive(func() error { return r.unmark(ctx, docID) })
}

// acquire takes the lease if it is free or expired, or renews it if this
// relay holds it, and reports whether this relay holds it now. The first
// relay ever creates the lease; the unique _id lets only one do so.
func (r *Relay) acquire(ctx context.Context) (bool, error) {
	now := time.Now().UTC()
	leases := r.db.Collection(LeaseCollection)
	held := bson.D{{Key: "holder", Value: r.opts.Holder}, {Key: "expires_at", Value: now.Add(r.opts.Lease)}}
	leader := false
	err := r.db.Exclusive(func() error {
		res, err := leases.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: r.collection}, {Key: "$or", Value: bson.A{
				bson.D{{Key: "holder", Value: r.opts.Holder}},
				bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lte", Value: now}}}},
			}}},
			bson.D{{Key: "$set", Value: held}})
		if err != nil {
			return err
		}
		if res.MatchedCount == 1 {
			leader = true
			return nil
		}
		_, err = leases.InsertOne(ctx, append(bson.D{{Key: "_id", Value: r.collection}}, held...))
		switch {
		case IsDuplicate(err):
			return nil // another relay holds it
		case err != nil:
			return err
		}
		leader = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("taking the relay lease of %s: %w", r.collection, err)
	}
	if leader {
		r.leasedAt = now
	}
	return leader, nil
}

// release gives the lease up if this relay holds it, so that a standby
// relay need not wait for it to expire.
func (r *Relay) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.db.Exclusive(func() error {
		_, err := r.db.Collection(LeaseCollection).UpdateOne(ctx,
			bson.D{{Key: "_id", Value: r.collection}, {Key: "holder", Value: r.opts.Holder}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "holder", Value: ""}, {Key: "expires_at", Value: time.Unix(0, 0).UTC()}}}})
		return err
	})
	if err != nil && !errors.Is(err, mongo.ErrClientDisconnected) {
		r.log.Warn("outbox relay: releasing the lease failed; another relay waits for it to expire", slog.Any("err", err))
	}
}

// backlogCollector measures the outbox when scraped.
type backlogCollector struct {
	db         *DB
	collection string
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
	b, err := Pending(ctx, c.db, c.collection)
	if err != nil {
		// A scrape goes on without these two rather than failing whole;
		// the database's own health check says why.
		c.log.Warn("outbox: measuring the backlog failed", slog.Any("err", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(b.Count))
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, b.Lag(time.Now()).Seconds())
}
