package shipping_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/shipping"
)

// FuzzNormalizeAddress feeds any address to NormalizeAddress: it never
// panics, refuses with fail.Invalid (422), and what it accepts is trimmed,
// printable, bounded, with an upper-case two-letter country, already normal.
func FuzzNormalizeAddress(f *testing.F) {
	f.Add("Ada Lovelace", "12 St James's Square", "London", "SW1Y 4JH", "GB")
	f.Add("  Ada  ", " 1 ", " C ", " 1 ", " US ")
	f.Add("Robert'); DROP TABLE shipments;--", `{"$gt": ""}`, "C", "1", "us")
	f.Add("A\u0085B", "1", "C", "1", "GB")
	f.Add("", "1", "C", "1", "GBR")
	f.Add("\xff", "\x00", "C", "1", "G1")
	f.Fuzz(func(t *testing.T, name, line1, city, postal, country string) {
		in := shipping.Address{Name: name, Line1: line1, City: city, PostalCode: postal, Country: country}
		got, err := shipping.NormalizeAddress(in)
		if err != nil {
			if !fail.Is(err, fail.Invalid) {
				t.Fatalf("NormalizeAddress(%+v) = %v, want fail.Invalid", in, err)
			}
			return
		}
		for _, v := range []string{got.Name, got.Line1, got.City, got.PostalCode, got.Country} {
			if v == "" || v != strings.TrimSpace(v) || !utf8.ValidString(v) || utf8.RuneCountInString(v) > 200 || strings.ContainsFunc(v, unicode.IsControl) {
				t.Fatalf("NormalizeAddress(%+v) accepted field %q", in, v)
			}
		}
		if len(got.Country) != 2 || strings.Trim(got.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Fatalf("NormalizeAddress(%+v) accepted country %q", in, got.Country)
		}
		if again, err := shipping.NormalizeAddress(got); err != nil || again != got {
			t.Fatalf("NormalizeAddress is not idempotent: %+v -> %+v, %v", got, again, err)
		}
	})
}
