package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/auth"
)

// Settings every token test runs the shop with: no client of these tests
// may be slowed by the gateway's rate limit.
var tokenTestEnv = []string{"MICROSHOP_RATE_LIMIT_RPS=1000000", "MICROSHOP_RATE_LIMIT_BURST=1000000"}

// shopKeys reads the keys a running shop made under its data directory:
// the users service's current signing key (the first block of its ring)
// and the shop-wide service key.
func shopKeys(t *testing.T, dataDir string) (users, services ed25519.PrivateKey) {
	t.Helper()
	users, err := auth.LoadOrCreateKey(filepath.Join(dataDir, "keys", "jwt-ed25519.pem"))
	if err != nil {
		t.Fatal(err)
	}
	services, err = auth.LoadOrCreateKey(filepath.Join(dataDir, "keys", "service-ed25519.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return users, services
}

func kidOf(key ed25519.PrivateKey) string { return auth.Thumbprint(key.Public().(ed25519.PublicKey)) }

// claimsFor are the claims of a valid access token for subject.
func claimsFor(subject, role string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": auth.Issuer, "aud": []string{auth.Audience}, "sub": subject, "role": role,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// forge signs claims under method with key, with header fields set (a nil
// value removes one), the way an attacker who controls every byte would.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// edit returns claims with changes applied; a nil value removes a claim.
func edit(c jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// TestTokenAttacksAreRefusedEverywhere sends the token attacks of RFC 8725
// to the gateway and, around it, straight to the services that verify
// tokens themselves (users with its own ring, orders and payments with the
// keys they fetch): every one is a 401 problem everywhere. A control token
// signed the same way passes, so the forging itself is sound.
func TestTokenAttacksAreRefusedEverywhere(t *testing.T) {
	dir := t.TempDir()
	shop := start(t, dir, tokenTestEnv, "up")
	gw := newClient(t, shop.addrs["gateway"])
	userID, _ := gw.signup("mallory@example.com")
	usersKey, serviceKey := shopKeys(t, dir)
	kid := kidOf(usersKey)
	pub := []byte(usersKey.Public().(ed25519.PublicKey))
	_, attackerKey, _ := ed25519.GenerateKey(rand.Reader)

	// A key server the attacker runs: a verifier that followed jku or x5u
	// would fetch from it.
	var canaryHits atomic.Int64
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		canaryHits.Add(1)
		_ = json.NewEncoder(w).Encode(auth.JWKS{Keys: []auth.JWK{auth.PublicJWK(attackerKey.Public().(ed25519.PublicKey))}})
	}))
	t.Cleanup(canary.Close)

	customer := claimsFor(userID, auth.RoleCustomer)
	valid := forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, customer)
	parts := strings.Split(valid, ".")
	asAdmin, _ := json.Marshal(edit(customer, map[string]any{"role": auth.RoleAdmin}))
	serviceToken, err := auth.NewServiceSigner("orders", serviceKey).Token()
	if err != nil {
		t.Fatal(err)
	}
	attacks := []struct{ name, token string }{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": kid}, customer)},
		{"HS256 signed with the public key", forge(t, jwt.SigningMethodHS256, pub, map[string]any{"kid": kid}, customer)},
		{"the attacker's key under the real kid", forge(t, jwt.SigningMethodEdDSA, attackerKey, map[string]any{"kid": kid}, customer)},
		{"an unknown kid", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": "no-such-key"}, customer)},
		{"a path traversal kid", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": "../../../../dev/null"}, customer)},
		{"an injection kid", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": "x' OR '1'='1"}, customer)},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": nil}, customer)},
		{"jku to the attacker's keys", forge(t, jwt.SigningMethodEdDSA, attackerKey, map[string]any{"kid": kidOf(attackerKey), "jku": canary.URL}, customer)},
		{"x5u to the attacker's keys", forge(t, jwt.SigningMethodEdDSA, attackerKey, map[string]any{"kid": kidOf(attackerKey), "x5u": canary.URL}, customer)},
		{"an embedded jwk", forge(t, jwt.SigningMethodEdDSA, attackerKey, map[string]any{"kid": kidOf(attackerKey), "jwk": auth.PublicJWK(attackerKey.Public().(ed25519.PublicKey))}, customer)},
		{"a tampered payload (role admin)", parts[0] + "." + base64.RawURLEncoding.EncodeToString(asAdmin) + "." + parts[2]},
		{"a stripped signature", parts[0] + "." + parts[1] + "."},
		{"expired", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}))},
		{"not yet valid", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}))},
		{"issued in the future", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"iat": time.Now().Add(time.Hour).Unix()}))},
		{"no expiry", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"exp": nil}))},
		{"a wrong issuer", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"iss": "https://evil.example"}))},
		{"a wrong audience", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"aud": []string{"someone-else"}}))},
		{"a role that does not exist", forge(t, jwt.SigningMethodEdDSA, usersKey, map[string]any{"kid": kid}, edit(customer, map[string]any{"role": "root"}))},
		{"a service token", serviceToken},
		{"user claims signed with the service key", forge(t, jwt.SigningMethodEdDSA, serviceKey, map[string]any{"kid": kidOf(serviceKey)}, customer)},
		{"32 KB of dots", strings.Repeat(".", 32<<10)},
		{"a well-formed token past the size limit", valid + strings.Repeat("A", auth.MaxTokenBytes)},
		{"not a JWT", "not-a-token"},
	}
	targets := []struct{ name, base, path string }{
		{"gateway, users' route", shop.addrs["gateway"], "/api/v1/users/me"},
		{"gateway, orders' route", shop.addrs["gateway"], "/api/v1/orders"},
		{"users, directly", shop.addrs["users"], "/api/v1/users/me"},
		{"orders, directly", shop.addrs["orders"], "/api/v1/orders"},
		{"payments, directly", shop.addrs["payments"], "/api/v1/payments"},
	}

	attempts, accepted, other := 0, 0, 0
	huge := map[string]int{} // how the megabyte of dots was refused
	for _, target := range targets {
		c := newClient(t, target.base)
		if r := c.call("GET", target.path, valid, nil); r.Status != http.StatusOK {
			t.Fatalf("%s: the control token got %d %s, want 200: the forging is broken", target.name, r.Status, r.Body)
		}
		for _, a := range attacks {
			attempts++
			r := c.call("GET", target.path, a.token, nil)
			switch {
			case r.Status/100 == 2:
				accepted++
				t.Errorf("%s, %s: %d %s, want 401", target.name, a.name, r.Status, r.Body)
			case r.Status != http.StatusUnauthorized || r.Header.Get("Content-Type") != "application/problem+json":
				other++
				t.Errorf("%s, %s: %d %q %s, want a 401 problem", target.name, a.name, r.Status, r.Header.Get("Content-Type"), r.Body)
			}
		}
		// A megabyte of dots (CVE-2025-30204) never reaches a parser: the
		// server refuses a header that size before any handler runs, with
		// 431, or, when the client is still sending it, by closing the
		// connection on it.
		attempts++
		r, err := c.unchecked().try("GET", target.path, strings.Repeat(".", 1<<20), nil)
		switch {
		case err != nil:
			huge["connection closed"]++
		case r.Status == http.StatusRequestHeaderFieldsTooLarge:
			huge["431"]++
		default:
			other++
			t.Errorf("%s, a megabyte of dots: %d %s, want 431 or the connection closed", target.name, r.Status, r.Body)
		}
	}
	t.Logf("token attacks: attacks=%d targets=%d attempts=%d accepted=%d not_401=%d megabyte_431=%d megabyte_closed=%d jku_x5u_fetches=%d",
		len(attacks)+1, len(targets), attempts, accepted, other, huge["431"], huge["connection closed"], canaryHits.Load())
	if canaryHits.Load() != 0 {
		t.Errorf("a verifier fetched keys from a URL a token named %d times, want 0", canaryHits.Load())
	}
}
