package facade

import (
	"context"
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

// moveTimeout bounds one move. A move outlives the admin's request: a
// closed browser tab must not stop a copy halfway (which would be safe, but
// pointless).
const moveTimeout = 2 * time.Minute

// Mount adds to mux the facade's routes: the monolith's old paths, and the
// admin's route table with the move.
func (f *Facade) Mount(mux *http.ServeMux) {
	for _, p := range Patterns() {
		mux.Handle(p, f)
	}
	mux.HandleFunc("GET /api/v1/admin/facade", f.serveTable)
	mux.HandleFunc("PUT /api/v1/admin/facade/routes", f.serveMove)
}

func (f *Facade) serveTable(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	// Where the routes are is the monolith's record: a gateway that has
	// not read it yet cannot say. (It tries again at most every couple of
	// seconds, however often it is asked.)
	f.syncOnce(r.Context())
	if !f.synced.Load() {
		web.Error(w, r, fail.New(fail.Unavailable, "the monolith's record of its handovers cannot be read yet"))
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"routes": f.States()})
}

func (f *Facade) serveMove(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var in struct {
		Route  string `json:"route"`
		Target string `json:"target"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), moveTimeout)
	defer cancel()
	st, err := f.Move(ctx, in.Route, in.Target)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, st)
}
