package fault

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/bus"
)

// fakeSubscriber counts subscriptions, says it is ready on each, and holds
// each until its context ends, or fails at once with err.
type fakeSubscriber struct {
	mu     sync.Mutex
	calls  int
	active bool
	err    error
}

func (f *fakeSubscriber) Subscribe(ctx context.Context, s bus.Subscription, _ bus.Handler) error {
	f.mu.Lock()
	f.calls++
	f.active = true
	err := f.err
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.active = false; f.mu.Unlock() }()
	if err != nil {
		return err
	}
	s.Ready()
	<-ctx.Done()
	return nil
}

func (f *fakeSubscriber) state() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.active
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSubscriberPausesWhileDown: one Subscribe call outlives an outage; the
// broker subscription ends when the instance goes down, is not made again
// while it is down, and is made again when it comes back up; Ready is said
// once.
func TestSubscriberPausesWhileDown(t *testing.T) {
	in := New("hello")
	fake := &fakeSubscriber{}
	readies := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- in.Subscriber(fake).Subscribe(ctx, bus.Subscription{Ready: func() { readies++ }}, nil)
	}()
	waitUntil(t, "the first subscription", func() bool { _, active := fake.state(); return active })

	for cycle := 1; cycle <= 3; cycle++ {
		if _, err := in.Set(Settings{Down: true}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the subscription ends once down", func() bool { _, active := fake.state(); return !active })
		if calls, _ := fake.state(); calls != cycle {
			t.Errorf("cycle %d: subscriptions while down = %d, want %d", cycle, calls, cycle)
		}
		if _, err := in.Set(Settings{}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "subscribed again once up", func() bool { calls, active := fake.state(); return active && calls == cycle+1 })
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Subscribe after its context ended = %v, want nil", err)
	}
	if readies != 1 {
		t.Errorf("Ready said %d times, want once", readies)
	}
}

func TestSubscriberPassesFailuresOn(t *testing.T) {
	boom := errors.New("connection closed")
	in := New("hello")
	err := in.Subscriber(&fakeSubscriber{err: boom}).Subscribe(context.Background(), bus.Subscription{}, nil)
	if !errors.Is(err, boom) {
		t.Errorf("Subscribe = %v, want %v", err, boom)
	}
	// Down from the start: nothing is subscribed until the context ends.
	if _, err := in.Set(Settings{Down: true}); err != nil {
		t.Fatal(err)
	}
	fake := &fakeSubscriber{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := in.Subscriber(fake).Subscribe(ctx, bus.Subscription{}, nil); err != nil {
		t.Errorf("Subscribe while down = %v, want nil once its context ends", err)
	}
	if calls, _ := fake.state(); calls != 0 {
		t.Errorf("subscriptions made while down = %d, want 0", calls)
	}
}
