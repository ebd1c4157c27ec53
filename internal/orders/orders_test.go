package orders

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/fail"
)

func validRequest() PlaceRequest {
	return PlaceRequest{
		Items:   []Line{{ProductID: "p1", Quantity: 2}},
		Card:    "4242 4242 4242 4242",
		Address: Address{Name: "Ada", Line1: "1 Main St", City: "London", PostalCode: "N1", Country: "GB"},
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name   string
		change func(*PlaceRequest)
		want   string // part of the error message; empty means valid
	}{
		{"valid", func(*PlaceRequest) {}, ""},
		{"no items", func(r *PlaceRequest) { r.Items = nil }, "1 to 50 items"},
		{"too many items", func(r *PlaceRequest) {
			for i := range 51 {
				r.Items = append(r.Items, Line{ProductID: strings.Repeat("p", i+1), Quantity: 1})
			}
		}, "1 to 50 items"},
		{"zero quantity", func(r *PlaceRequest) { r.Items[0].Quantity = 0 }, "quantity"},
		{"negative quantity", func(r *PlaceRequest) { r.Items[0].Quantity = -3 }, "quantity"},
		{"huge quantity", func(r *PlaceRequest) { r.Items[0].Quantity = 1 << 40 }, "quantity"},
		{"merged quantity too big", func(r *PlaceRequest) {
			r.Items = []Line{{"p1", 600}, {"p1", 600}}
		}, "quantity"},
		{"empty product", func(r *PlaceRequest) { r.Items[0].ProductID = "" }, "product_id"},
		{"card with letters", func(r *PlaceRequest) { r.Card = "4242abcd42424242" }, "payment.card"},
		{"short card", func(r *PlaceRequest) { r.Card = "4242" }, "payment.card"},
		{"missing city", func(r *PlaceRequest) { r.Address.City = "  " }, "shipping_address.city"},
		{"control character", func(r *PlaceRequest) { r.Address.Name = "Ada\x00" }, "shipping_address.name"},
		{"C1 control character", func(r *PlaceRequest) { r.Address.Name = "A\u0085da" }, "shipping_address.name"},
		{"invalid UTF-8", func(r *PlaceRequest) { r.Address.City = "Lon\xffdon" }, "shipping_address.city"},
		{"lower-case country", func(r *PlaceRequest) { r.Address.Country = "gb" }, "country"},
		{"three-letter country", func(r *PlaceRequest) { r.Address.Country = "GBR" }, "country"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.change(&r)
			_, err := r.Normalize()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Normalize() = %v, want no error", err)
				}
				return
			}
			if !fail.Is(err, fail.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Normalize() = %v, want an invalid error about %q", err, tt.want)
			}
		})
	}
}

func TestNormalizeMergesDuplicateProducts(t *testing.T) {
	r := validRequest()
	r.Items = []Line{{"p1", 1}, {"p2", 2}, {"p1", 3}}
	got, err := r.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{"p1", 4}, {"p2", 2}}
	if len(got.Items) != len(want) || got.Items[0] != want[0] || got.Items[1] != want[1] {
		t.Errorf("items = %v, want %v", got.Items, want)
	}
	if got.Card != "4242424242424242" {
		t.Errorf("card = %q, want spaces removed", got.Card)
	}
}

func TestFingerprintTellsCheckoutsApart(t *testing.T) {
	a, _ := validRequest().Normalize()
	b, _ := validRequest().Normalize()
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("the same checkout has two fingerprints")
	}
	b.Items[0].Quantity++
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("different checkouts share a fingerprint")
	}
}
