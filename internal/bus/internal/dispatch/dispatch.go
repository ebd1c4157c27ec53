// Package dispatch decides, the same way for every broker, what happens to a
// message the broker has handed over: decode the envelope, run the handler
// within its deadline, and choose between acknowledging, retrying later,
// dead-lettering and leaving the message to the broker.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// DeadLetterRetries is how many deliveries a broker allows beyond
// MaxDeliver. They are never given to the handler: they are for a
// dead-letter handler that failed (its store was down for a moment) or a
// last attempt that never answered (the process died), so the message still
// reaches the dead-letter handler, while a dead-letter handler that keeps
// failing cannot keep a message circling forever.
const DeadLetterRetries = 3

// ErrExhausted is the cause given to the dead-letter handler for a message
// whose last attempt never answered: the consumer stopped or crashed, or the
// dead-letter handler failed before.
var ErrExhausted = errors.New("delivery attempts exhausted")

// Action is what to tell the broker about a message.
type Action int

// The actions a Verdict can ask for.
const (
	// Ack: the handler succeeded; acknowledge the message.
	Ack Action = iota + 1
	// DeadLettered: the dead-letter handler took it; remove the message
	// from the queue for good (JetStream Term, RabbitMQ ack).
	DeadLettered
	// Retry: redeliver the message after Verdict.Delay.
	Retry
	// Abandon: the subscription is stopping; neither acknowledge nor
	// reject, so the broker redelivers it as after a crash.
	Abandon
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case DeadLettered:
		return "dead-lettered"
	case Retry:
		return "retry"
	case Abandon:
		return "abandon"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Verdict is the outcome of one delivery.
type Verdict struct {
	Action Action
	Delay  time.Duration // before redelivery, for Retry
	Err    error         // what failed, for Retry, DeadLettered and Abandon
}

// Decode reads an envelope and checks that it is complete. Unknown fields
// are accepted, so that a newer producer does not break older consumers.
func Decode(raw []byte) (event.Event, error) {
	var e event.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return event.Event{}, fmt.Errorf("decoding envelope: %w", err)
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("checking envelope: %w", err)
	}
	return e, nil
}

// Handle processes delivery number attempt (as the broker counts them,
// starting at 1) of the message raw for subscription s, which must have its
// defaults filled, and says what to tell the broker. ctx is the
// subscription's: when it has ended, a failure is not the message's fault and
// the message is abandoned to the broker.
func Handle(ctx context.Context, s bus.Subscription, h bus.Handler, raw []byte, attempt int) Verdict {
	e, err := Decode(raw)
	if err != nil {
		return deadLetter(ctx, s, bus.Delivery{}, raw, err, attempt)
	}
	d := bus.Delivery{Event: e, Attempt: attempt}
	if attempt > s.MaxDeliver {
		return deadLetter(ctx, s, d, raw, fmt.Errorf("%w: no answer after %d attempts", ErrExhausted, s.MaxDeliver), attempt)
	}
	err = call(ctx, s.AckWait, func(ctx context.Context) error {
		return outlast(ctx, s.AckWait/2, func() error { return h(ctx, d) })
	})
	switch {
	case err == nil:
		return Verdict{Action: Ack}
	case ctx.Err() != nil:
		return Verdict{Action: Abandon, Err: err}
	case attempt >= s.MaxDeliver:
		return deadLetter(ctx, s, d, raw, err, attempt)
	}
	return Verdict{Action: Retry, Delay: s.Backoff(attempt), Err: err}
}

// deadLetter hands a delivery to the subscription's dead-letter handler.
func deadLetter(ctx context.Context, s bus.Subscription, d bus.Delivery, raw []byte, cause error, attempt int) Verdict {
	err := call(ctx, s.AckWait, func(ctx context.Context) error { return s.DeadLetter(ctx, d, raw, cause) })
	switch {
	case err == nil:
		return Verdict{Action: DeadLettered, Err: cause}
	case ctx.Err() != nil:
		return Verdict{Action: Abandon, Err: err}
	}
	return Verdict{Action: Retry, Delay: s.Backoff(attempt), Err: fmt.Errorf("dead-lettering (%w): %w", cause, err)}
}

// outlast runs f, and again while it fails with an outage (fail.Unavailable:
// the handler's database restarting, a service it calls down) and patience
// lasts, waiting from 50 ms doubling to 1 s between tries. An outage is not
// the event's fault: an attempt spent on it would bring the event nearer
// its dead letters for nothing, and a short one is waited out here, within
// the delivery. Trying again is safe: a handler's effect commits with its
// inbox record or not at all. patience stays well inside AckWait, so that
// the broker does not hand the event to another consumer meanwhile.
func outlast(ctx context.Context, patience time.Duration, f func() error) error {
	deadline := time.Now().Add(patience)
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil || !fail.Is(err, fail.Unavailable) || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// call runs f with a context that ends after timeout, since after AckWait
// the broker gives the message to another consumer anyway. A panic becomes
// an error, so that one poison message is dead-lettered instead of crashing
// the service again on every redelivery.
func call(ctx context.Context, timeout time.Duration, f func(context.Context) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return f(ctx)
}
