package resilience

import (
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/web"
)

// Pattern is the admin listing of a service's outgoing edges.
const Pattern = "GET /api/v1/admin/resilience"

// Listing is the answer of Pattern.
type Listing struct {
	Edges []Status `json:"edges"`
}

// Mount puts the admin listing of edges on a service's mux.
func Mount(mux *http.ServeMux, edges *Edges) {
	mux.Handle(Pattern, Handler(edges))
}

// Handler answers the admin listing of edges: every outgoing edge of the
// service, its breaker's state and its counts. Admins only.
func Handler(edges *Edges) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Admin(r.Context()); err != nil {
			web.Error(w, r, err)
			return
		}
		web.JSON(w, http.StatusOK, Listing{Edges: edges.List()})
	})
}
