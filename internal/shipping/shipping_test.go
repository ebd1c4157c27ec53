package shipping

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/fail"
)

func TestNormalizeAddress(t *testing.T) {
	good := Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"}
	tests := []struct {
		name    string
		edit    func(*Address)
		want    Address // when wantErr is empty
		wantErr string  // substring of the message
	}{
		{"valid", func(*Address) {}, good, ""},
		{"trimmed", func(a *Address) { a.Name = "  Ada Lovelace\t"; a.City = " London " }, good, ""},
		{"non-ASCII letters", func(a *Address) { a.City = "Zürich"; a.Country = "CH" },
			Address{Name: good.Name, Line1: good.Line1, City: "Zürich", PostalCode: good.PostalCode, Country: "CH"}, ""},
		{"200 characters", func(a *Address) { a.Line1 = strings.Repeat("é", 200) },
			Address{Name: good.Name, Line1: strings.Repeat("é", 200), City: good.City, PostalCode: good.PostalCode, Country: good.Country}, ""},
		{"no name", func(a *Address) { a.Name = "" }, Address{}, "address.name"},
		{"blank name", func(a *Address) { a.Name = "   " }, Address{}, "address.name"},
		{"no line1", func(a *Address) { a.Line1 = "" }, Address{}, "address.line1"},
		{"no city", func(a *Address) { a.City = "" }, Address{}, "address.city"},
		{"no postal code", func(a *Address) { a.PostalCode = "" }, Address{}, "address.postal_code"},
		{"no country", func(a *Address) { a.Country = "" }, Address{}, "address.country"},
		{"201 characters", func(a *Address) { a.Line1 = strings.Repeat("x", 201) }, Address{}, "address.line1"},
		{"newline inside", func(a *Address) { a.City = "Lon\ndon" }, Address{}, "address.city must not contain control characters"},
		{"NUL", func(a *Address) { a.Name = "Ada\x00" }, Address{}, "address.name"},
		{"C1 control", func(a *Address) { a.PostalCode = "SW1\u00854JH" }, Address{}, "address.postal_code"},
		{"invalid UTF-8", func(a *Address) { a.Line1 = "\xff\xfe" }, Address{}, "address.line1"},
		{"lower-case country", func(a *Address) { a.Country = "gb" }, Address{}, "address.country"},
		{"three-letter country", func(a *Address) { a.Country = "GBR" }, Address{}, "address.country"},
		{"digits as country", func(a *Address) { a.Country = "G1" }, Address{}, "address.country"},
		{"non-ASCII country", func(a *Address) { a.Country = "ÜK" }, Address{}, "address.country"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			tt.edit(&in)
			got, err := NormalizeAddress(in)
			if tt.wantErr != "" {
				if !fail.Is(err, fail.Invalid) || !strings.Contains(fail.MessageOf(err), tt.wantErr) {
					t.Fatalf("NormalizeAddress() error = %v, want fail.Invalid naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeAddress() error = %v, want nil", err)
			}
			if got != tt.want {
				t.Errorf("NormalizeAddress() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"0194f3b2-7c1e-7000-8000-000000000000", true},
		{"o", true},
		{"", false},
		{strings.Repeat("a", 100), true},
		{strings.Repeat("a", 101), false},
		{"a\tb", false},
	}
	for _, tt := range tests {
		err := validateID("order_id", tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("validateID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}
