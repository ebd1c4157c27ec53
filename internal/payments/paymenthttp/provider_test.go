package paymenthttp_test

import (
	"github.com/microshop/microshop/internal/payments"
	"net/http"
	"slices"
	"testing"

	"github.com/microshop/microshop/internal/contract/contracttest"
	"github.com/microshop/microshop/internal/payments/simprovider"
)

// TestProviderModeSwitch drives the provider's mode through the admin
// routes, checked against the document: only an admin reads or switches
// it, an unknown mode changes nothing, and a charge in fail mode is a 503
// that records no payment.
func TestProviderModeSwitch(t *testing.T) {
	sim := simprovider.New()
	routes := routesOn(newDB(t), sim)
	put := func(who string, body string) contracttest.Response {
		switch who {
		case "admin":
			return do(t, routes, admin, "PUT", "/api/v1/admin/provider", body)
		case "customer":
			return do(t, routes, owner, "PUT", "/api/v1/admin/provider", body)
		}
		return do(t, routes, nil, "PUT", "/api/v1/admin/provider", body)
	}
	for _, tc := range []struct {
		who, body string
		want      int
		wantMode  simprovider.Mode
	}{
		{"anonymous", `{"mode":"fail"}`, http.StatusUnauthorized, simprovider.ModeOK},
		{"customer", `{"mode":"fail"}`, http.StatusForbidden, simprovider.ModeOK},
		{"admin", `{"mode":"sometimes"}`, http.StatusUnprocessableEntity, simprovider.ModeOK},
		{"admin", `{"mode":"fail","why":"x"}`, http.StatusBadRequest, simprovider.ModeOK},
		{"admin", `{"mode":"timeout"}`, http.StatusOK, simprovider.ModeTimeout},
		{"admin", `{"mode":"fail"}`, http.StatusOK, simprovider.ModeFail},
	} {
		res := put(tc.who, tc.body)
		if res.Status != tc.want || sim.Mode() != tc.wantMode {
			t.Errorf("%s PUT %s = %d, mode %q; want %d, mode %q", tc.who, tc.body, res.Status, sim.Mode(), tc.want, tc.wantMode)
		}
		if res.Status == http.StatusOK && (res.Body["mode"] != string(tc.wantMode) || res.Body["expect"] == "") {
			t.Errorf("answer %s, want the mode and what to expect", res.Raw)
		}
	}
	got := do(t, routes, admin, "GET", "/api/v1/admin/provider", "")
	if got.Status != http.StatusOK || got.Body["mode"] != "fail" || !slices.Equal(contracttest.Keys(got.Body), []string{"expect", "mode", "modes"}) {
		t.Errorf("GET = %d %s, want 200 with mode fail, modes and expect", got.Status, got.Raw)
	}
	if res := do(t, routes, owner, "GET", "/api/v1/admin/provider", ""); res.Status != http.StatusForbidden {
		t.Errorf("customer GET = %d, want 403", res.Status)
	}

	charged := do(t, routes, nil, "POST", "/internal/v1/charges", chargeBody("order-1", "user-1", 2500, "4242424242424242"))
	if charged.Status != http.StatusServiceUnavailable {
		t.Errorf("charge in fail mode = %d %s, want 503", charged.Status, charged.Raw)
	}
	if res := do(t, routes, admin, "GET", "/api/v1/payments?order_id=order-1", ""); len(contracttest.Items(t, res)) != 0 {
		t.Errorf("payments of order-1 after a failed charge: %s, want none recorded", res.Raw)
	}
	if sim.Calls() != payments.ProviderAttempts {
		t.Errorf("provider calls = %d, want %d: one charge tries the provider a bounded number of times", sim.Calls(), payments.ProviderAttempts)
	}
}

// TestFaultRoutesKeepTheDocument sends the fault routes' exchanges through
// the document: the state of every fault with what to expect, a refusal
// for a value out of range, and admins only.
func TestFaultRoutesKeepTheDocument(t *testing.T) {
	routes := newRoutes(t)
	set := do(t, routes, admin, "PUT", "/api/v1/admin/faults", `{"latency_ms":20,"latency_jitter_ms":5,"error_rate":0.5}`)
	if set.Status != http.StatusOK || set.Body["service"] != "payments" || set.Body["error_rate"] != 0.5 {
		t.Errorf("PUT faults = %d %s, want 200 with the new state", set.Status, set.Raw)
	}
	if k := contracttest.Keys(set.Body["expect"]); !slices.Equal(k, []string{"down", "error_rate", "latency"}) {
		t.Errorf("expect keys = %v, want one line per fault", k)
	}
	contracttest.WantProblem(t, do(t, routes, admin, "PUT", "/api/v1/admin/faults", `{"error_rate":2}`), http.StatusUnprocessableEntity, "error_rate")
	contracttest.WantProblem(t, do(t, routes, owner, "PUT", "/api/v1/admin/faults", `{}`), http.StatusForbidden, "")
	got := do(t, routes, admin, "GET", "/api/v1/admin/faults", "")
	if got.Status != http.StatusOK || got.Body["latency_ms"] != float64(20) {
		t.Errorf("GET faults = %d %s, want the state set before, unchanged by the refusals", got.Status, got.Raw)
	}
}
