package orders_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/orders"
)

// FuzzPlaceRequestNormalize feeds any checkout body to PlaceRequest.Normalize
// (after the JSON decoding the handler does): it never panics, refuses with
// fail.Invalid (422), and what it accepts keeps every bound of an order and
// is already normal.
func FuzzPlaceRequestNormalize(f *testing.F) {
	f.Add([]byte(`{"items":[{"product_id":"p1","quantity":2},{"product_id":"p1","quantity":3}],"card":" 4242 4242 4242 4242 ","shipping_address":{"name":" Ada ","line1":"1 Main St","city":"London","postal_code":"SW1","country":"GB"}}`))
	f.Add([]byte(`{"items":[],"card":"4242424242424242","shipping_address":{"name":"A","line1":"1","city":"C","postal_code":"1","country":"US"}}`))
	f.Add([]byte(`{"items":[{"product_id":"' OR 1=1 --","quantity":0}],"card":"x"}`))
	f.Add([]byte(`{"items":[{"product_id":"p","quantity":1000},{"product_id":"p","quantity":1}],"card":"4242424242424242"}`))
	f.Add([]byte(`{"items":[{"product_id":"p","quantity":-1}],"card":"4242424242424242","shipping_address":{"name":"\u0007","line1":"1","city":"C","postal_code":"1","country":"us"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req orders.PlaceRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			return // the handler answers 400 before Normalize
		}
		got, err := req.Normalize()
		if err != nil {
			if !fail.Is(err, fail.Invalid) {
				t.Fatalf("Normalize(%s) = %v (kind %v), want fail.Invalid", raw, err, fail.KindOf(err))
			}
			return
		}
		if n := len(got.Items); n < 1 || n > orders.MaxItems {
			t.Fatalf("accepted %d items", n)
		}
		seen := map[string]bool{}
		for _, l := range got.Items {
			if l.ProductID == "" || seen[l.ProductID] {
				t.Fatalf("accepted an empty or repeated product id %q: %+v", l.ProductID, got.Items)
			}
			seen[l.ProductID] = true
			if l.Quantity < 1 || l.Quantity > orders.MaxQuantity {
				t.Fatalf("accepted quantity %d", l.Quantity)
			}
		}
		if len(got.Card) < 12 || len(got.Card) > 19 || strings.Trim(got.Card, "0123456789") != "" {
			t.Fatalf("accepted card %q", got.Card)
		}
		a := got.Address
		for _, v := range []string{a.Name, a.Line1, a.City, a.PostalCode, a.Country} {
			if v == "" || v != strings.TrimSpace(v) || utf8.RuneCountInString(v) > 200 {
				t.Fatalf("accepted address field %q", v)
			}
		}
		if len(a.Country) != 2 || strings.Trim(a.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Fatalf("accepted country %q", a.Country)
		}
		again, err := got.Normalize()
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("Normalize is not idempotent: %+v -> %+v, %v", got, again, err)
		}
	})
}
