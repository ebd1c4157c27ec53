// Package simprovider is a simulated card provider whose answers are fixed
// by the card number, so that the shop's failures are reproducible.
package simprovider

import (
	"context"
	"fmt"

	"github.com/microshop/microshop/internal/payments"
)

// DeclinedCard is the card number the provider always declines.
const DeclinedCard = "4000000000000002"

// Reasons the provider gives for declining.
const (
	ReasonDeclined    = "card_declined"
	ReasonInvalidCard = "invalid_card"
)

// Provider is a payments.Provider that takes no real money: it declines
// DeclinedCard and any number that is not a valid card, and approves the rest.
type Provider struct{}

var _ payments.Provider = (*Provider)(nil)

// New returns a simulated provider.
func New() *Provider { return &Provider{} }

// Charge implements payments.Provider. It fails only when ctx is done, as a
// real provider's call would when the caller gives up.
func (*Provider) Charge(ctx context.Context, _, card string, _ int64) (payments.Decision, error) {
	if err := ctx.Err(); err != nil {
		return payments.Decision{}, fmt.Errorf("charging card: %w", err)
	}
	// A real provider checks the number itself, whatever the caller did.
	digits, err := payments.NormalizeCard(card)
	if err != nil {
		return payments.Decision{Reason: ReasonInvalidCard}, nil
	}
	if digits == DeclinedCard {
		return payments.Decision{Reason: ReasonDeclined}, nil
	}
	return payments.Decision{Approved: true}, nil
}
