package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/fail"
)

func newSigner(t *testing.T) *Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(key, time.Hour)
}

func TestVerifyAcceptsWhatTheSignerIssues(t *testing.T) {
	s := newSigner(t)
	tok, ttl, err := s.Sign("user-1", RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if ttl != time.Hour {
		t.Errorf("ttl = %v, want 1h", ttl)
	}
	p, err := NewVerifier(s).Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Subject != "user-1" || p.Role != RoleCustomer || p.IsAdmin() {
		t.Errorf("principal = %+v", p)
	}
}

// forge signs claims with the signer's key but lets a test change any part.
func forge(t *testing.T, s *Signer, method jwt.SigningMethod, key any, header map[string]any, edit func(*claims)) string {
	t.Helper()
	now := time.Now()
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: Issuer, Subject: "user-1", Audience: jwt.ClaimStrings{Audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}, Role: RoleCustomer}
	if edit != nil {
		edit(&c)
	}
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = s.ring.current.kid
	for k, v := range header {
		tok.Header[k] = v
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestVerifyRefusesForgeries tries the token attacks of RFC 8725 and checks
// each is refused as unauthenticated.
func TestVerifyRefusesForgeries(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	pub := []byte(s.ring.current.private.Public().(ed25519.PublicKey))
	valid, _, _ := s.Sign("user-1", RoleCustomer)
	parts := strings.Split(valid, ".")
	tampered := func() string {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		_ = json.Unmarshal(payload, &m)
		m["role"] = RoleAdmin
		b, _ := json.Marshal(m)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}()
	tests := map[string]string{
		"alg none":                  forge(t, s, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, nil),
		"HS256 with public key":     forge(t, s, jwt.SigningMethodHS256, pub, nil, nil),
		"other key, same kid":       forge(t, s, jwt.SigningMethodEdDSA, other.ring.current.private, nil, nil),
		"unknown kid":               forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, map[string]any{"kid": "nope"}, nil),
		"no kid":                    forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, map[string]any{"kid": ""}, nil),
		"jku header":                forge(t, s, jwt.SigningMethodEdDSA, other.ring.current.private, map[string]any{"jku": "http://127.0.0.1:1/keys"}, nil),
		"tampered payload":          tampered,
		"expired":                   forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }),
		"not yet valid":             forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }),
		"missing exp":               forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.ExpiresAt = nil }),
		"wrong issuer":              forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.Issuer = "evil" }),
		"wrong audience":            forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.Audience = jwt.ClaimStrings{"other"} }),
		"unknown role":              forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.Role = "root" }),
		"no subject":                forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, nil, func(c *claims) { c.Subject = "" }),
		"a megabyte of dots":        strings.Repeat(".", 1<<20),
		"oversized but well formed": valid + strings.Repeat("A", MaxTokenBytes),
		"garbage":                   "not-a-token",
		"empty":                     "",
	}
	v := NewVerifier(s)
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

func TestRemoteKeysRateLimitUnknownKids(t *testing.T) {
	s := newSigner(t)
	fetches := 0
	keys := NewRemoteKeys(func(context.Context) ([]byte, error) {
		fetches++
		return json.Marshal(s.JWKS())
	})
	v := NewVerifier(keys)
	tok, _, _ := s.Sign("u", RoleAdmin)
	for range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		forged := forge(t, s, jwt.SigningMethodEdDSA, s.ring.current.private, map[string]any{"kid": "random"}, nil)
		if _, err := v.Verify(context.Background(), forged); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if fetches != 1 {
		t.Errorf("JWKS fetched %d times, want 1: unknown kids must not hammer the key server", fetches)
	}
}

func TestLoadOrCreateKeyKeepsTheKey(t *testing.T) {
	path := t.TempDir() + "/keys/jwt.pem"
	a, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Error("the key changed between loads: tokens would not survive a restart")
	}
}
