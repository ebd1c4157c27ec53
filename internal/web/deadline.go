package web

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// DeadlineHeader carries a caller's deadline to the service it calls, as
// Unix milliseconds, so that a budget set at the edge bounds the work at
// every hop behind it: a service never works for a caller who has given up.
const DeadlineHeader = "X-Microshop-Deadline"

// MaxBudget bounds what a deadline header can ask for: a caller can shorten
// a request's budget, never stretch it past this.
const MaxBudget = 30 * time.Second

// SetDeadline puts ctx's deadline, if it has one, on an outgoing request.
func SetDeadline(ctx context.Context, h http.Header) {
	if d, ok := ctx.Deadline(); ok {
		h.Set(DeadlineHeader, strconv.FormatInt(d.UnixMilli(), 10))
	}
}

// Deadline gives a request the deadline its caller sent, capped at
// MaxBudget from now; a request whose deadline has already passed is
// answered 503 at once, without any work started for it. A malformed
// header is ignored: it cannot make a request run longer than the server's
// own timeouts anyway.
func Deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(DeadlineHeader)
		ms, err := strconv.ParseInt(v, 10, 64)
		if v == "" || err != nil {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		deadline := time.UnixMilli(ms)
		if limit := now.Add(MaxBudget); deadline.After(limit) {
			deadline = limit
		}
		if !deadline.After(now) {
			WriteProblem(w, r, http.StatusServiceUnavailable, "the caller's deadline has passed")
			return
		}
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
