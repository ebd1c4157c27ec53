package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

func TestHandle(t *testing.T) {
	e, err := event.New("test", "orders.order.created", "OrderCreated", 1, "o-1", map[string]int{"total_cents": 500})
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	errHandler := errors.New("handler failed")
	errStore := errors.New("dead-letter store down")
	backoff := func(attempt int) time.Duration { return time.Duration(attempt) * time.Second }

	tests := []struct {
		name       string
		raw        []byte
		attempt    int
		handler    func(ctx context.Context, cancel context.CancelFunc) error
		deadLetter error // what the dead-letter handler answers
		want       Action
		wantDelay  time.Duration
		wantCalls  int // handler calls
		wantDead   int // dead-letter handler calls
		wantCause  func(error) bool
		wantDeadAt int // Delivery.Attempt given to the dead-letter handler
	}{
		{name: "success", raw: good, attempt: 1, want: Ack, wantCalls: 1},
		{
			name: "failure before the last attempt", raw: good, attempt: 2,
			handler: func(context.Context, context.CancelFunc) error { return errHandler },
			want:    Retry, wantDelay: 2 * time.Second, wantCalls: 1,
		},
		{
			name: "failure on the last attempt", raw: good, attempt: 3,
			handler: func(context.Context, context.CancelFunc) error { return errHandler },
			want:    DeadLettered, wantCalls: 1, wantDead: 1, wantDeadAt: 3,
			wantCause: func(err error) bool { return errors.Is(err, errHandler) },
		},
		{
			name: "failure on the last attempt, dead-letter handler fails", raw: good, attempt: 3,
			handler:    func(context.Context, context.CancelFunc) error { return errHandler },
			deadLetter: errStore,
			want:       Retry, wantDelay: 3 * time.Second, wantCalls: 1, wantDead: 1, wantDeadAt: 3,
			wantCause: func(err error) bool { return errors.Is(err, errHandler) },
		},
		{
			name: "beyond the last attempt goes to the dead-letter handler only", raw: good, attempt: 4,
			want: DeadLettered, wantCalls: 0, wantDead: 1, wantDeadAt: 4,
			wantCause: func(err error) bool { return errors.Is(err, ErrExhausted) },
		},
		{
			name: "not json", raw: []byte("{nope"), attempt: 1,
			want: DeadLettered, wantCalls: 0, wantDead: 1, wantDeadAt: 0,
			wantCause: func(err error) bool { return err != nil },
		},
		{
			name: "incomplete envelope", raw: []byte(`{"id":"x","topic":"a.b","payload":{}}`), attempt: 1,
			want: DeadLettered, wantCalls: 0, wantDead: 1, wantDeadAt: 0,
			wantCause: func(err error) bool { return err != nil && strings.Contains(err.Error(), "no type") },
		},
		{
			name: "undecodable, dead-letter handler fails", raw: []byte("{nope"), attempt: 2,
			deadLetter: errStore,
			want:       Retry, wantDelay: 2 * time.Second, wantCalls: 0, wantDead: 1, wantDeadAt: 0,
			wantCause: func(err error) bool { return err != nil },
		},
		{
			name: "subscription stops during the handler", raw: good, attempt: 1,
			handler: func(ctx context.Context, cancel context.CancelFunc) error {
				cancel()
				<-ctx.Done()
				return ctx.Err()
			},
			want: Abandon, wantCalls: 1,
		},
		{
			name: "handler overruns AckWait", raw: good, attempt: 1,
			handler: func(ctx context.Context, _ context.CancelFunc) error {
				<-ctx.Done()
				return ctx.Err()
			},
			want: Retry, wantDelay: time.Second, wantCalls: 1,
		},
		{
			name: "handler panics", raw: good, attempt: 1,
			handler: func(context.Context, context.CancelFunc) error { panic("boom") },
			want:    Retry, wantDelay: time.Second, wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls, dead int
			var cause error
			var deadAt int
			var deadRaw []byte
			s := bus.Subscription{
				Group: "g", Topics: []string{"orders.order.created"}, MaxDeliver: 3,
				AckWait: 50 * time.Millisecond, Backoff: backoff,
				DeadLetter: func(_ context.Context, d bus.Delivery, raw []byte, c error) error {
					dead++
					cause, deadAt, deadRaw = c, d.Attempt, raw
					if d.Attempt == 0 && d.Event.ID != "" {
						t.Errorf("undecodable delivery carries event %q", d.Event.ID)
					}
					return tc.deadLetter
				},
			}.WithDefaults()
			h := func(hctx context.Context, d bus.Delivery) error {
				calls++
				if d.Event.ID != e.ID || d.Attempt != tc.attempt {
					t.Errorf("handler got event %s attempt %d, want %s attempt %d", d.Event.ID, d.Attempt, e.ID, tc.attempt)
				}
				if tc.handler == nil {
					return nil
				}
				return tc.handler(hctx, cancel)
			}

			v := Handle(ctx, s, h, tc.raw, tc.attempt)

			if v.Action != tc.want {
				t.Errorf("Action = %v (err %v), want %v", v.Action, v.Err, tc.want)
			}
			if v.Action == Retry && v.Delay != tc.wantDelay {
				t.Errorf("Delay = %v, want %v", v.Delay, tc.wantDelay)
			}
			if calls != tc.wantCalls {
				t.Errorf("handler calls = %d, want %d", calls, tc.wantCalls)
			}
			if dead != tc.wantDead {
				t.Errorf("dead-letter calls = %d, want %d", dead, tc.wantDead)
			}
			if dead > 0 {
				if deadAt != tc.wantDeadAt {
					t.Errorf("dead letter Attempt = %d, want %d", deadAt, tc.wantDeadAt)
				}
				if !tc.wantCause(cause) {
					t.Errorf("dead letter cause = %v", cause)
				}
				if string(deadRaw) != string(tc.raw) {
					t.Errorf("dead letter raw = %q, want %q", deadRaw, tc.raw)
				}
			}
		})
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Ack: "ack", DeadLettered: "dead-lettered", Retry: "retry", Abandon: "abandon", 0: "action(0)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

// TestHandleWaitsOutAnOutage: a handler whose failures are outages
// (fail.Unavailable) is tried again within the delivery, so a short outage
// costs no attempt; one that outlasts half of AckWait is the attempt's
// failure, counted as any other.
func TestHandleWaitsOutAnOutage(t *testing.T) {
	e, err := event.New("test", "orders.order.created", "OrderCreated", 1, "o-1", map[string]int{"total_cents": 500})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	outage := fail.Wrap(fail.Unavailable, errors.New("connection refused"), "database unavailable")
	var dead int
	sub := func(ackWait time.Duration) bus.Subscription {
		return bus.Subscription{
			Group: "g", Topics: []string{"orders.order.created"}, MaxDeliver: 3, AckWait: ackWait,
			DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { dead++; return nil },
		}.WithDefaults()
	}

	calls := 0
	v := Handle(context.Background(), sub(5*time.Second), func(context.Context, bus.Delivery) error {
		if calls++; calls <= 3 {
			return outage
		}
		return nil
	}, raw, 3)
	if v.Action != Ack || calls != 4 || dead != 0 {
		t.Errorf("an outage over after 3 tries on the last attempt: %v after %d calls, %d dead letters; want ack after 4, none", v.Action, calls, dead)
	}

	// Patience is half of AckWait, 300 ms: tries at 0, 50 and 150 ms, and
	// the next wait (200 ms) would end past it.
	calls = 0
	v = Handle(context.Background(), sub(600*time.Millisecond), func(context.Context, bus.Delivery) error {
		calls++
		return outage
	}, raw, 1)
	if v.Action != Retry || calls < 2 || calls > 3 {
		t.Errorf("an outage outlasting the patience: %v after %d calls; want the broker's retry after 2 or 3 tries within the delivery", v.Action, calls)
	}

	calls = 0
	v = Handle(context.Background(), sub(5*time.Second), func(context.Context, bus.Delivery) error {
		calls++
		return errors.New("the event's own fault")
	}, raw, 1)
	if v.Action != Retry || calls != 1 {
		t.Errorf("a failure that is no outage: %v after %d calls; want a retry by the broker after 1", v.Action, calls)
	}
}
