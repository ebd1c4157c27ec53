package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Runner is the saga orchestrator's sending half: it leases due orchestrated
// sagas and sends the command of their current step through the outbox, in
// the same transaction that records the saga awaits the reply. Replies
// arrive as events (Service.Observe). All its state is in the store, so a
// restarted runner, or another instance, resumes every saga in flight; a
// command whose reply is overdue is sent again.
type Runner struct {
	store       Store
	log         *slog.Logger
	owner       string
	concurrency int
	lease       time.Duration
	poll        time.Duration
	wake        chan struct{}
	now         func() time.Time
	meter       Meter
	tracer      trace.Tracer // nil: steps make no spans, but their commands still carry the order's trace
}

// ReplyDeadline is how long the orchestrator waits for a participant's
// reply before it sends the command again (with backoff on top).
const ReplyDeadline = 10 * time.Second

// NewRunner returns an orchestrator over store.
func NewRunner(store Store, log *slog.Logger) *Runner {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Runner{
		store: store, log: log,
		owner:       "runner-" + hex.EncodeToString(b),
		concurrency: 8,
		lease:       5 * time.Second,
		poll:        250 * time.Millisecond,
		wake:        make(chan struct{}, 1),
		now:         time.Now,
		meter:       noMeter{},
	}
}

// Measure makes the runner count with m the orders it ends (those whose
// step ran out of attempts). Call it before Run.
func (r *Runner) Measure(m Meter) { r.meter = m }

// Trace makes every step a span in the trace of the order's checkout (the
// traceparent the saga keeps), so that the command the step sends, and the
// work that command causes in other services, joins that trace. Call it
// before Run.
func (r *Runner) Trace(tp trace.TracerProvider) {
	r.tracer = tp.Tracer("github.com/microshop/microshop/internal/orders")
}

// Wake tells the runner there may be new work, without blocking.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run sends commands until ctx ends, then waits for the sends in flight.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, r.concurrency)
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		free := r.concurrency - len(slots)
		if free > 0 {
			sagas, err := r.store.ClaimSagas(ctx, r.owner, r.now(), r.lease, free)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("claiming sagas failed", slog.Any("err", err))
			}
			for _, s := range sagas {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() { <-slots }()
					r.run(ctx, s)
				})
			}
			if len(sagas) == free { // there may be more: look again at once
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// run runs the saga's current step in the trace of the order's checkout: a
// span (when traced) whose context the command carries across the broker,
// and in which the step's log lines are written.
func (r *Runner) run(ctx context.Context, s Saga) {
	ctx = inTrace(ctx, s.TraceParent)
	if r.tracer != nil {
		var span trace.Span
		ctx, span = r.tracer.Start(ctx, "saga "+string(s.Step), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(attribute.String("saga.order_id", s.OrderID), attribute.String("saga.step", string(s.Step))))
		defer span.End()
	}
	topic, err := r.send(ctx, s)
	span := trace.SpanFromContext(ctx)
	if topic != "" {
		span.SetAttributes(attribute.String("messaging.destination.name", topic))
	}
	if err != nil && ctx.Err() == nil {
		span.SetStatus(codes.Error, err.Error())
		r.log.WarnContext(ctx, "saga step failed", slog.String("order_id", s.OrderID), slog.String("step", string(s.Step)), slog.Any("err", err))
		return
	}
	if topic != "" {
		r.log.DebugContext(ctx, "saga step sent", slog.String("order_id", s.OrderID), slog.String("step", string(s.Step)), slog.String("topic", topic))
	}
}

// send sends the command of the saga's current step, and says on which
// topic it sent what (empty if nothing). A saga still awaiting a reply here
// has missed its deadline: that counts as a failed attempt, which may turn
// the saga to its compensations or end it.
func (r *Runner) send(ctx context.Context, s Saga) (string, error) {
	o, err := r.store.Order(ctx, s.OrderID)
	if err != nil {
		return "", err
	}
	now := r.now()
	var recs []StepRecord
	if s.Awaiting {
		miss := "no reply within " + ReplyDeadline.String()
		t := s.Next(Failed, miss, now)
		recs = append(recs, StepRecord{OrderID: s.OrderID, Step: s.Step, Result: "failed", Detail: miss, At: now.UTC()})
		if t.Final != "" {
			return r.end(ctx, o, t, recs, now)
		}
		s = t.Saga
	}
	cmd, err := commandFor(s.Step, o, s.CardToken)
	if err != nil {
		return "", err
	}
	s.Awaiting = true
	s.NextAt = now.Add(ReplyDeadline + Backoff(s.Attempts))
	s.Attempts++
	recs = append(recs, StepRecord{OrderID: s.OrderID, Step: s.Step, Result: "sent", Detail: cmd.Topic, At: now.UTC()})
	err = r.store.Advance(ctx, Guard{Owner: r.owner}, Transition{Saga: s}, recs, []event.Event{cmd})
	if fail.Is(err, fail.Conflict) {
		return "", nil // another runner took it over meanwhile
	}
	if err != nil {
		return "", err
	}
	return cmd.Topic, nil
}

// end stores the transition that ends the order's saga, with the event that
// says so, and counts the end once it is stored.
func (r *Runner) end(ctx context.Context, o Order, t Transition, recs []StepRecord, now time.Time) (string, error) {
	ended, err := orderEnded(o, t.Final, t.Saga.Reason, now)
	if err != nil {
		return "", err
	}
	err = r.store.Advance(ctx, Guard{Owner: r.owner}, t, recs, []event.Event{ended})
	if fail.Is(err, fail.Conflict) {
		return "", nil // another runner took it over meanwhile
	}
	if err != nil {
		return "", err
	}
	r.meter.Ended(ctx, o.Saga, t.Final, now.Sub(o.CreatedAt))
	return ended.Topic, nil
}
