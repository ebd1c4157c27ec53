package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	tests := []struct {
		name, contentType, body string
		want                    fail.Kind
		ok                      bool
	}{
		{"valid", "application/json", `{"name":"a","n":1}`, 0, true},
		{"charset", "application/json; charset=utf-8", `{"name":"a"}`, 0, true},
		{"no content type", "", `{"name":"a"}`, fail.Unsupported, false},
		{"form", "application/x-www-form-urlencoded", `name=a`, fail.Unsupported, false},
		{"empty", "application/json", ``, fail.Malformed, false},
		{"malformed", "application/json", `{"name":`, fail.Malformed, false},
		{"syntax", "application/json", `{"name" "a"}`, fail.Malformed, false},
		{"unknown field", "application/json", `{"name":"a","role":"admin"}`, fail.Malformed, false},
		{"wrong type", "application/json", `{"n":"1"}`, fail.Malformed, false},
		{"huge number", "application/json", `{"n":1e400}`, fail.Malformed, false},
		{"two values", "application/json", `{"name":"a"}{"name":"b"}`, fail.Malformed, false},
		{"array", "application/json", `[1,2]`, fail.Malformed, false},
		{"too large", "application/json", `{"name":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, fail.TooLarge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var b body
			err := Decode(httptest.NewRecorder(), r, &b)
			if tt.ok {
				if err != nil {
					t.Fatalf("Decode = %v, want success", err)
				}
				return
			}
			if got := fail.KindOf(err); got != tt.want || err == nil {
				t.Fatalf("Decode = %v (kind %v), want kind %v", err, got, tt.want)
			}
		})
	}
}

func TestErrorHidesInternals(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	Error(w, r, fail.Wrap(fail.Internal, errSecret{}, "database exploded at /var/lib/secret"))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", w.Code)
	}
	if strings.Contains(w.Body.String(), "secret") {
		t.Errorf("body leaks internals: %s", w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != ProblemContentType {
		t.Errorf("content type = %q", ct)
	}
}

type errSecret struct{}

func (errSecret) Error() string { return "pq: password authentication failed for user secret" }

func TestStatusRoundTrip(t *testing.T) {
	for k := fail.Invalid; k <= fail.TooMany; k++ {
		if got := KindOfStatus(StatusOf(k)); got != k {
			t.Errorf("KindOfStatus(StatusOf(%v)) = %v", k, got)
		}
	}
}

// Decode reads a body as every other JSON parser would, or refuses it:
// encoding/json alone takes a field named in another case, and the last of
// a repeated key.
func TestDecodeIsStrictAboutKeys(t *testing.T) {
	type line struct {
		ProductID string `json:"product_id"`
		Qty       int    `json:"qty"`
	}
	type base struct {
		ID string `json:"id"`
	}
	type body struct {
		base
		Name    string                 `json:"name"`
		Lines   []line                 `json:"lines"`
		Address *struct{ City string } `json:"address"`
		Labels  map[string]string      `json:"labels"`
		Raw     json.RawMessage        `json:"raw"`
		At      time.Time              `json:"at"`
		Secret  string                 `json:"-"`
		Plain   int
	}
	for _, c := range []struct {
		body, refusal string // refusal empty: accepted
	}{
		{`{"id":"1","name":"a","lines":[{"product_id":"p","qty":1}],"address":{"City":"L"},"labels":{"Any":"x"},"raw":{"NaMe":1,"x":[1]},"at":"2026-11-26T07:00:00Z","Plain":2}`, ""},
		{`{"NAME":"a"}`, `unknown field "NAME"`},
		{`{"Id":"1"}`, `unknown field "Id"`},
		{`{"lines":[{"product_id":"p","QTY":1}]}`, `unknown field "lines[].QTY"`},
		{`{"address":{"city":"L"}}`, `unknown field "address.city"`},
		{`{"plain":1}`, `unknown field "plain"`},
		{`{"Secret":"x"}`, `unknown field "Secret"`},
		{`{"name":"a","name":"b"}`, `field "name" appears more than once`},
		{`{"lines":[{"qty":1,"qty":2}]}`, `field "lines[].qty" appears more than once`},
		{`{"labels":{"k":"1","k":"2"}}`, `field "labels.k" appears more than once`},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
		r.Header.Set("Content-Type", "application/json")
		var got body
		err := Decode(httptest.NewRecorder(), r, &got)
		switch {
		case c.refusal == "" && err != nil:
			t.Errorf("Decode(%s) = %v, want it accepted", c.body, err)
		case c.refusal != "" && (!fail.Is(err, fail.Malformed) || !strings.Contains(fail.MessageOf(err), c.refusal)):
			t.Errorf("Decode(%s) = %v, want 400 saying %s", c.body, err, c.refusal)
		}
	}
}
