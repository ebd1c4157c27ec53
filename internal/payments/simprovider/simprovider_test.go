package simprovider_test

import (
	"context"
	"testing"

	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/simprovider"
)

func TestCharge(t *testing.T) {
	tests := []struct {
		card string
		want payments.Decision
	}{
		{"4242424242424242", payments.Decision{Approved: true}},
		{"4242 4242 4242 4242", payments.Decision{Approved: true}},
		{"5555555555554444", payments.Decision{Approved: true}},
		{"4000000000000002", payments.Decision{Reason: simprovider.ReasonDeclined}},
		{"4000 0000 0000 0002", payments.Decision{Reason: simprovider.ReasonDeclined}},
		{"4242424242424241", payments.Decision{Reason: simprovider.ReasonInvalidCard}},
		{"", payments.Decision{Reason: simprovider.ReasonInvalidCard}},
	}
	p := simprovider.New()
	for _, tt := range tests {
		got, err := p.Charge(context.Background(), "order-1", tt.card, 100)
		if err != nil {
			t.Fatalf("Charge(%q) error = %v", tt.card, err)
		}
		if got != tt.want {
			t.Errorf("Charge(%q) = %+v, want %+v", tt.card, got, tt.want)
		}
	}
}

func TestChargeFailsWhenTheCallerGaveUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := simprovider.New().Charge(ctx, "order-1", "4242424242424242", 100); err == nil {
		t.Fatal("Charge with a cancelled context = nil error, want one")
	}
}
