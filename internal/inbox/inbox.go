// Package inbox makes event consumers idempotent and keeps what they cannot
// process: each event's id is recorded per consumer group in the transaction
// of its effect, so a redelivered or duplicated event changes nothing, and a
// delivery the broker gives up on is stored as a dead letter that an admin
// can list and replay.
//
// Its tables (inbox, dead_letters) are part of the messaging migration set
// that package outbox owns: apply them with outbox.Migrate.
package inbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/telemetry"
	"github.com/microshop/microshop/internal/web"
)

// Func applies one event. It runs with the inbox's transaction in its
// context (db.ExecContext, db.InTx and outbox.Add called with that context
// join it), so its effect commits together with the record that the event
// was applied, or neither does. Returning an error undoes both and asks the
// broker for a redelivery. It holds the database's write transaction while it
// runs, so it should not wait on other services.
type Func func(ctx context.Context, e event.Event) error

// Inbox is one service database's inbox and dead letters.
type Inbox struct {
	db  *sqldb.DB
	log *slog.Logger

	mu       sync.Mutex
	handlers map[string]Func // by consumer group, for replays

	applied     *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	waiting     *waitingCollector

	tracer trace.Tracer // nil: deliveries are not traced
}

// Trace makes every delivery a consumer span that continues the trace the
// event carries (its traceparent), so the work an event causes, and the
// events that work publishes, join the trace of the work that published it.
// Call it before Handle.
func (in *Inbox) Trace(tp trace.TracerProvider) {
	in.tracer = tp.Tracer("github.com/microshop/microshop/internal/inbox")
}

// New returns the inbox of db, whose messaging migrations must have been
// applied. service labels its metrics (empty for none); log (nil discards)
// records dead letters.
func New(db *sqldb.DB, service string, log *slog.Logger) *Inbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{}
	if service != "" {
		labels["service"] = service
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, []string{"group"})
	}
	in := &Inbox{
		db: db, log: log, handlers: map[string]Func{},
		applied:     counter("inbox_applied_total", "Events a consumer group applied."),
		duplicates:  counter("inbox_duplicates_total", "Deliveries of events a consumer group had already applied, dropped."),
		deadLetters: counter("dead_letters_total", "Deliveries a consumer group gave up on, stored as dead letters."),
	}
	in.waiting = &waitingCollector{in: in, desc: prometheus.NewDesc("dead_letters",
		"Dead letters stored and not yet replayed, by consumer group: the dead-letter queue as it is now.",
		[]string{"group"}, labels)}
	return in
}

// Collectors returns the inbox's metrics for the service's registry: the
// counters of applied, duplicate and dead-lettered deliveries, and the
// dead letters waiting now (read from the database when scraped, so it
// tells the truth across restarts and replays).
func (in *Inbox) Collectors() []prometheus.Collector {
	return []prometheus.Collector{in.applied, in.duplicates, in.deadLetters, in.waiting}
}

// Handle returns the bus handler of consumer group: each delivery runs h
// exactly once per event id, in one transaction with the record of it;
// a delivery of an event the group has applied already is acknowledged
// and changes nothing. h is also what replays the group's dead letters.
//
// A group is one consumer: Handle panics if the group has a handler
// already, because two handlers sharing one group's records would each
// take the other's events for duplicates.
func (in *Inbox) Handle(group string, h Func) bus.Handler {
	if group == "" || h == nil {
		panic("inbox: Handle needs a group and a handler")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, dup := in.handlers[group]; dup {
		panic(fmt.Sprintf("inbox: group %q already has a handler", group))
	}
	in.handlers[group] = h
	// Every group's series exist from the start, at zero, so that a rate
	// or an alert over them has something to read before the first event.
	in.applied.WithLabelValues(group)
	in.duplicates.WithLabelValues(group)
	in.deadLetters.WithLabelValues(group)
	tracer := in.tracer
	return func(ctx context.Context, d bus.Delivery) (err error) {
		if tracer != nil {
			parent := telemetry.ContextOf(ctx, d.Event.TraceParent)
			var span trace.Span
			ctx, span = tracer.Start(parent, group+" "+d.Event.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("messaging.destination.name", d.Event.Topic),
					attribute.String("messaging.message.id", d.Event.ID), attribute.Int("messaging.attempt", d.Attempt)))
			defer func() {
				if err != nil {
					span.SetStatus(codes.Error, err.Error())
				}
				span.End()
			}()
		}
		// The effect logs, through web.LoggerFrom, as the service's
		// consumer, in the delivery's trace.
		ctx = web.WithLogger(ctx, in.log)
		return in.atomic(ctx, func(ctx context.Context) error {
			return in.apply(ctx, group, d, h)
		})
	}
}

