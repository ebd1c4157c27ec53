package gateway

import (
	"context"
	_ "embed"
	"net/http"
	"slices"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

// OpenAPI is the gateway's own contract: the audit and the documents index.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Documented lists the services whose OpenAPI documents the gateway serves.
// The AsyncAPI document of the events is served beside them, as "events".
var Documented = []string{"users", "catalog", "inventory", "orders", "payments", "shipping", "legacy", "registry", "gateway"}

// Auditor checks the shop's invariants on behalf of an admin's token.
type Auditor func(ctx context.Context, token string) (audit.Report, error)

// Routes maps the gateway's whole surface: the route table, the audit, the
// dead letters of every service and the API documents. The console mounts
// its page and API beside them.
func Routes(p *Proxy, auditor Auditor, call Caller) *http.ServeMux {
	mux := http.NewServeMux()
	dl := deadLetters{call: call}
	mux.HandleFunc("GET /api/v1/admin/dlq", dl.list)
	mux.HandleFunc("POST /api/v1/admin/dlq/{service}/{id}/replay", dl.replay)
	mux.HandleFunc("GET /api/v1/admin/resilience", p.listResilience(call))
	faults := newFaults(p.registryURL, p.registry)
	mux.HandleFunc("GET /api/v1/admin/faults", faults.list)
	mux.HandleFunc("PUT /api/v1/admin/faults/{service}", faults.set)
	mux.Handle("/api/v1/admin/provider", p.Handler("payments"))
	for _, rt := range Table {
		if rt.Service == "registry" && p.registry != nil {
			continue // answered here, below
		}
		mux.Handle(rt.Pattern, p.Handler(rt.Service))
	}
	if p.registry != nil {
		mux.HandleFunc("GET /api/v1/registry/services", p.registry.services)
	}
	mux.HandleFunc("GET /api/v1/admin/audit", func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Admin(r.Context()); err != nil {
			web.Error(w, r, err)
			return
		}
		token, _, _ := auth.BearerToken(r)
		rep, err := auditor(r.Context(), token)
		if err != nil {
			web.Error(w, r, err)
			return
		}
		web.JSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("GET /api/docs", func(w http.ResponseWriter, r *http.Request) {
		type doc struct {
			Service string `json:"service"`
			URL     string `json:"url"`
		}
		out := make([]doc, 0, len(Documented))
		for _, s := range Documented {
			out = append(out, doc{Service: s, URL: "/api/docs/" + s})
		}
		out = append(out, doc{Service: "events", URL: "/api/docs/events"})
		web.JSON(w, http.StatusOK, map[string]any{"documents": out})
	})
	mux.HandleFunc("GET /api/docs/{service}", func(w http.ResponseWriter, r *http.Request) {
		service := r.PathValue("service")
		switch {
		case service == "gateway":
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(OpenAPI)
		case service == "registry" && p.registry != nil:
			p.registry.document(w, r)
		case service == "events": // the AsyncAPI document of every service's events
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(event.AsyncAPI)
		case slices.Contains(Documented, service):
			r.URL.Path = "/openapi.yaml"
			r.URL.RawPath = ""
			p.Handler(service).ServeHTTP(w, r)
		default:
			web.Error(w, r, fail.New(fail.NotFound, "no API document for %q", service))
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		web.Error(w, r, fail.New(fail.NotFound, "no route for %s", r.URL.Path))
	})
	return mux
}
