package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// Consumers are the services that keep dead letters: every service with an
// inbox.
var Consumers = []string{"users", "catalog", "inventory", "orders", "payments", "shipping"}

// Caller performs calls to other services.
type Caller interface {
	Do(ctx context.Context, c upstream.Call) error
}

// deadLetters gathers every service's dead letters into one listing, and
// sends a replay to the service that keeps the letter.
type deadLetters struct{ call Caller }

// maxDeadLetters bounds what one listing gathers from one service.
const maxDeadLetters = 1000

func (d deadLetters) list(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	token, _, _ := auth.BearerToken(r)
	type letter map[string]json.RawMessage
	var (
		mu          sync.Mutex
		all         []letter
		unreachable []string
		wg          sync.WaitGroup
	)
	for _, svc := range Consumers {
		wg.Go(func() {
			var page struct {
				Items []letter `json:"items"`
			}
			err := d.call.Do(r.Context(), upstream.Call{Service: svc, Method: http.MethodGet,
				Path: "/api/v1/admin/dlq?limit=1000", Token: token, Out: &page})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unreachable = append(unreachable, svc)
				return
			}
			name, _ := json.Marshal(svc)
			for _, l := range page.Items[:min(len(page.Items), maxDeadLetters)] {
				l["service"] = name
				all = append(all, l)
			}
		})
	}
	wg.Wait()
	slices.SortFunc(all, func(a, b letter) int { return compareRaw(a["created_at"], b["created_at"]) })
	slices.Sort(unreachable)
	if all == nil {
		all = []letter{}
	}
	if unreachable == nil {
		unreachable = []string{}
	}
	web.JSON(w, http.StatusOK, map[string]any{"items": all, "unreachable": unreachable})
}

func compareRaw(a, b json.RawMessage) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

func (d deadLetters) replay(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	svc := r.PathValue("service")
	if !slices.Contains(Consumers, svc) {
		web.Error(w, r, fail.New(fail.NotFound, "no service %q keeps dead letters", svc))
		return
	}
	token, _, _ := auth.BearerToken(r)
	var out json.RawMessage
	err := d.call.Do(r.Context(), upstream.Call{Service: svc, Method: http.MethodPost,
		Path: "/api/v1/admin/dlq/" + url.PathEscape(r.PathValue("id")) + "/replay", Token: token, Out: &out})
	if err != nil {
		web.Error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}
