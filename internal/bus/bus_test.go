package bus

import (
	"context"
	"testing"
	"time"
)

func TestValidateTopic(t *testing.T) {
	tests := []struct {
		topic string
		ok    bool
	}{
		{"orders.order.created", true},
		{"orders.order_created", true},
		{"shop-2.x", true},
		{"orders", false},
		{"orders.", false},
		{".order.created", false},
		{"orders..created", false},
		{"Orders.order.created", false},
		{"orders.*", false},
		{"orders.>", false},
		{"orders.#", false},
		{"orders.order created", false},
		{"", false},
	}
	for _, tc := range tests {
		if err := ValidateTopic(tc.topic); (err == nil) != tc.ok {
			t.Errorf("ValidateTopic(%q) = %v, want ok %v", tc.topic, err, tc.ok)
		}
	}
}

func TestSubscriptionValidate(t *testing.T) {
	dl := func(context.Context, Delivery, []byte, error) error { return nil }
	ok := Subscription{Group: "Inventory_v2", Topics: []string{"orders.order.created"}, DeadLetter: dl}.WithDefaults()
	tests := []struct {
		name  string
		spoil func(*Subscription)
		ok    bool
	}{
		{"complete", func(*Subscription) {}, true},
		{"no group", func(s *Subscription) { s.Group = "" }, false},
		{"group with a dot", func(s *Subscription) { s.Group = "a.b" }, false},
		{"group with a wildcard", func(s *Subscription) { s.Group = "a*" }, false},
		{"no topics", func(s *Subscription) { s.Topics = nil }, false},
		{"bad topic among good", func(s *Subscription) { s.Topics = append(s.Topics, "orders.>") }, false},
		{"no dead-letter handler", func(s *Subscription) { s.DeadLetter = nil }, false},
		{"MaxDeliver below one", func(s *Subscription) { s.MaxDeliver = -1 }, false},
		{"negative AckWait", func(s *Subscription) { s.AckWait = -time.Second }, false},
		{"negative Concurrency", func(s *Subscription) { s.Concurrency = -2 }, false},
	}
	for _, tc := range tests {
		s := ok
		tc.spoil(&s)
		if err := s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	s := Subscription{}.WithDefaults()
	if s.MaxDeliver != DefaultMaxDeliver || s.AckWait != DefaultAckWait || s.Concurrency != DefaultConcurrency || s.Backoff == nil {
		t.Fatalf("WithDefaults() = %+v, want every default", s)
	}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 200 * time.Millisecond}, {2, 400 * time.Millisecond}, {5, 3200 * time.Millisecond}, {6, 5 * time.Second}, {1000, 5 * time.Second}} {
		if got := s.Backoff(tc.attempt); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
	set := Subscription{MaxDeliver: 2, AckWait: time.Second, Concurrency: 1}.WithDefaults()
	if set.MaxDeliver != 2 || set.AckWait != time.Second || set.Concurrency != 1 {
		t.Errorf("WithDefaults() changed set fields: %+v", set)
	}
}

func TestValidateNamespace(t *testing.T) {
	tests := []struct {
		ns string
		ok bool
	}{
		{"ci-1234", true},
		{"a", true},
		{"-", true},
		{"0123456789abcdefghijklmnopqrstuv", true}, // 32
		{"", false},
		{"0123456789abcdefghijklmnopqrstuvw", false}, // 33
		{"Staging", false},
		{"a_b", false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"é", false},
	}
	for _, tc := range tests {
		if err := ValidateNamespace(tc.ns); (err == nil) != tc.ok {
			t.Errorf("ValidateNamespace(%q) = %v, want ok %v", tc.ns, err, tc.ok)
		}
	}
}
