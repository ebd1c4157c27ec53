package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/telemetry"
	"github.com/microshop/microshop/internal/web"
)

// Faultable are the services whose faults an admin sets through the
// gateway. The gateway and the registry are not among them: they are the
// path the faults are set and observed through.
var Faultable = []string{"users", "catalog", "inventory", "orders", "payments", "shipping", "legacy"}

// faultCallTimeout bounds each call to an instance's fault route; taking an
// instance down waits for its workers to stop.
const faultCallTimeout = 10 * time.Second

// faults sets and lists the faults of every instance of every faultable
// service, through each instance's own fault route.
//
// The control path is built so that an instance that is down can be brought
// back. A down instance resets every connection except those for its fault
// route, which it keeps answering on its own address; but it stops
// heartbeating, so the registry forgets it once its TTL passes. The gateway
// therefore remembers each instance it took down, and sends the "up" to that
// address. It does so with a plain HTTP client, not the services' guarded
// callers: a breaker opened by the very outage being injected must never
// stand between an admin and the switch that ends it. A gateway that
// restarts forgets what it took down; such an instance is brought back with
// a PUT to its own address, which the banner and the registry listed.
type faults struct {
	registry *url.URL
	view     *registryView // when set, the instances are listed from it instead
	hc       *http.Client

	mu   sync.Mutex
	down map[string]map[string]bool // service -> addresses taken down through this gateway
}

func newFaults(registry *url.URL, view *registryView) *faults {
	return &faults{
		registry: registry,
		view:     view,
		hc:       &http.Client{Timeout: faultCallTimeout},
		down:     map[string]map[string]bool{},
	}
}

// instanceFaults is one instance's faults as the gateway lists them.
type instanceFaults struct {
	Address string `json:"address"`
	// Listed says whether the registry lists the instance: one that is
	// down drops out once its TTL passes, and is still listed here.
	Listed bool `json:"listed"`
	fault.State
}

// unreachableInstance is an instance whose fault route could not be asked.
type unreachableInstance struct {
	Service string `json:"service"`
	Address string `json:"address"`
	Detail  string `json:"detail"`
}

// target is an instance to ask, and whether the registry lists it.
type target struct {
	service, address string
	listed           bool
}

// list answers GET /api/v1/admin/faults: every instance of every faultable
// service, the ones it took down included.
func (f *faults) list(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	token, _, _ := auth.BearerToken(r)
	targets, err := f.targets(r.Context(), token, Faultable)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	items, unreachable := f.each(r.Context(), targets, func(ctx context.Context, t target) (fault.State, error) {
		return f.call(ctx, http.MethodGet, t.address, token, nil)
	})
	web.JSON(w, http.StatusOK, map[string]any{"items": items, "unreachable": unreachable})
}

// set answers PUT /api/v1/admin/faults/{service}: the settings are checked
// here first, so that values out of range change no instance, then put in
// force on every instance of the service.
func (f *faults) set(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.Admin(r.Context()); err != nil {
		web.Error(w, r, err)
		return
	}
	service := r.PathValue("service")
	if !slices.Contains(Faultable, service) {
		web.Error(w, r, fail.New(fail.NotFound, "no faults can be injected into %q (services are %s)", service, strings.Join(Faultable, ", ")))
		return
	}
	var s fault.Settings
	if err := web.Decode(w, r, &s); err != nil {
		web.Error(w, r, err)
		return
	}
	if err := s.Validate(); err != nil {
		web.Error(w, r, err)
		return
	}
	token, _, _ := auth.BearerToken(r)
	targets, err := f.targets(r.Context(), token, []string{service})
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if len(targets) == 0 {
		web.Error(w, r, fail.New(fail.Unavailable, "no instance of %s is known", service))
		return
	}
	items, unreachable := f.each(r.Context(), targets, func(ctx context.Context, t target) (fault.State, error) {
		st, err := f.call(ctx, http.MethodPut, t.address, token, s)
		if err == nil {
			f.remember(service, t.address, st.Down)
		}
		return st, err
	})
	if len(items) == 0 {
		web.Error(w, r, fail.New(fail.Unavailable, "no instance of %s could be reached: %s", service, unreachable[0].Detail))
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{"items": items, "unreachable": unreachable})
}

