package payments

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/fail"
)

func TestLuhn(t *testing.T) {
	tests := []struct {
		digits string
		want   bool
	}{
		{"4242424242424242", true},
		{"4000000000000002", true},
		{"4242424242424241", false},
		{"79927398713", true},
		{"79927398710", false},
		{"0", true},
		{"", false},
		{"4242a24242424242", false},
		{"378282246310005", true}, // Amex, odd length
		{"378282246310006", false},
	}
	for _, tt := range tests {
		if got := Luhn(tt.digits); got != tt.want {
			t.Errorf("Luhn(%q) = %v, want %v", tt.digits, got, tt.want)
		}
	}
}

func TestNormalizeCard(t *testing.T) {
	tests := []struct {
		name, card, want string
		ok               bool
	}{
		{"plain", "4242424242424242", "4242424242424242", true},
		{"grouped by spaces", "4242 4242 4242 4242", "4242424242424242", true},
		{"leading and trailing spaces", "  4242424242424242 ", "4242424242424242", true},
		{"twelve digits", "424242424242", "424242424242", true},
		{"twelve digits, bad checksum", "424242424243", "", false},
		{"nineteen digits", "4000000000000000006", "4000000000000000006", true},
		{"eleven digits", "00000000000", "", false},
		{"twenty digits", "00000000000000000000", "", false},
		{"bad checksum", "4242424242424241", "", false},
		{"dashes", "4242-4242-4242-4242", "", false},
		{"tab", "4242\t4242424242424242", "", false},
		{"letters", "4242abcd42424242", "", false},
		{"non-ASCII digits", "４２４２４２４２４２４２４２４２", "", false},
		{"empty", "", "", false},
		{"only spaces", "          ", "", false},
		{"far too many spaces", strings.Repeat(" ", 200) + "4242424242424242", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeCard(tt.card)
			if !tt.ok {
				if !fail.Is(err, fail.Invalid) {
					t.Fatalf("NormalizeCard(%q) error = %v, want fail.Invalid", tt.card, err)
				}
				if msg := fail.MessageOf(err); msg != "card number is not valid" {
					t.Errorf("message = %q, want %q", msg, "card number is not valid")
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeCard(%q) error = %v, want nil", tt.card, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeCard(%q) = %q, want %q", tt.card, got, tt.want)
			}
		})
	}
}

func TestValidateCharge(t *testing.T) {
	good := ChargeRequest{OrderID: "o1", UserID: "u1", AmountCents: 1999, Currency: "USD", Card: "4242424242424242"}
	tests := []struct {
		name    string
		edit    func(*ChargeRequest)
		wantErr string // substring of the message; empty means valid
	}{
		{"valid", func(*ChargeRequest) {}, ""},
		{"smallest amount", func(r *ChargeRequest) { r.AmountCents = 1 }, ""},
		{"largest amount", func(r *ChargeRequest) { r.AmountCents = 100_000_000 }, ""},
		{"zero amount", func(r *ChargeRequest) { r.AmountCents = 0 }, "amount_cents"},
		{"negative amount", func(r *ChargeRequest) { r.AmountCents = -5 }, "amount_cents"},
		{"amount too large", func(r *ChargeRequest) { r.AmountCents = 100_000_001 }, "amount_cents"},
		{"no currency", func(r *ChargeRequest) { r.Currency = "" }, "currency"},
		{"lower-case currency", func(r *ChargeRequest) { r.Currency = "usd" }, "currency"},
		{"other currency", func(r *ChargeRequest) { r.Currency = "EUR" }, "currency"},
		{"no order", func(r *ChargeRequest) { r.OrderID = "" }, "order_id"},
		{"huge order id", func(r *ChargeRequest) { r.OrderID = strings.Repeat("a", 101) }, "order_id"},
		{"order id with newline", func(r *ChargeRequest) { r.OrderID = "o\n1" }, "order_id"},
		{"no user", func(r *ChargeRequest) { r.UserID = "" }, "user_id"},
		{"bad card", func(r *ChargeRequest) { r.Card = "1234" }, "card number is not valid"},
		{"no card and no token", func(r *ChargeRequest) { r.Card = "" }, "card number is not valid"},
		{"a token instead of the card", func(r *ChargeRequest) { r.Card, r.CardToken = "", "card_1" }, ""},
		{"both card and token", func(r *ChargeRequest) { r.CardToken = "card_1" }, "either card or card_token"},
		{"huge token", func(r *ChargeRequest) { r.Card, r.CardToken = "", strings.Repeat("t", 101) }, "card_token"},
		{"a saga style", func(r *ChargeRequest) { r.Saga = SagaParallel }, ""},
		{"an unknown saga style", func(r *ChargeRequest) { r.Saga = "waterfall" }, "saga"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := good
			tt.edit(&req)
			err := validateCharge(req)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validateCharge() = %v, want nil", err)
				}
				return
			}
			if !fail.Is(err, fail.Invalid) || !strings.Contains(fail.MessageOf(err), tt.wantErr) {
				t.Fatalf("validateCharge() = %v, want fail.Invalid naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestDeclineReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"card_declined", "card_declined"},
		{"  insufficient_funds ", "insufficient_funds"},
		{"", "declined"},
		{"bad\x00reason", "declined"},
		{strings.Repeat("x", 101), "declined"},
	}
	for _, tt := range tests {
		if got := declineReason(tt.in); got != tt.want {
			t.Errorf("declineReason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
