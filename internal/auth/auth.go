// Package auth issues and verifies microshop's access tokens: EdDSA-signed
// JWTs whose algorithm, issuer, audience and expiry are all checked, with
// public keys published and found by kid through a JWKS document.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/fail"
)

// Token defaults shared by the signer and every verifier.
const (
	Issuer        = "microshop-users"
	Audience      = "microshop"
	MaxTokenBytes = 4096 // a longer bearer token is refused before it is parsed
)

// Roles a principal can have.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Principal is who a verified token speaks for.
type Principal struct {
	Subject string // the user id
	Role    string
}

// IsAdmin reports whether the principal may act on everything.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// CanAccess reports whether the principal may act on a resource owned by ownerID.
func (p Principal) CanAccess(ownerID string) bool {
	return p.IsAdmin() || (p.Subject != "" && p.Subject == ownerID)
}

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

// Signer issues access tokens with one Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	kid string
	ttl time.Duration
	now func() time.Time
}

// NewSigner returns a signer that issues tokens valid for ttl.
func NewSigner(key ed25519.PrivateKey, ttl time.Duration) *Signer {
	pub := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, kid: Thumbprint(pub), ttl: ttl, now: time.Now}
}

// Sign returns a token for subject with role, and its lifetime.
func (s *Signer) Sign(subject, role string) (string, time.Duration, error) {
	now := s.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
		},
		Role: role,
	})
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return "", 0, fmt.Errorf("signing token: %w", err)
	}
	return signed, s.ttl, nil
}

// JWKS returns the public key set that verifies this signer's tokens.
func (s *Signer) JWKS() JWKS {
	return JWKS{Keys: []JWK{PublicJWK(s.key.Public().(ed25519.PublicKey))}}
}

// Key implements KeySource for the signer's own key, so the users service
// verifies tokens without a network round trip.
func (s *Signer) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if kid != s.kid {
		return nil, fail.New(fail.Unauthenticated, "unknown signing key")
	}
	return s.key.Public().(ed25519.PublicKey), nil
}

// JWK is one public key in a JWKS (RFC 8037 OKP / Ed25519).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK describes pub as a JWK with its thumbprint as kid.
func PublicJWK(pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: Thumbprint(pub), Use: "sig", Alg: "EdDSA"}
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key.
func Thumbprint(pub ed25519.PublicKey) string {
	canonical := fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, base64.RawURLEncoding.EncodeToString(pub))
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeySource finds the public key for a kid.
type KeySource interface {
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// Verifier checks access tokens.
type Verifier struct {
	keys KeySource
	now  func() time.Time
}

// NewVerifier returns a verifier that finds keys in keys.
func NewVerifier(keys KeySource) *Verifier { return &Verifier{keys: keys, now: time.Now} }

// Verify checks token and returns its principal. Only EdDSA is accepted; the
// issuer, audience and expiry must be present and right; the key is found by
// kid and never from a URL in the token. Every refusal is fail.Unauthenticated
// with the same message, so an attacker learns nothing from it.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	refuse := func(err error) (Principal, error) {
		return Principal{}, fail.Wrap(fail.Unauthenticated, err, "invalid or expired token")
	}
	if len(token) > MaxTokenBytes {
		return refuse(errors.New("token too long"))
	}
	if strings.Count(token, ".") != 2 {
		return refuse(errors.New("token is not a JWS compact serialization"))
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(v.now),
	)
	var c claims
	_, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid")
		}
		return v.keys.Key(ctx, kid)
	})
	if err != nil {
		return refuse(err)
	}
	if c.Subject == "" || (c.Role != RoleCustomer && c.Role != RoleAdmin) {
		return refuse(errors.New("token lacks subject or role"))
	}
	return Principal{Subject: c.Subject, Role: c.Role}, nil
}

// BearerToken returns the token of an "Authorization: Bearer" header, and
// whether the request carried one at all.
func BearerToken(r *http.Request) (string, bool, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", true, fail.New(fail.Unauthenticated, "authorization must be a Bearer token")
	}
	return strings.TrimSpace(token), true, nil
}

// decodeJWKS reads a JWKS, keeping only Ed25519 signing keys.
func decodeJWKS(b []byte) (map[string]ed25519.PublicKey, error) {
	var set JWKS
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	out := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Kid == "" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		out[k.Kid] = ed25519.PublicKey(x)
	}
	return out, nil
}
