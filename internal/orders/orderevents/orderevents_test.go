package orderevents_test

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderevents"
)

// Project checks an event against Reads before it touches the read model:
// these events are refused with a nil projector, which any effect would
// dereference.
func TestProjectRefusesWhatItCannotApplyWhole(t *testing.T) {
	tests := []struct {
		name, topic string
		payload     map[string]any
		want        string // in the error
	}{
		{"an order without its user", orders.TopicOrderCreated,
			map[string]any{"order_id": "o1", "saga": "parallel", "items": []any{}, "total_cents": 100, "currency": "USD", "created_at": "2025-01-01T00:00:00Z"},
			"user_id"},
		{"an ending with a null order", orders.TopicOrderCancelled,
			map[string]any{"order_id": nil, "user_id": "u1", "saga": "parallel", "updated_at": "2025-01-01T00:00:00Z"},
			"order_id"},
		{"a user without a name", "users.user.created", map[string]any{"user_id": "u1"}, "name"},
		{"a rename without a user", "users.user.renamed", map[string]any{"name": "Ada"}, "user_id"},
		{"an import without its status", orders.TopicOrderImported,
			map[string]any{"order_id": "o1", "user_id": "u1", "saga": "none", "origin": "legacy", "items": []any{}, "total_cents": 100,
				"currency": "USD", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"},
			"status"},
		{"an import still pending", orders.TopicOrderImported,
			map[string]any{"order_id": "o1", "user_id": "u1", "status": "PENDING", "saga": "none", "origin": "legacy", "items": []any{},
				"total_cents": 100, "currency": "USD", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"},
			"has ended"},
		{"a topic the read model is not built from", "payments.payment.processed", map[string]any{"order_id": "o1"}, "payments.payment.processed"},
		{"a topic orders does not read", "orders.order.shipped", map[string]any{"order_id": "o1"}, "does not read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := event.New("test", tt.topic, "Test", 1, "o1", tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			err = orderevents.Project(t.Context(), nil, e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Project(%s %v) = %v, want an error naming %q", tt.topic, tt.payload, err, tt.want)
			}
		})
	}
}
