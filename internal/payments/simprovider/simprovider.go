// Package simprovider is a simulated card provider whose answers are fixed
// by the card number, so that the shop's failures are reproducible, and
// which an admin can make hang or fail to inject faults into charges.
package simprovider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
)

// DeclinedCard is the card number the provider always declines.
const DeclinedCard = "4000000000000002"

// Reasons the provider gives for declining.
const (
	ReasonDeclined    = "card_declined"
	ReasonInvalidCard = "invalid_card"
)

// Mode is how the simulated provider behaves, switched by an admin to
// inject faults into charges.
type Mode string

// The provider's modes.
const (
	// ModeOK answers every charge by its card number.
	ModeOK Mode = "ok"
	// ModeTimeout never answers: a charge waits until its caller's deadline
	// (at most MaxHang), then fails, as a provider that hangs does.
	ModeTimeout Mode = "timeout"
	// ModeFail fails every charge at once, as a provider that is down does.
	ModeFail Mode = "fail"
)

// Modes lists every mode.
var Modes = []Mode{ModeOK, ModeTimeout, ModeFail}

// MaxHang bounds a charge in ModeTimeout whose caller set no deadline, so
// that a hung charge cannot hold its goroutine for ever.
const MaxHang = time.Minute

// ErrProviderFailed is what a charge fails with in ModeFail.
var ErrProviderFailed = errors.New("card provider failed (simulated)")

// ParseMode reads a mode by name; fail.Invalid for an unknown one.
func ParseMode(s string) (Mode, error) {
	if m := Mode(s); slices.Contains(Modes, m) {
		return m, nil
	}
	return "", fail.New(fail.Invalid, "mode must be one of ok, timeout or fail, not %q", s)
}

// Expect says in one line what payments does while the provider is in m.
func (m Mode) Expect() string {
	switch m {
	case ModeTimeout:
		return "every charge hangs until its caller's deadline, then fails and records nothing; " +
			"a charge asked for by an event is retried by the broker once per ack wait, and dead-lettered after its last attempt"
	case ModeFail:
		return "every charge fails at once and records nothing; " +
			"a charge asked for by an event is retried by the broker with backoff, and dead-lettered after its last attempt"
	}
	return "charges are approved or declined by card number"
}

// Provider is a payments.Provider that takes no real money: it declines
// DeclinedCard and any number that is not a valid card, and approves the
// rest, unless its mode says to hang or fail.
type Provider struct {
	mode  atomic.Value // Mode
	calls atomic.Int64
}

var _ payments.Provider = (*Provider)(nil)

// New returns a simulated provider in ModeOK.
func New() *Provider {
	p := &Provider{}
	p.mode.Store(ModeOK)
	return p
}

// Mode is the mode the provider is in.
func (p *Provider) Mode() Mode { return p.mode.Load().(Mode) }

// SetMode switches the provider to m; charges already waiting keep the
// mode they started in.
func (p *Provider) SetMode(m Mode) error {
	if _, err := ParseMode(string(m)); err != nil {
		return err
	}
	p.mode.Store(m)
	return nil
}

// Calls counts the charges that have reached the provider, in any mode.
func (p *Provider) Calls() int64 { return p.calls.Load() }

// Charge implements payments.Provider. In ModeOK it fails only when ctx is
// done, as a real provider's call would when the caller gives up.
func (p *Provider) Charge(ctx context.Context, _, card string, _ int64) (payments.Decision, error) {
	p.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return payments.Decision{}, fmt.Errorf("charging card: %w", err)
	}
	switch p.Mode() {
	case ModeTimeout:
		t := time.NewTimer(MaxHang)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return payments.Decision{}, fmt.Errorf("charging card: no answer from the provider: %w", ctx.Err())
		case <-t.C:
			return payments.Decision{}, fmt.Errorf("charging card: no answer from the provider within %v", MaxHang)
		}
	case ModeFail:
		return payments.Decision{}, fmt.Errorf("charging card: %w", ErrProviderFailed)
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