// remember records that the instance at address is down, or no longer.
func (f *faults) remember(service, address string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !down {
		delete(f.down[service], address)
		return
	}
	if f.down[service] == nil {
		f.down[service] = map[string]bool{}
	}
	f.down[service][address] = true
}

// targets lists the instances of services: those the registry lists, and
// those this gateway took down and has not brought back.
func (f *faults) targets(ctx context.Context, token string, services []string) ([]target, error) {
	listed, err := f.listed(ctx, token)
	if err != nil {
		return nil, err
	}
	var out []target
	seen := map[string]bool{}
	for _, svc := range services {
		for _, addr := range listed[svc] {
			if !seen[svc+" "+addr] {
				seen[svc+" "+addr] = true
				out = append(out, target{service: svc, address: addr, listed: true})
			}
		}
		f.mu.Lock()
		for addr := range f.down[svc] {
			if !seen[svc+" "+addr] {
				seen[svc+" "+addr] = true
				out = append(out, target{service: svc, address: addr})
			}
		}
		f.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b target) int {
		return cmp.Or(strings.Compare(a.service, b.service), strings.Compare(a.address, b.address))
	})
	return out, nil
}

// listed asks the registry for the address of every instance, by service,
// with the admin's token, or the view when there is no registry to ask.
func (f *faults) listed(ctx context.Context, token string) (map[string][]string, error) {
	var out struct {
		Services []discovery.Service `json:"services"`
	}
	if f.view != nil {
		services, err := f.view.list(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing instances: %w", err)
		}
		out.Services = services
	} else {
		u := f.registry.JoinPath("/api/v1/registry/services")
		if err := f.do(ctx, http.MethodGet, u.String(), token, nil, &out); err != nil {
			return nil, fmt.Errorf("listing instances: %w", err)
		}
	}
	byService := map[string][]string{}
	for _, s := range out.Services {
		for _, inst := range s.Instances {
			byService[s.Name] = append(byService[s.Name], inst.Address)
		}
	}
	return byService, nil
}

// each runs call on every target at once, and gathers the states in the
// targets' order and the targets that could not be asked.
func (f *faults) each(ctx context.Context, targets []target, call func(context.Context, target) (fault.State, error)) ([]instanceFaults, []unreachableInstance) {
	results := make([]error, len(targets))
	states := make([]fault.State, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { states[i], results[i] = call(ctx, t) })
	}
	wg.Wait()
	items, unreachable := []instanceFaults{}, []unreachableInstance{}
	for i, t := range targets {
		if err := results[i]; err != nil {
			unreachable = append(unreachable, unreachableInstance{Service: t.service, Address: t.address, Detail: fail.MessageOf(err)})
			continue
		}
		items = append(items, instanceFaults{Address: t.address, Listed: t.listed, State: states[i]})
	}
	return items, unreachable
}

// call sends one request to the fault route of the instance at address.
func (f *faults) call(ctx context.Context, method, address, token string, body any) (fault.State, error) {
	var st fault.State
	err := f.do(ctx, method, "http://"+address+fault.Path, token, body, &st)
	return st, err
}

// do sends one request with the admin's token and decodes a 2xx answer into
// out. An error answer comes back as the kind its status maps to, with the
// problem's detail; no answer at all is fail.Unavailable.
func (f *faults) do(ctx context.Context, method, target, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if id := web.RequestIDFrom(ctx); id != "" {
		req.Header.Set(web.RequestIDHeader, id)
	}
	// The instances asked answer in the admin's trace (or in none, when
	// the asking is not to be recorded).
	telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := f.hc.Do(req)
	if err != nil {
		return fail.Wrap(fail.Unavailable, err, "%s %s: no answer", method, req.URL.Host)
	}
	defer resp.Body.Close()
	lr := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode >= 300 {
		var p web.Problem
		_ = json.NewDecoder(lr).Decode(&p)
		if p.Detail == "" {
			p.Detail = fmt.Sprintf("%s answered %s", req.URL.Host, resp.Status)
		}
		return fail.New(web.KindOfStatus(resp.StatusCode), "%s", p.Detail)
	}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		return fail.Wrap(fail.Unavailable, err, "decoding the answer of %s", req.URL.Host)
	}
	return nil
}
