package event_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/event"
)

func withPayload(t *testing.T, payload string) event.Event {
	t.Helper()
	e, err := event.New("orders", "orders.order.created", "OrderCreated", 1, "o1", json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRequire(t *testing.T) {
	tests := []struct {
		name        string
		payload     string
		fields      []string
		wantMissing []string // nil: no error
	}{
		{"all present", `{"order_id":"o1","saga":"parallel","extra":1}`, []string{"order_id", "saga"}, nil},
		{"nothing required", `{}`, nil, nil},
		{"empty values are present", `{"order_id":"","total_cents":0,"items":[]}`, []string{"order_id", "total_cents", "items"}, nil},
		{"one absent", `{"order_id":"o1"}`, []string{"order_id", "saga"}, []string{"saga"}},
		{"null is absent", `{"order_id":null,"saga":"parallel"}`, []string{"order_id", "saga"}, []string{"order_id"}},
		{"several absent", `{"other":1}`, []string{"order_id", "saga", "items"}, []string{"order_id", "saga", "items"}},
		{"not an object", `[1,2]`, []string{"order_id"}, []string{"order_id"}},
		{"null payload", `null`, []string{"order_id"}, []string{"order_id"}},
		{"nested names are not top-level", `{"shipping_address":{"order_id":"o1"}}`, []string{"order_id"}, []string{"order_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := event.Require(withPayload(t, tt.payload), tt.fields...)
			if tt.wantMissing == nil {
				if err != nil {
					t.Fatalf("Require(%s, %v) = %v, want nil", tt.payload, tt.fields, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Require(%s, %v) = nil, want an error naming %v", tt.payload, tt.fields, tt.wantMissing)
			}
			for _, f := range tt.wantMissing {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("Require(%s, %v) = %q, want it to name %s", tt.payload, tt.fields, err, f)
				}
			}
		})
	}
}

func TestRequireNamesOnlyTheMissing(t *testing.T) {
	err := event.Require(withPayload(t, `{"order_id":"o1"}`), "order_id", "saga")
	if err == nil || strings.Contains(err.Error(), "order_id,") || !strings.HasSuffix(err.Error(), "lacks payload fields saga") {
		t.Errorf("Require = %v, want it to name saga only", err)
	}
}

func TestReadsCheck(t *testing.T) {
	reads := event.Reads{
		"orders.order.created":   {"order_id", "saga"},
		"orders.order.cancelled": {"order_id"},
	}
	ok := withPayload(t, `{"order_id":"o1","saga":"parallel"}`)
	if err := reads.Check(ok); err != nil {
		t.Errorf("Check(complete) = %v, want nil", err)
	}
	lacking := withPayload(t, `{"order_id":"o1"}`)
	if err := reads.Check(lacking); err == nil || !strings.Contains(err.Error(), "saga") {
		t.Errorf("Check(no saga) = %v, want an error naming saga", err)
	}
	stray := withPayload(t, `{"order_id":"o1","saga":"parallel"}`)
	stray.Topic = "orders.order.completed"
	if err := reads.Check(stray); err == nil || !strings.Contains(err.Error(), "orders.order.completed") {
		t.Errorf("Check(unread topic) = %v, want an error naming the topic", err)
	}
	if got, want := reads.Topics(), []string{"orders.order.cancelled", "orders.order.created"}; !slices.Equal(got, want) {
		t.Errorf("Topics() = %v, want %v", got, want)
	}
}

func TestAsyncAPIIsEmbedded(t *testing.T) {
	if !strings.HasPrefix(string(event.AsyncAPI), "asyncapi: 2.6.0\n") {
		t.Errorf("AsyncAPI starts %q, want an AsyncAPI 2.6.0 document", string(event.AsyncAPI[:min(40, len(event.AsyncAPI))]))
	}
}
