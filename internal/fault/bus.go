package fault

import (
	"context"
	"errors"
	"sync"

	"github.com/microshop/microshop/internal/bus"
)

// Subscriber returns sub made to consume only while the instance is up.
// When the instance goes down, each subscription made through it stops as
// a stopping consumer does (see bus.Subscriber): the broker keeps every
// event for the durable group, and an event in hand at that moment costs at
// most the one delivery attempt a crash would cost; events published while
// it is down cost none, since nothing takes them. When the instance comes
// back up, the subscriptions are made again and resume where the group
// left off. A consumer subscribes once and keeps its Subscribe call across
// outages, so it registers with its inbox once.
func (in *Injector) Subscriber(sub bus.Subscriber) bus.Subscriber {
	return &pausing{in: in, sub: sub}
}

type pausing struct {
	in  *Injector
	sub bus.Subscriber
}

// Subscribe subscribes while the instance is up, stops while it is down,
// and returns nil once ctx ends, or the error of a subscription that
// failed on its own.
func (p *pausing) Subscribe(ctx context.Context, s bus.Subscription, h bus.Handler) error {
	if ready := s.Ready; ready != nil {
		var once sync.Once // ready once, though the subscription is made again after each outage
		s.Ready = func() { once.Do(ready) }
	}
	for {
		select {
		case <-p.in.Up():
		case <-ctx.Done():
			return nil
		}
		runCtx, stop := context.WithCancel(ctx)
		down := p.in.wentDown()
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			select {
			case <-down:
				stop()
			case <-runCtx.Done():
			}
		}()
		err := p.sub.Subscribe(runCtx, s, h)
		stop()
		<-stopped
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-down: // wait until the instance is up, and subscribe again
		default:
			return errors.New("subscription ended by itself")
		}
	}
}