// atomic runs fn in one transaction, as the unit of work of a delivery or
// a replay, and runs what fn left for AfterCommit once, and only once, that
// transaction has committed.
func (in *Inbox) atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	after := &afterCommit{}
	err := in.db.Atomic(context.WithValue(ctx, afterCommitKey{}, after), func(ctx context.Context) error {
		after.reset() // a unit that lost a deadlock runs again: only the last run's count
		return fn(ctx)
	})
	if err != nil {
		return err
	}
	after.run()
	return nil
}

type afterCommitKey struct{}

// afterCommit holds the functions a delivery's effect left to run once its
// transaction has committed.
type afterCommit struct {
	mu  sync.Mutex
	fns []func()
}

func (a *afterCommit) add(fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fns = append(a.fns, fn)
}

func (a *afterCommit) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fns = nil
}

func (a *afterCommit) run() {
	a.mu.Lock()
	fns := a.fns
	a.fns = nil
	a.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// AfterCommit runs fn once the transaction of the delivery (or replay)
// whose effect is running in ctx has committed, and never if it rolls back:
// for what must follow an effect that stands, once, and that the database
// cannot hold, such as a metric of what the effect did. A redelivery after
// a rollback runs the effect, and so its AfterCommit, again; a duplicate
// delivery runs neither.
//
// ctx carrying no delivery, fn runs at once: the caller is not in an
// event's effect, and must call AfterCommit only after its own work has
// committed (as a request handler's store call has, once it returns).
// Register fn once the effect is sure: a savepoint the effect rolls back
// and carries on from does not take back what it registered.
func AfterCommit(ctx context.Context, fn func()) {
	if a, ok := ctx.Value(afterCommitKey{}).(*afterCommit); ok {
		a.add(fn)
		return
	}
	fn()
}

// apply records d's event for group in ctx's transaction and runs h,
// unless the group has applied it already.
func (in *Inbox) apply(ctx context.Context, group string, d bus.Delivery, h Func) error {
	e := d.Event
	if err := e.Validate(); err != nil {
		// Without an id there is nothing to deduplicate by; the broker
		// retries and, in the end, dead-letters it.
		return fmt.Errorf("refusing event: %w", err)
	}
	// On PostgreSQL and MySQL a concurrent delivery of the same event
	// waits here for the first one's transaction: it inserts nothing once
	// that commits, and takes over if that rolls back.
	res, err := in.db.ExecContext(ctx, in.db.Dialect.InsertIgnore("inbox", "consumer_group", "event_id", "applied_at"),
		group, e.ID, sqldb.Stamp(time.Now()))
	if err != nil {
		return fmt.Errorf("recording event %s for %s: %w", e.ID, group, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("recording event %s for %s: %w", e.ID, group, err)
	}
	if n == 0 {
		AfterCommit(ctx, func() { in.duplicates.WithLabelValues(group).Inc() })
		in.log.DebugContext(ctx, "event already applied; dropped", eventAttrs(group, d)...)
		return nil
	}
	if err := h(ctx, e); err != nil {
		return fmt.Errorf("applying %s %s for %s: %w", e.Type, e.ID, group, err)
	}
	AfterCommit(ctx, func() { in.applied.WithLabelValues(group).Inc() })
	in.log.DebugContext(ctx, "event applied", eventAttrs(group, d)...)
	return nil
}

// eventAttrs say which delivery a log line is about.
func eventAttrs(group string, d bus.Delivery) []any {
	return []any{slog.String("group", group), slog.String("event_id", d.Event.ID), slog.String("type", d.Event.Type),
		slog.String("topic", d.Event.Topic), slog.Int("attempt", d.Attempt)}
}

// DeadLetters returns the dead-letter handler of consumer group: it stores
// the delivery with its last error, once however often the broker hands the
// same one over. Until it is stored, it returns an error, so that the broker
// keeps the delivery rather than lose it.
func (in *Inbox) DeadLetters(group string) bus.DeadLetterHandler {
	return func(ctx context.Context, d bus.Delivery, raw []byte, cause error) error {
		ctx = telemetry.ContextOf(ctx, d.Event.TraceParent) // its log line is in the trace the event was part of
		dl := DeadLetter{
			ID: uuid.Must(uuid.NewV7()).String(), Group: group, Attempts: d.Attempt,
			Error: "unknown error", CreatedAt: time.Now().UTC(),
		}
		if cause != nil {
			dl.Error = cause.Error()
		}
		var envelope, rawCol any // NULL unless set
		if d.Event.ID != "" {
			ev := d.Event
			b, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("encoding dead letter %s: %w", ev.ID, err)
			}
			dl.EventID, dl.Topic, dl.Type, dl.Event = ev.ID, ev.Topic, ev.Type, &ev
			envelope = string(b)
		} else {
			dl.Raw = raw
			rawCol = raw
		}
		if err := in.store(ctx, dl, dedupKey(d.Event, raw), envelope, rawCol); err != nil {
			return err
		}
		in.log.WarnContext(ctx, "event dead-lettered", slog.String("group", group), slog.String("event_id", dl.EventID),
			slog.String("type", dl.Type), slog.Int("attempts", dl.Attempts), slog.String("err", dl.Error))
		return nil
	}
}

// dedupKey names a delivery so that handing the same one over again finds
// its dead letter: the event id, or a hash of bytes that were no event.
func dedupKey(e event.Event, raw []byte) string {
	if e.ID != "" {
		return e.ID
	}
	sum := sha256.Sum256(raw)
	return "raw:" + hex.EncodeToString(sum[:])
}

// store inserts a dead letter, or refreshes the one stored for the same
// delivery before, which then waits for a replay again.
func (in *Inbox) store(ctx context.Context, dl DeadLetter, key string, envelope, raw any) error {
	// Insert-or-ignore, then update: a failed insert would spoil a
	// PostgreSQL transaction the caller's context might carry.
	res, err := in.db.ExecContext(ctx, in.db.Dialect.InsertIgnore("dead_letters",
		"id", "consumer_group", "dedup_key", "event_id", "topic", "type", "envelope", "raw", "error", "attempts", "created_at"),
		dl.ID, dl.Group, key, dl.EventID, dl.Topic, dl.Type, envelope, raw, dl.Error, dl.Attempts, sqldb.Stamp(dl.CreatedAt))
	if err != nil {
		return fmt.Errorf("storing dead letter for %s: %w", dl.Group, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storing dead letter for %s: %w", dl.Group, err)
	}
	if n == 1 {
		in.deadLetters.WithLabelValues(dl.Group).Inc()
		return nil
	}
	if _, err := in.db.ExecContext(ctx,
		`UPDATE dead_letters SET error = ?, attempts = ?, replayed_at = NULL WHERE consumer_group = ? AND dedup_key = ?`,
		dl.Error, dl.Attempts, dl.Group, key); err != nil {
		return fmt.Errorf("updating dead letter for %s: %w", dl.Group, err)
	}
	return nil
}

// DeadLetter is a delivery a consumer group gave up on.
type DeadLetter struct {
	ID         string
	Group      string
	EventID    string // empty if the delivery was no readable event
	Topic      string
	Type       string
	Error      string // the last attempt's error
	Attempts   int
	CreatedAt  time.Time
	ReplayedAt time.Time    // zero until replayed
	Event      *event.Event // nil if the delivery was no readable event
	Raw        []byte       // the bytes as delivered, when they were no event
}

// Replayed reports whether the dead letter has been replayed.
func (dl DeadLetter) Replayed() bool { return !dl.ReplayedAt.IsZero() }

const deadLetterColumns = `id, consumer_group, event_id, topic, type, envelope, raw, error, attempts, created_at, replayed_at`

// List returns up to limit dead letters after the one whose id is after
// (empty for the first page), oldest first, and the cursor of the next page
// (empty on the last).
func (in *Inbox) List(ctx context.Context, after string, limit int) ([]DeadLetter, string, error) {
	if limit < 1 {
		return nil, "", fail.New(fail.Invalid, "limit must be at least 1")
	}
	rows, err := in.db.QueryContext(ctx,
		`SELECT `+deadLetterColumns+` FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("listing dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		dl, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("listing dead letters: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// Get returns one dead letter, or fail.NotFound.
func (in *Inbox) Get(ctx context.Context, id string) (DeadLetter, error) {
	dl, err := scan(in.db.QueryRowContext(ctx, `SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return DeadLetter{}, fail.New(fail.NotFound, "dead letter not found")
	}
	return dl, err
}

// Replay runs a dead letter's event through its group's handler again, by
// the same path as a delivery (so an event the group has applied since is
// not applied twice), and marks it replayed in the same transaction. A
// replay that fails leaves the dead letter waiting, with the new error; a
// dead letter that holds no readable event, or whose group has no handler in
// this process, cannot be replayed (fail.Conflict).
func (in *Inbox) Replay(ctx context.Context, id string) (DeadLetter, error) {
	dl, err := in.Get(ctx, id)
	if err != nil {
		return DeadLetter{}, err
	}
	if dl.Event == nil {
		return DeadLetter{}, fail.New(fail.Conflict, "dead letter %s holds no readable event and cannot be replayed", id)
	}
	in.mu.Lock()
	h, ok := in.handlers[dl.Group]
	in.mu.Unlock()
	if !ok {
		return DeadLetter{}, fail.New(fail.Conflict, "no consumer of group %q runs here to replay dead letter %s", dl.Group, id)
	}
	now := time.Now().UTC()
	err = in.atomic(ctx, func(ctx context.Context) error {
		if err := in.apply(ctx, dl.Group, bus.Delivery{Event: *dl.Event, Attempt: dl.Attempts + 1}, h); err != nil {
			return err
		}
		_, err := in.db.ExecContext(ctx, `UPDATE dead_letters SET replayed_at = COALESCE(replayed_at, ?) WHERE id = ?`,
			sqldb.Stamp(now), id)
		if err != nil {
			return fmt.Errorf("marking dead letter %s replayed: %w", id, err)
		}
		return nil
	})
	if err != nil {
		if _, uerr := in.db.ExecContext(ctx, `UPDATE dead_letters SET error = ?, attempts = attempts + 1 WHERE id = ?`,
			err.Error(), id); uerr != nil {
			err = errors.Join(err, fmt.Errorf("recording the failed replay: %w", uerr))
		}
		return DeadLetter{}, fail.Wrap(fail.Conflict, err, "replaying dead letter %s failed; it stays in the queue", id)
	}
	return in.Get(ctx, id)
}

type scanner interface{ Scan(dest ...any) error }

func scan(s scanner) (DeadLetter, error) {
	var (
		dl       DeadLetter
		envelope sql.NullString
		created  string
		replayed sql.NullString
	)
	if err := s.Scan(&dl.ID, &dl.Group, &dl.EventID, &dl.Topic, &dl.Type, &envelope, &dl.Raw, &dl.Error,
		&dl.Attempts, &created, &replayed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return DeadLetter{}, err
		}
		return DeadLetter{}, fmt.Errorf("reading dead letter: %w", err)
	}
	var err error
	if dl.CreatedAt, err = sqldb.ParseStamp(created); err != nil {
		return DeadLetter{}, fmt.Errorf("reading dead letter %s: %w", dl.ID, err)
	}
	if replayed.Valid {
		if dl.ReplayedAt, err = sqldb.ParseStamp(replayed.String); err != nil {
			return DeadLetter{}, fmt.Errorf("reading dead letter %s: %w", dl.ID, err)
		}
	}
	if envelope.Valid {
		var e event.Event
		if err := json.Unmarshal([]byte(envelope.String), &e); err != nil {
			return DeadLetter{}, fmt.Errorf("reading dead letter %s: %w", dl.ID, err)
		}
		dl.Event = &e
	}
	return dl, nil
}

// waitingCollector measures the dead-letter queue when scraped: the dead
// letters not yet replayed, per group, with every group this inbox handles
// present (at zero when it has none), so that "dead_letters > 0" is a rule
// with something to read.
type waitingCollector struct {
	in   *Inbox
	desc *prometheus.Desc
}

func (c *waitingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *waitingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.in.Waiting(ctx)
	if err != nil {
		// A scrape goes on without this one rather than failing whole;
		// the database's own health check says why.
		c.in.log.Warn("inbox: counting dead letters failed", slog.Any("err", err))
		return
	}
	c.in.mu.Lock()
	for group := range c.in.handlers {
		if _, ok := counts[group]; !ok {
			counts[group] = 0
		}
	}
	c.in.mu.Unlock()
	for group, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), group)
	}
}

// Waiting counts the dead letters not yet replayed, by consumer group;
// groups with none are absent.
func (in *Inbox) Waiting(ctx context.Context) (map[string]int, error) {
	rows, err := in.db.QueryContext(ctx,
		`SELECT consumer_group, COUNT(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY consumer_group`)
	if err != nil {
		return nil, fmt.Errorf("counting dead letters: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var (
			group string
			n     int
		)
		if err := rows.Scan(&group, &n); err != nil {
			return nil, fmt.Errorf("counting dead letters: %w", err)
		}
		counts[group] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting dead letters: %w", err)
	}
	return counts, nil
}
