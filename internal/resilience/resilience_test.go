package resilience_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/resilience"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*resilience.Policy)
		ok     bool
	}{
		{"default", func(*resilience.Policy) {}, true},
		{"no failures", func(p *resilience.Policy) { p.Failures = 0 }, false},
		{"no open timeout", func(p *resilience.Policy) { p.OpenTimeout = 0 }, false},
		{"no probes", func(p *resilience.Policy) { p.HalfOpenProbes = 0 }, false},
		{"no attempts", func(p *resilience.Policy) { p.MaxAttempts = 0 }, false},
		{"one attempt", func(p *resilience.Policy) { p.MaxAttempts = 1 }, true},
		{"no bulkhead", func(p *resilience.Policy) { p.Bulkhead = 0 }, false},
		{"no attempt timeout", func(p *resilience.Policy) { p.AttemptTimeout = 0 }, false},
		{"backoff cap below its start", func(p *resilience.Policy) { p.BackoffMax = p.BackoffInitial / 2 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := resilience.DefaultPolicy()
			tc.change(&p)
			if err := p.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestBackoffIsCappedAndJittered draws many schedules: every wait lies
// within half of its nominal value either way, the nominal value doubles
// up to the cap, and the waits are not all alike.
func TestBackoffIsCappedAndJittered(t *testing.T) {
	p := resilience.DefaultPolicy()
	p.BackoffInitial, p.BackoffMax = 10*time.Millisecond, 80*time.Millisecond
	firsts := map[time.Duration]bool{}
	for range 200 {
		b := p.Backoff()
		nominal := p.BackoffInitial
		for i := range 8 {
			got := b.NextBackOff()
			if lo, hi := nominal/2, nominal*3/2; got < lo || got > hi {
				t.Fatalf("wait %d = %v, want within [%v, %v]", i, got, lo, hi)
			}
			if i == 0 {
				firsts[got] = true
			}
			nominal = min(nominal*2, p.BackoffMax)
		}
	}
	if len(firsts) < 10 {
		t.Errorf("200 first waits took %d values, want them spread by jitter", len(firsts))
	}
}

func TestEdgeCountsAndStates(t *testing.T) {
	p := resilience.DefaultPolicy()
	p.Failures, p.OpenTimeout = 3, time.Hour
	edges := resilience.NewEdges("orders", p, nil)
	e := edges.Edge("catalog")
	if edges.Edge("catalog") != e {
		t.Fatal("a second Edge for the same upstream is another edge")
	}
	attempt := func(o resilience.Outcome) error {
		done, err := e.Try()
		if err != nil {
			return err
		}
		e.Attempted()
		done(o)
		return nil
	}
	// Successes and ignored outcomes never open it; failures in a row do.
	for _, o := range []resilience.Outcome{resilience.Failure, resilience.Failure, resilience.Success,
		resilience.Failure, resilience.Ignored, resilience.Failure} {
		if err := attempt(o); err != nil {
			t.Fatalf("attempt refused while closed: %v", err)
		}
	}
	if got := e.Status(); got.State != resilience.StateClosed || got.ConsecutiveFailures != 2 {
		t.Fatalf("status = %+v, want closed with 2 failures in a row", got)
	}
	if err := attempt(resilience.Failure); err != nil {
		t.Fatal(err)
	}
	err := attempt(resilience.Success)
	if !fail.Is(err, fail.Unavailable) || !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("attempt on an open breaker: %v, want unavailable (open)", err)
	}
	if d := e.RetryAfter(); d <= 0 || d > time.Hour {
		t.Errorf("RetryAfter = %v, want within the open timeout", d)
	}
	e.Retried()
	e.FellBack()
	want := resilience.Status{From: "orders", To: "catalog", State: resilience.StateOpen,
		Attempts: 7, Failures: 5, ConsecutiveFailures: 0, Retries: 1, Rejected: 1, Fallbacks: 1}
	if got := e.Status(); got != want {
		t.Errorf("status:\n got %+v\nwant %+v", got, want)
	}
}

func TestBulkheadBoundsCallsInFlight(t *testing.T) {
	p := resilience.DefaultPolicy()
	p.Bulkhead = 2
	e := resilience.NewEdges("gateway", p, nil).Edge("orders")
	leave1, err1 := e.Enter()
	leave2, err2 := e.Enter()
	if err1 != nil || err2 != nil {
		t.Fatalf("Enter within the bulkhead: %v, %v", err1, err2)
	}
	if _, err := e.Enter(); !fail.Is(err, fail.Unavailable) || !errors.Is(err, resilience.ErrFull) {
		t.Fatalf("third Enter = %v, want unavailable (bulkhead full)", err)
	}
	leave1()
	leave3, err := e.Enter()
	if err != nil {
		t.Fatalf("Enter after one left: %v", err)
	}
	leave2()
	leave3()
	if got := e.Status(); got.Requests != 4 || got.Rejected != 1 {
		t.Errorf("status = %+v, want 4 requests and 1 rejected", got)
	}
}

func TestCollectorsExportEveryEdge(t *testing.T) {
	p := resilience.DefaultPolicy()
	p.Failures = 1
	edges := resilience.NewEdges("orders", p, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(edges.Collectors()...)
	e := edges.Edge("catalog")
	done, _ := e.Try()
	done(resilience.Failure) // opens it
	_, _ = e.Try()           // refused
	e.Retried()
	edges.Edge("payments")

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{} // "name{label=value,...}" in label-name order
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"microshop_breaker_state{service=orders,upstream=catalog}":                           2,
		"microshop_breaker_state{service=orders,upstream=payments}":                          0,
		"microshop_breaker_transitions_total{service=orders,state=open,upstream=catalog}":    1,
		"microshop_breaker_transitions_total{service=orders,state=closed,upstream=catalog}":  0,
		"microshop_breaker_transitions_total{service=orders,state=open,upstream=payments}":   0,
		"microshop_upstream_requests_total{service=orders,upstream=catalog}":                 0,
		"microshop_upstream_failures_total{service=orders,upstream=catalog}":                 1,
		"microshop_upstream_retries_total{service=orders,upstream=catalog}":                  1,
		"microshop_upstream_rejected_total{reason=open,service=orders,upstream=catalog}":     1,
		"microshop_upstream_rejected_total{reason=bulkhead,service=orders,upstream=catalog}": 0,
		"microshop_upstream_fallbacks_total{service=orders,upstream=payments}":               0,
		"microshop_upstream_attempts_total{service=orders,upstream=payments}":                0,
	}
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	if n := len(got); n != 2*(1+3+5+2) {
		t.Errorf("%d series, want %d: per edge a state, 3 transitions, 5 counters and 2 rejection reasons", n, 2*(1+3+5+2))
	}
}

func TestTheListingIsForAdmins(t *testing.T) {
	edges := resilience.NewEdges("orders", resilience.DefaultPolicy(), nil)
	edges.Edge("catalog")
	mux := http.NewServeMux()
	resilience.Mount(mux, edges)
	tests := []struct {
		name      string
		principal *auth.Principal
		want      int
	}{
		{"anonymous", nil, http.StatusUnauthorized},
		{"customer", &auth.Principal{Subject: "u1", Role: auth.RoleCustomer}, http.StatusForbidden},
		{"admin", &auth.Principal{Subject: "a1", Role: auth.RoleAdmin}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/admin/resilience", nil)
			if tc.principal != nil {
				req = req.WithContext(auth.WithPrincipal(req.Context(), *tc.principal))
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want != http.StatusOK {
				return
			}
			var got struct {
				Edges []map[string]any `json:"edges"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Edges) != 1 || got.Edges[0]["from"] != "orders" || got.Edges[0]["to"] != "catalog" || got.Edges[0]["state"] != "closed" {
				t.Errorf("edges = %v, want orders -> catalog, closed", got.Edges)
			}
			for _, k := range []string{"requests", "attempts", "failures", "consecutive_failures", "retries", "rejected", "fallbacks"} {
				if _, ok := got.Edges[0][k]; !ok {
					t.Errorf("edge lacks %q: %v", k, got.Edges[0])
				}
			}
		})
	}
}
