package shop

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/microshop/microshop/internal/console"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/load"
)

// traffic is the console's traffic button: the same load generator as
// `microshop load`, aimed at this gateway's own address, so that what the
// console draws is real requests from outside the shop.
type traffic struct {
	ctx    context.Context // the shop's: traffic ends when the shop stops
	target func() (string, bool)
	log    *slog.Logger

	mu     sync.Mutex
	gen    *load.Generator
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *builder) traffic() console.Traffic {
	return &traffic{
		ctx: b.ctx,
		target: func() (string, bool) {
			addr, ok := b.addrs.Load("gateway")
			if !ok {
				return "", false
			}
			return "http://" + addr.(string), true
		},
		log: b.log.With(slog.String("service", "gateway"), slog.String("component", "traffic")),
	}
}

// Start runs shoppers at rate arrivals a second, or changes the rate of
// those running. The admin's token lets the generator restock products that
// run low, for as long as it is valid.
// consoleMix is the console's traffic: a shop's ordinary day, and some
// customers of the old shop, so that the Migration view shows each legacy
// route's traffic split between the monolith and its new service.
var consoleMix = func() load.Mix {
	m := load.DefaultMix
	m.Legacy = 0.10
	return m
}()

func (t *traffic) Start(rate float64, adminToken string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running() {
		t.gen.SetRate(rate)
		return nil
	}
	target, ok := t.target()
	if !ok {
		return fail.New(fail.Unavailable, "the gateway is not listening yet")
	}
	gen, err := load.New(load.Options{Target: target, Rate: rate, Admin: load.Credentials{Token: adminToken}, Mix: consoleMix})
	if err != nil {
		return fmt.Errorf("starting traffic: %w", err)
	}
	ctx, cancel := context.WithCancel(t.ctx)
	done := make(chan struct{})
	t.gen, t.cancel, t.done = gen, cancel, done
	go func() {
		defer close(done)
		rep, err := gen.Run(ctx)
		if err != nil && ctx.Err() == nil {
			t.log.Warn("traffic stopped", slog.Any("err", err))
			return
		}
		t.log.Info("traffic ended", slog.Int64("orders_placed", rep.OrdersPlaced), slog.Int64("checkouts_completed", rep.CheckoutsCompleted))
	}()
	return nil
}

// running reports whether a generator runs. t.mu is held.
func (t *traffic) running() bool {
	if t.gen == nil {
		return false
	}
	select {
	case <-t.done:
		return false
	default:
		return t.cancel != nil
	}
}

// Stop stops new shoppers arriving; those under way finish, and the orders
// placed are followed to their end.
func (t *traffic) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

// Status is the generator's counters, or an idle state before any traffic.
// Traffic runs from the moment it is started (while its shoppers sign up)
// until it is stopped.
func (t *traffic) Status() any {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen == nil {
		return load.Snapshot{Errors: map[string]int{}}
	}
	snap := t.gen.Snapshot()
	snap.Running = t.running()
	return snap
}
