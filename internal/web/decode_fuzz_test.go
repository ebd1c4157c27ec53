package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/fail"
)

// fuzzOrder has the shapes the shop's request bodies have: strings, whole
// numbers, a boolean, a nested object, a list of objects and a pointer.
type fuzzOrder struct {
	Items []struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
	} `json:"items"`
	Payment struct {
		Card string `json:"card"`
	} `json:"payment"`
	TotalCents int64   `json:"total_cents"`
	Gift       bool    `json:"gift"`
	Note       *string `json:"note"`
}

// FuzzDecode feeds Decode any content type and body: it never panics, and it
// either decodes one valid JSON value or refuses with a client's error
// (malformed 400, too large 413, unsupported 415), never an internal one.
func FuzzDecode(f *testing.F) {
	f.Add("application/json", []byte(`{"items":[{"product_id":"p1","quantity":2}],"payment":{"card":"4242424242424242"}}`))
	f.Add("application/json; charset=utf-8", []byte(`{"total_cents":9223372036854775807,"gift":true,"note":null}`))
	f.Add("application/merge-patch+json", []byte(`{"note":"\u0000\ud800"}`))
	f.Add("application/json", []byte(`{"items":[{"product_id":{"$ne":""},"quantity":1}]}`))
	f.Add("application/json", []byte(`{"total_cents":1e400}`))
	f.Add("application/json", []byte(`{"role":"admin"}`))
	f.Add("text/plain", []byte(`{}`))
	f.Add("application/json", []byte(`{"a":`))
	f.Add("application/json", []byte(`{} {}`))
	f.Add("", []byte(``))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", contentType)
		var got fuzzOrder
		err := Decode(httptest.NewRecorder(), r, &got)
		if err != nil {
			switch k := fail.KindOf(err); k {
			case fail.Malformed, fail.TooLarge, fail.Unsupported:
			default:
				t.Fatalf("Decode(%q, %q) = %v (kind %v), want malformed, too large or unsupported", contentType, body, err, k)
			}
			if StatusOf(fail.KindOf(err)) >= 500 {
				t.Fatalf("refusal %v maps to a 5xx", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Decode accepted invalid JSON %q", body)
		}
		// What was accepted reads back the same: nothing half-decoded.
		again, _ := json.Marshal(got)
		r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(again)))
		r.Header.Set("Content-Type", "application/json")
		var second fuzzOrder
		if err := Decode(httptest.NewRecorder(), r, &second); err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if !reflect.DeepEqual(got, second) {
			t.Fatalf("round trip changed %+v into %+v", got, second)
		}
	})
}
