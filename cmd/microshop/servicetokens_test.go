package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/auth"
)

// TestInternalEndpointsAnswerOnlyServices calls every service's internal
// endpoints directly, around the gateway, as a stranger would: without
// credentials, with a customer's and an admin's access token, and with
// forged service tokens, all refused with 401; with a service token signed
// with the shop's service key, they work. A service token in turn is no
// user: public routes refuse it. And the shop still checks out, its
// services presenting their tokens to each other.
func TestInternalEndpointsAnswerOnlyServices(t *testing.T) {
	dir := t.TempDir()
	shop := start(t, dir, tokenTestEnv, "up")
	gw := newClient(t, shop.addrs["gateway"])
	catalog := seeded(t, gw)
	admin := gw.login(adminEmail, adminPassword)
	_, customer := gw.signup("carol@example.com")
	_, serviceKey := shopKeys(t, dir)
	serviceToken, err := auth.NewServiceSigner("orders", serviceKey).Token()
	if err != nil {
		t.Fatal(err)
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	strangerToken, _ := auth.NewServiceSigner("orders", strangerKey).Token()
	now := time.Now()
	serviceClaims := func(changes map[string]any) jwt.MapClaims {
		return edit(jwt.MapClaims{
			"iss": auth.ServiceIssuer, "aud": []string{auth.ServiceAudience}, "sub": "orders", "role": auth.RoleService,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		}, changes)
	}
	skid := kidOf(serviceKey)
	refused := []struct{ name, token string }{
		{"no credentials", ""},
		{"a customer's access token", customer},
		{"an admin's access token", admin},
		{"a service token signed with another key", strangerToken},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": skid}, serviceClaims(nil))},
		{"HS256 signed with the service key's public half", forge(t, jwt.SigningMethodHS256, []byte(serviceKey.Public().(ed25519.PublicKey)), map[string]any{"kid": skid}, serviceClaims(nil))},
		{"an expired service token", forge(t, jwt.SigningMethodEdDSA, serviceKey, map[string]any{"kid": skid}, serviceClaims(map[string]any{"exp": now.Add(-time.Minute).Unix()}))},
		{"a service token without expiry", forge(t, jwt.SigningMethodEdDSA, serviceKey, map[string]any{"kid": skid}, serviceClaims(map[string]any{"exp": nil}))},
		{"a service token for users' audience", forge(t, jwt.SigningMethodEdDSA, serviceKey, map[string]any{"kid": skid}, serviceClaims(map[string]any{"aud": []string{auth.Audience}}))},
		{"a service the shop does not have", forge(t, jwt.SigningMethodEdDSA, serviceKey, map[string]any{"kid": skid}, serviceClaims(map[string]any{"sub": "evil"}))},
		{"an admin's role in service claims", forge(t, jwt.SigningMethodEdDSA, serviceKey, map[string]any{"kid": skid}, serviceClaims(map[string]any{"role": auth.RoleAdmin}))},
	}
	// Each internal endpoint, with a body that a service token makes work,
	// or that changes nothing but answers past authentication.
	endpoints := []struct {
		service, method, path string
		body                  any
		want                  int // with a service token
	}{
		{"payments", "POST", "/internal/v1/cards", map[string]string{"card": goodCard}, http.StatusCreated},
		{"payments", "POST", "/internal/v1/charges", map[string]any{}, http.StatusUnprocessableEntity},
		{"payments", "POST", "/internal/v1/charges/no-such-order/refund", nil, http.StatusOK}, // a tombstone: a late charge is voided
		{"inventory", "POST", "/internal/v1/reservations", map[string]any{}, http.StatusUnprocessableEntity},
		{"inventory", "POST", "/internal/v1/reservations/no-such-order/commit", nil, http.StatusNotFound},
		{"inventory", "POST", "/internal/v1/reservations/no-such-order/release", nil, http.StatusOK}, // a tombstone, likewise
		{"shipping", "POST", "/internal/v1/shipments", map[string]any{}, http.StatusUnprocessableEntity},
		{"shipping", "POST", "/internal/v1/shipments/no-such-order/cancel", nil, http.StatusOK},
		{"registry", "GET", "/v1/services", nil, http.StatusOK},
		{"registry", "GET", "/v1/services/payments", nil, http.StatusOK},
		{"registry", "PUT", "/v1/instances/intruder", map[string]any{"service": "payments", "address": "127.0.0.1:1", "healthy": true, "ttl_seconds": 1}, http.StatusNoContent},
		{"registry", "DELETE", "/v1/instances/intruder", nil, http.StatusNoContent},
		// Spans for the console, as services in other processes send them.
		{"gateway", "POST", "/v1/traces", map[string]any{}, http.StatusOK},
	}

	attempts, wrongly, served := 0, 0, 0
	for _, e := range endpoints {
		c := newClient(t, shop.addrs[e.service]).unchecked()
		for _, r := range refused {
			attempts++
			got := c.call(e.method, e.path, r.token, e.body)
			if got.Status != http.StatusUnauthorized || got.Header.Get("Content-Type") != "application/problem+json" {
				wrongly++
				t.Errorf("%s %s %s with %s = %d %s, want a 401 problem", e.service, e.method, e.path, r.name, got.Status, got.Body)
			}
		}
		if got := c.call(e.method, e.path, serviceToken, e.body); got.Status != e.want {
			t.Errorf("%s %s %s with a service token = %d %s, want %d", e.service, e.method, e.path, got.Status, got.Body, e.want)
		} else {
			served++
		}
	}
	// Whatever the registry was asked without a service token changed
	// nothing: no instance called intruder was ever listed.
	for _, inst := range registryInstances(t, shop, serviceToken, "payments") {
		if inst == "intruder" {
			t.Error("an instance registered without a service token is listed")
		}
	}

	// A service token is not a user's: public routes refuse it, at the
	// gateway and at the services.
	asUser := 0
	for _, target := range []struct{ base, path string }{
		{shop.addrs["gateway"], "/api/v1/users/me"},
		{shop.addrs["gateway"], "/api/v1/orders"},
		{shop.addrs["users"], "/api/v1/users/me"},
		{shop.addrs["orders"], "/api/v1/orders"},
		{shop.addrs["payments"], "/api/v1/admin/dlq"},
		{shop.addrs["registry"], "/api/v1/registry/services"},
	} {
		if got := newClient(t, target.base).call("GET", target.path, serviceToken, nil); got.Status != http.StatusUnauthorized {
			asUser++
			t.Errorf("GET %s%s with a service token = %d %s, want 401", target.base, target.path, got.Status, got.Body)
		}
	}

	// End to end the shop still works: a checkout tokenizes the card at
	// payments' internal endpoint, with orders' service token.
	order := placeAndWait(t, gw, customer, orderBody(catalog["MUG-001"].ID, 1, goodCard))
	if order["status"] != "COMPLETED" {
		t.Errorf("checkout ended %v (%v), want COMPLETED", order["status"], order["cancel_reason"])
	}
	t.Logf("service tokens: endpoints=%d refused_attempts=%d wrongly_answered=%d served_with_service_token=%d service_token_as_user=%d checkout=%v",
		len(endpoints), attempts, wrongly, served, asUser, order["status"])
}

// registryInstances lists the instance ids the registry knows of service.
func registryInstances(t *testing.T, shop *proc, serviceToken, service string) []string {
	t.Helper()
	var s struct {
		Instances []struct{ ID string } `json:"instances"`
	}
	newClient(t, shop.addrs["registry"]).unchecked().must(200, "GET", "/v1/services/"+service, serviceToken, nil).json(t, &s)
	var ids []string
	for _, inst := range s.Instances {
		ids = append(ids, inst.ID)
	}
	return ids
}
