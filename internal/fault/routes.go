package fault

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/web"
)

// Path is the admin fault route of every instance. It is the one route an
// instance that is down still answers, so that it can be brought back up.
const Path = "/api/v1/admin/faults"

// The admin fault routes, for a service to mount with Mount; its OpenAPI
// document describes them like its own.
const (
	GetPattern = "GET " + Path
	PutPattern = "PUT " + Path
)

// Mount adds the admin fault routes of in to mux: GET answers the faults in
// force, PUT replaces them (422 for values out of range). Both are for
// admins only.
func Mount(mux *http.ServeMux, in *Injector) {
	mux.HandleFunc(GetPattern, in.serveGet)
	mux.HandleFunc(PutPattern, in.servePut)
}

func (in *Injector) serveGet(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, in.State())
}

func (in *Injector) servePut(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	var s Settings
	if err := web.Decode(w, r, &s); err != nil {
		web.Error(w, r, err)
		return
	}
	st, err := in.set(s, r.RemoteAddr)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.LoggerFrom(r.Context()).WarnContext(r.Context(), "faults injected",
		"latency_ms", s.LatencyMS, "latency_jitter_ms", s.LatencyJitterMS, "error_rate", s.ErrorRate, "down", s.Down)
	web.JSON(w, http.StatusOK, st)
}
