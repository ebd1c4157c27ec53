package payments_test

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
)

// FuzzNormalizeCard feeds any string to NormalizeCard: it never panics,
// refuses with fail.Invalid (422) whose message never repeats the number,
// and what it accepts is 12 to 19 digits passing Luhn, already normal.
func FuzzNormalizeCard(f *testing.F) {
	for _, s := range []string{"4242424242424242", "4242 4242 4242 4242", "4000000000000002", "4242424242424241",
		"", "abc", "' OR 1=1 --", "424242424242424242424242", "4242\u00a04242 4242 4242", "４２４２４２４２４２４２４２４２"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, card string) {
		got, err := payments.NormalizeCard(card)
		if err != nil {
			if !fail.Is(err, fail.Invalid) {
				t.Fatalf("NormalizeCard(%q) = %v, want fail.Invalid", card, err)
			}
			if digits := strings.ReplaceAll(card, " ", ""); len(digits) >= 4 && strings.Contains(fail.MessageOf(err), digits) {
				t.Fatalf("the refusal %q repeats the number", fail.MessageOf(err))
			}
			return
		}
		if len(got) < 12 || len(got) > 19 || strings.Trim(got, "0123456789") != "" || !payments.Luhn(got) {
			t.Fatalf("NormalizeCard(%q) accepted %q", card, got)
		}
		if again, err := payments.NormalizeCard(got); err != nil || again != got {
			t.Fatalf("NormalizeCard is not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}
