package web

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/microshop/microshop/internal/fail"
)

func TestPageParams(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		wantAfter string
		wantLimit int
		wantErr   bool
	}{
		{name: "nothing asked", query: "", wantLimit: 100},
		{name: "a limit", query: "limit=7", wantLimit: 7},
		{name: "the smallest limit", query: "limit=1", wantLimit: 1},
		{name: "the largest limit", query: "limit=1000", wantLimit: 1000},
		{name: "a plus sign, as strconv reads it", query: "limit=%2B5", wantLimit: 5},
		{name: "a cursor", query: "after=0198-abc", wantAfter: "0198-abc", wantLimit: 100},
		{name: "a cursor and a limit", query: "limit=2&after=p2", wantAfter: "p2", wantLimit: 2},
		{name: "an empty cursor", query: "after=", wantLimit: 100},
		{name: "zero", query: "limit=0", wantErr: true},
		{name: "negative", query: "limit=-1", wantErr: true},
		{name: "one too many", query: "limit=1001", wantErr: true},
		{name: "huge", query: "limit=99999999999999999999", wantErr: true},
		{name: "empty", query: "limit=", wantErr: true},
		{name: "not a number", query: "limit=abc", wantErr: true},
		{name: "fractional", query: "limit=1.5", wantErr: true},
		{name: "spaced", query: "limit=%205", wantErr: true},
		{name: "bad limit with a cursor", query: "limit=0&after=p2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/things?"+tt.query, nil)
			after, limit, err := PageParams(r, 100, 1000)
			if tt.wantErr {
				if !fail.Is(err, fail.Invalid) {
					t.Fatalf("PageParams(%q) error: got %v, want kind invalid", tt.query, err)
				}
				if got, want := fail.MessageOf(err), "limit must be a whole number from 1 to 1000"; got != want {
					t.Errorf("PageParams(%q) message: got %q, want %q", tt.query, got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("PageParams(%q): got %v, want nil", tt.query, err)
			}
			if after != tt.wantAfter || limit != tt.wantLimit {
				t.Errorf("PageParams(%q): got after %q limit %d, want %q and %d", tt.query, after, limit, tt.wantAfter, tt.wantLimit)
			}
		})
	}
}

// TestPageParamsKeepsEachServicesBounds holds PageParams to the default and
// maximum it is given rather than to any of its own.
func TestPageParamsKeepsEachServicesBounds(t *testing.T) {
	tests := []struct {
		defaultLimit, maxLimit int
		query                  string
		wantLimit              int
		wantErr                bool
	}{
		{defaultLimit: 50, maxLimit: 1000, query: "", wantLimit: 50},
		{defaultLimit: 0, maxLimit: 1000, query: "", wantLimit: 0}, // the service picks
		{defaultLimit: 10, maxLimit: 20, query: "limit=20", wantLimit: 20},
		{defaultLimit: 10, maxLimit: 20, query: "limit=21", wantErr: true},
	}
	for _, tt := range tests {
		name := strconv.Itoa(tt.defaultLimit) + "," + strconv.Itoa(tt.maxLimit) + "?" + tt.query
		t.Run(name, func(t *testing.T) {
			_, limit, err := PageParams(httptest.NewRequest("GET", "/things?"+tt.query, nil), tt.defaultLimit, tt.maxLimit)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("error: got %v, want an error: %t", err, tt.wantErr)
			}
			if !tt.wantErr && limit != tt.wantLimit {
				t.Errorf("limit: got %d, want %d", limit, tt.wantLimit)
			}
			if tt.wantErr {
				if got, want := fail.MessageOf(err), "limit must be a whole number from 1 to "+strconv.Itoa(tt.maxLimit); got != want {
					t.Errorf("message: got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestPageOf(t *testing.T) {
	tests := []struct {
		name  string
		items []int
		next  string
		want  string
	}{
		{name: "empty is an array, not null", items: nil, want: `{"items":[],"next":""}`},
		{name: "last page", items: []int{1, 2}, want: `{"items":["#1","#2"],"next":""}`},
		{name: "more to come", items: []int{3}, next: "c3", want: `{"items":["#3"],"next":"c3"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PageOf(tt.items, tt.next, func(n int) string { return "#" + strconv.Itoa(n) })
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("PageOf(%v, %q): got %s, want %s", tt.items, tt.next, b, tt.want)
			}
		})
	}
}
