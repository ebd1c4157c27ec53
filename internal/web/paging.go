package web

import (
	"net/http"
	"strconv"

	"github.com/microshop/microshop/internal/fail"
)

// PageParams reads a listing's ?after= and ?limit=. An absent limit is
// defaultLimit; a present one must be a whole number from 1 to maxLimit, and
// anything else, an empty value included, is fail.Invalid, so a client that
// asks for a page size it cannot have is told so rather than given another.
// after is returned as sent: it is a cursor the service handed out, and only
// the service knows which ones it would hand out.
func PageParams(r *http.Request, defaultLimit, maxLimit int) (after string, limit int, err error) {
	q := r.URL.Query()
	if !q.Has("limit") {
		return q.Get("after"), defaultLimit, nil
	}
	limit, err = strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > maxLimit {
		return "", 0, fail.New(fail.Invalid, "limit must be a whole number from 1 to %d", maxLimit)
	}
	return q.Get("after"), limit, nil
}

// Page is one page of a listing as every service answers it: the items, and
// the cursor of the next page (the last item's id), empty on the last page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// PageOf builds the Page of items, each shown through view, with next as its
// cursor. Items is never nil, so an empty page answers [] and not null.
func PageOf[S, T any](items []S, next string, view func(S) T) Page[T] {
	out := Page[T]{Items: make([]T, 0, len(items)), Next: next}
	for _, it := range items {
		out.Items = append(out.Items, view(it))
	}
	return out
}
