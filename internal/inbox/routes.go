package inbox

import (
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/web"
)

// Paging bounds of the dead-letter listing, as every admin listing has them.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// The dead-letter admin routes, for a service to mount the handler Routes
// returns on its own mux under the same patterns:
//
//	dlq := inbox.Routes(in)
//	mux.Handle(inbox.ListPattern, dlq)
//	mux.Handle(inbox.ReplayPattern, dlq)
const (
	ListPattern   = "GET /api/v1/admin/dlq"
	ReplayPattern = "POST /api/v1/admin/dlq/{id}/replay"
)

// Routes maps the dead-letter admin surface of in: the listing and the
// replay, both for admins only.
func Routes(in *Inbox) *http.ServeMux {
	h := &handlers{in: in}
	mux := http.NewServeMux()
	mux.HandleFunc(ListPattern, h.list)
	mux.HandleFunc(ReplayPattern, h.replay)
	return mux
}

type handlers struct{ in *Inbox }

// deadLetterView is a dead letter as the admin API shows it.
type deadLetterView struct {
	ID         string     `json:"id"`
	Group      string     `json:"group"`
	EventID    string     `json:"event_id"`
	Type       string     `json:"type"`
	Topic      string     `json:"topic"`
	Error      string     `json:"error"`
	Attempts   int        `json:"attempts"`
	CreatedAt  time.Time  `json:"created_at"`
	ReplayedAt *time.Time `json:"replayed_at"` // null until replayed
}

func view(dl DeadLetter) deadLetterView {
	v := deadLetterView{
		ID: dl.ID, Group: dl.Group, EventID: dl.EventID, Type: dl.Type, Topic: dl.Topic,
		Error: dl.Error, Attempts: dl.Attempts, CreatedAt: dl.CreatedAt,
	}
	if dl.Replayed() {
		t := dl.ReplayedAt
		v.ReplayedAt = &t
	}
	return v
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	after, limit, err := web.PageParams(r, DefaultPageLimit, MaxPageLimit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	items, next, err := h.in.List(r.Context(), after, limit)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, web.PageOf(items, next, view))
}

func (h *handlers) replay(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	dl, err := h.in.Replay(r.Context(), r.PathValue("id"))
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, view(dl))
}

// Mount puts in's dead-letter routes on a service's mux.
func Mount(mux *http.ServeMux, in *Inbox) {
	dlq := Routes(in)
	mux.Handle(ListPattern, dlq)
	mux.Handle(ReplayPattern, dlq)
}
