package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestDeadlineTravelsAndIsCapped(t *testing.T) {
	var got time.Time
	var ran int
	h := Deadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran++
		got, _ = r.Context().Deadline()
	}))
	serve := func(header string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if header != "" {
			r.Header.Set(DeadlineHeader, header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// The caller's deadline becomes the request's.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := http.Header{}
	SetDeadline(ctx, out)
	want, _ := ctx.Deadline()
	serve(out.Get(DeadlineHeader))
	if got.UnixMilli() != want.UnixMilli() {
		t.Errorf("request deadline %v, want the caller's %v", got, want)
	}
	// A caller cannot stretch the budget past MaxBudget.
	serve(strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10))
	if time.Until(got) > MaxBudget {
		t.Errorf("a deadline an hour away became %v away, want at most %v", time.Until(got), MaxBudget)
	}
	// A deadline that has passed starts no work.
	before := ran
	w := serve(strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10))
	if w.Code != http.StatusServiceUnavailable || ran != before {
		t.Errorf("a passed deadline: status %d, handler ran %d times; want 503 and no run", w.Code, ran-before)
	}
	// No header, or a malformed one: no deadline imposed.
	for _, h := range []string{"", "soon"} {
		got = time.Time{}
		serve(h)
		if !got.IsZero() {
			t.Errorf("header %q imposed deadline %v", h, got)
		}
	}
}
