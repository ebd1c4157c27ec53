package web

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/microshop/microshop/internal/fail"
)

// FuzzPageParams feeds PageParams any query string: it never panics, gives a
// limit from 1 to the maximum and the cursor as sent, or refuses with
// fail.Invalid (422).
func FuzzPageParams(f *testing.F) {
	for _, q := range []string{"", "limit=10", "limit=1000&after=0198", "limit=0", "limit=-1", "limit=1001",
		"limit=9223372036854775808", "limit=1e3", "limit=%2B5", "limit=", "limit=1&limit=2", "after=%zz", ";limit=5", "limit=%00"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.RawQuery = rawQuery
		after, limit, err := PageParams(r, 100, 1000)
		if err != nil {
			if !fail.Is(err, fail.Invalid) {
				t.Fatalf("PageParams(%q) = %v, want fail.Invalid", rawQuery, err)
			}
			return
		}
		if limit < 1 || limit > 1000 {
			t.Fatalf("PageParams(%q) limit = %d, want 1 to 1000", rawQuery, limit)
		}
		q, _ := url.ParseQuery(rawQuery)
		if after != q.Get("after") {
			t.Fatalf("PageParams(%q) after = %q, want %q as sent", rawQuery, after, q.Get("after"))
		}
		if !q.Has("limit") && limit != 100 {
			t.Fatalf("PageParams(%q) limit = %d, want the default 100", rawQuery, limit)
		}
	})
}
