package gateway

import (
	"context"
	"net/http"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/web"
)

// registryView is the registry as the gateway shows it when there is no
// registry service to forward to.
type registryView struct {
	list func(ctx context.Context) ([]discovery.Service, error)
	doc  []byte
}

// WithRegistryListing is for a registry that is no service of the shop to
// forward to (etcd, Kubernetes DNS): the gateway answers the admin's
// listing, GET /api/v1/registry/services, itself from list, finds there
// the instances whose faults it sets, and serves doc, the listing's
// document, as the registry's.
func WithRegistryListing(list func(ctx context.Context) ([]discovery.Service, error), doc []byte) Option {
	return func(p *Proxy) { p.registry = &registryView{list: list, doc: doc} }
}

// services answers the admin's listing, as the built-in registry does.
func (v *registryView) services(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	services, err := v.list(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	for i := range services {
		if services[i].Instances == nil {
			services[i].Instances = []discovery.Instance{}
		}
	}
	if services == nil {
		services = []discovery.Service{}
	}
	web.JSON(w, http.StatusOK, map[string]any{"services": services})
}

func (v *registryView) document(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(v.doc)
}
