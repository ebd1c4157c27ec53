package registry

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

// OpenAPI is the registry's published contract.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Authorizer checks that a request comes from an admin.
type Authorizer func(r *http.Request) error

// Routes returns the registry's HTTP surface: the internal /v1 API services use
// to register and resolve, and the admin listing under /api/v1.
func Routes(reg *Registry, requireAdmin Authorizer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		var in heartbeatRequest
		if err := web.Decode(w, r, &in); err != nil {
			web.Error(w, r, err)
			return
		}
		if in.Service == "" || in.Address == "" || in.TTLSeconds < 1 || in.TTLSeconds > 300 {
			web.Error(w, r, fail.New(fail.Invalid, "service, address and ttl_seconds (1 to 300) are required"))
			return
		}
		reg.Heartbeat(Instance{ID: r.PathValue("id"), Service: in.Service, Address: in.Address, Healthy: in.Healthy},
			time.Duration(in.TTLSeconds)*time.Second)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		reg.Deregister(r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		web.JSON(w, http.StatusOK, map[string]any{"services": reg.Services()})
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		web.JSON(w, http.StatusOK, Service{Name: name, Instances: nonNil(reg.Instances(name))})
	})
	mux.HandleFunc("GET /api/v1/registry/services", func(w http.ResponseWriter, r *http.Request) {
		if err := requireAdmin(r); err != nil {
			web.Error(w, r, err)
			return
		}
		web.JSON(w, http.StatusOK, map[string]any{"services": reg.Services()})
	})
	// Prometheus finds what to scrape here. It needs no token, by design:
	// it lists the addresses of live instances, whose /metrics answer
	// anyone who can reach them anyway, and a Prometheus server has no
	// user to sign in as. The gateway does not route it.
	mux.HandleFunc(PrometheusTargetsPattern, func(w http.ResponseWriter, _ *http.Request) {
		web.JSON(w, http.StatusOK, PrometheusTargets(reg.Services()))
	})
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	})
	return mux
}

func nonNil(s []Instance) []Instance {
	if s == nil {
		return []Instance{}
	}
	return s
}

// PrometheusTargetsPattern is the route of the Prometheus HTTP service
// discovery endpoint (http_sd_configs).
const PrometheusTargetsPattern = "GET /prometheus/targets"

// TargetGroup is one entry of Prometheus HTTP service discovery: addresses
// to scrape, and the labels their series get.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// PrometheusTargets lists every live instance as a target of its own,
// labelled with its service and instance id, in the order of services.
// Instances not ready are listed too: their /metrics still answer, and say
// why they are not.
func PrometheusTargets(services []Service) []TargetGroup {
	out := []TargetGroup{}
	for _, s := range services {
		for _, inst := range s.Instances {
			out = append(out, TargetGroup{
				Targets: []string{inst.Address},
				Labels:  map[string]string{"service": s.Name, "instance_id": inst.ID},
			})
		}
	}
	return out
}
