package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/fail"
)

var shopServices = []string{"registry", "users", "catalog", "inventory", "payments", "shipping", "orders", "gateway"}

func newServiceKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// forgeService signs service claims with key under any method and header,
// after edit has changed them.
func forgeService(t *testing.T, method jwt.SigningMethod, key any, kid string, header map[string]any, edit func(*claims)) string {
	t.Helper()
	c := newClaims(ServiceIssuer, ServiceAudience, "orders", RoleService, time.Now(), time.Minute)
	if edit != nil {
		edit(&c)
	}
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = kid
	for k, v := range header {
		tok.Header[k] = v
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestServiceTokensVerify(t *testing.T) {
	key := newServiceKey(t)
	v := NewServiceVerifier(key.Public().(ed25519.PublicKey), shopServices)
	tok, err := NewServiceSigner("orders", key).Token()
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify(a service token): %v", err)
	}
	if want := (Principal{Subject: "orders", Role: RoleService}); p != want {
		t.Errorf("principal = %+v, want %+v", p, want)
	}
}

func TestServiceSignerReusesItsTokenUntilNearExpiry(t *testing.T) {
	c := newClock()
	s := NewServiceSigner("orders", newServiceKey(t))
	s.now = c.now
	first, _ := s.Token()
	c.advance(ServiceTokenTTL * 3 / 4)
	if again, _ := s.Token(); again != first {
		t.Error("a new token was signed with three quarters of the old one's life left")
	}
	c.advance(ServiceTokenTTL / 10)
	renewed, _ := s.Token()
	if renewed == first {
		t.Fatal("the token was not renewed with less than a fifth of its life left")
	}
	v := NewServiceVerifier(s.key.Public().(ed25519.PublicKey), shopServices)
	v.now = c.now
	if _, err := v.Verify(context.Background(), renewed); err != nil {
		t.Errorf("the renewed token: %v", err)
	}
}

func TestServiceSignerAuthorizeReplacesTheCredential(t *testing.T) {
	s := NewServiceSigner("orders", newServiceKey(t))
	r := httptest.NewRequest("POST", "/internal/v1/cards", nil)
	r.Header.Set("Authorization", "Bearer a-users-token")
	if err := s.Authorize(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	tok, _ := s.Token()
	if got := r.Header.Get("Authorization"); got != "Bearer "+tok {
		t.Errorf("Authorization = %q, want the service token", got)
	}
}

// TestTokenKindsDoNotCross is the boundary between users and services: a
// user's access token never verifies as a service's, nor the other way
// round, even when both are signed with the same key.
func TestTokenKindsDoNotCross(t *testing.T) {
	ctx := context.Background()
	key := newServiceKey(t)
	users := NewSigner(key, time.Hour) // the same key for both: only the claims tell them apart
	userToken, _, _ := users.Sign("user-1", RoleAdmin)
	serviceToken, _ := NewServiceSigner("orders", key).Token()

	if p, err := NewServiceVerifier(key.Public().(ed25519.PublicKey), shopServices).Verify(ctx, userToken); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("a user's token as a service's = %+v, %v; want unauthenticated", p, err)
	}
	if p, err := NewVerifier(users).Verify(ctx, serviceToken); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("a service's token as a user's = %+v, %v; want unauthenticated", p, err)
	}
}

// TestServiceVerifierRefusesForgeries tries the attacks of RFC 8725 on the
// service tokens.
func TestServiceVerifierRefusesForgeries(t *testing.T) {
	key := newServiceKey(t)
	pub := key.Public().(ed25519.PublicKey)
	kid := Thumbprint(pub)
	other := newServiceKey(t)
	now := time.Now()
	tests := map[string]string{
		"alg none":              forgeService(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, nil, nil),
		"HS256 with public key": forgeService(t, jwt.SigningMethodHS256, []byte(pub), kid, nil, nil),
		"another key, same kid": forgeService(t, jwt.SigningMethodEdDSA, other, kid, nil, nil),
		"another kid":           forgeService(t, jwt.SigningMethodEdDSA, key, "other", nil, nil),
		"jku header":            forgeService(t, jwt.SigningMethodEdDSA, other, Thumbprint(other.Public().(ed25519.PublicKey)), map[string]any{"jku": "http://127.0.0.1:1/keys"}, nil),
		"expired":               forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }),
		"not yet valid":         forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }),
		"missing exp":           forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.ExpiresAt = nil }),
		"users' issuer":         forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.Issuer = Issuer }),
		"users' audience":       forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.Audience = jwt.ClaimStrings{Audience} }),
		"a user's role":         forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.Role = RoleAdmin }),
		"no such service":       forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.Subject = "evil" }),
		"no subject":            forgeService(t, jwt.SigningMethodEdDSA, key, kid, nil, func(c *claims) { c.Subject = "" }),
		"garbage":               "not-a-token",
	}
	v := NewServiceVerifier(pub, shopServices)
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tok)
			if !fail.Is(err, fail.Unauthenticated) {
				t.Fatalf("Verify = %+v, %v; want unauthenticated", p, err)
			}
			if fail.MessageOf(err) != "invalid or expired token" {
				t.Errorf("message %q tells the attacker why", fail.MessageOf(err))
			}
		})
	}
}

func TestUserAndServiceTellPrincipalsApart(t *testing.T) {
	service := WithPrincipal(context.Background(), Principal{Subject: "orders", Role: RoleService})
	user := WithPrincipal(context.Background(), Principal{Subject: "user-1", Role: RoleCustomer})
	if _, err := User(service); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("User(a service) = %v, want unauthenticated: a service token must not act as a user", err)
	}
	if _, err := Admin(service); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Admin(a service) = %v, want unauthenticated", err)
	}
	if (Principal{Subject: "orders", Role: RoleService}).CanAccess("orders") {
		t.Error("a service may access a resource owned by an id equal to its name")
	}
	if _, err := Service(user); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Service(a user) = %v, want unauthenticated", err)
	}
	if p, err := Service(service); err != nil || p.Subject != "orders" {
		t.Errorf("Service(a service) = %+v, %v", p, err)
	}
}
