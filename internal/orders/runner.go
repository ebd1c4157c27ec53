package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"
)

// Participants are the services the orchestrator drives.
type Participants struct {
	Payments  Payments
	Inventory Inventory
	Shipping  Shipping
}

// Runner is the saga orchestrator: it leases due sagas from the store, runs
// their current step against the participants, and stores the result. All
// its state is in the store, so a restarted runner (or another instance)
// resumes every saga in flight.
type Runner struct {
	store       Store
	parts       Participants
	log         *slog.Logger
	owner       string
	concurrency int
	lease       time.Duration
	stepTimeout time.Duration
	poll        time.Duration
	wake        chan struct{}
	now         func() time.Time
}

// NewRunner returns an orchestrator over store and the participants.
func NewRunner(store Store, parts Participants, log *slog.Logger) *Runner {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Runner{
		store: store, parts: parts, log: log,
		owner:       "runner-" + hex.EncodeToString(b),
		concurrency: 32,
		lease:       10 * time.Second,
		stepTimeout: 4 * time.Second,
		poll:        250 * time.Millisecond,
		wake:        make(chan struct{}, 1),
		now:         time.Now,
	}
}

// Wake tells the runner there may be new work, without blocking.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run works sagas until ctx ends, then waits for the steps in flight.
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
					r.step(ctx, s)
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

// step runs the saga's current step once and stores what follows.
func (r *Runner) step(ctx context.Context, s Saga) {
	o, err := r.store.Order(ctx, s.OrderID)
	if err != nil {
		r.log.Error("saga without its order", slog.String("order_id", s.OrderID), slog.Any("err", err))
		return
	}
	sctx, cancel := context.WithTimeout(ctx, r.stepTimeout)
	outcome, detail := r.run(sctx, s, o)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the step will be run again after the lease
	}
	t := s.Next(outcome, detail, r.now())
	rec := StepRecord{OrderID: s.OrderID, Step: s.Step, Result: [...]string{"ok", "refused", "failed"}[outcome], Detail: detail, At: r.now().UTC()}
	if err := r.store.Advance(ctx, r.owner, t, rec); err != nil {
		r.log.Warn("storing saga step failed", slog.String("order_id", s.OrderID), slog.Any("err", err))
		return
	}
	if t.Final != "" {
		r.log.Info("order ended", slog.String("order_id", s.OrderID), slog.String("status", string(t.Final)), slog.String("reason", t.Saga.Reason))
	}
	if t.Final == "" && outcome != Failed {
		r.Wake()
	}
}

func (r *Runner) run(ctx context.Context, s Saga, o Order) (Outcome, string) {
	switch s.Step {
	case StepCharge:
		declined, err := r.parts.Payments.Charge(ctx, o, s.Card)
		if err == nil && declined {
			return Refused, "payment declined"
		}
		return outcomeOf(err)
	case StepReserve:
		return outcomeOf(r.parts.Inventory.Reserve(ctx, o))
	case StepShip:
		return outcomeOf(r.parts.Shipping.Schedule(ctx, o))
	case StepCommit:
		return outcomeOf(r.parts.Inventory.Commit(ctx, o.ID))
	case StepUnship:
		return outcomeOf(r.parts.Shipping.Cancel(ctx, o.ID))
	case StepRelease:
		return outcomeOf(r.parts.Inventory.Release(ctx, o.ID))
	case StepRefund:
		return outcomeOf(r.parts.Payments.Refund(ctx, o.ID))
	default:
		return Refused, "unknown step " + string(s.Step)
	}
}
