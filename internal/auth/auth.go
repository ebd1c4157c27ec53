// Package auth issues and verifies microshop's tokens: EdDSA-signed JWTs
// whose algorithm, issuer, audience, expiry and key id are all checked.
//
// There are two kinds. Access tokens speak for a user: the users service
// signs them with a key ring whose public keys every other service finds by
// kid in a JWKS document, so the ring rotates without a failed request (the
// next key is published before it signs, a retired one until the last token
// it signed expires). Service tokens speak for a service calling another's
// internal endpoints: each service signs its own, short-lived, with the
// shop-wide service key, for a distinct audience, so neither kind passes
// where the other is asked for.
//
// The trade-off of one shared service key: every service holds the private
// key, so a compromised service can mint a token naming any other service,
// and the key's holder set is the whole shop. Per-service keys (each callee
// trusting a list of callers' public keys) or mTLS with a certificate per
// service would confine a compromise to one identity; they cost a key or
// certificate per service to issue, distribute and rotate. The shared key
// still stops what it is meant to stop: a caller from outside the shop, a
// user's token, and anything reaching an internal endpoint around the
// gateway without the key.
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

// Access tokens' claims, shared by the users service's signer and every
// verifier.
const (
	Issuer        = "microshop-users"
	Audience      = "microshop"
	MaxTokenBytes = 4096 // a longer bearer token is refused before it is parsed
)

// Roles a principal can have. Customers and admins are users, with access
// tokens; a service, with a service token, is never a user.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
	RoleService  = "service"
)

// Principal is who a verified token speaks for.
type Principal struct {
	Subject string // the user id, or a service's name
	Role    string
	// Expires is when the credential ends; what lasts longer than one
	// request (a stream) ends with it.
	Expires time.Time
}

// IsAdmin reports whether the principal may act on everything.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// CanAccess reports whether the principal may act on a resource owned by ownerID.
func (p Principal) CanAccess(ownerID string) bool {
	return p.IsAdmin() || (p.Role != RoleService && p.Subject != "" && p.Subject == ownerID)
}

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

// newClaims are the claims of a token for subject with role, issued now.
func newClaims(issuer, audience, subject, role string, now time.Time, ttl time.Duration) claims {
	return claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Role: role,
	}
}

// sign serializes c signed with key, naming the key by kid.
func sign(c claims, key ed25519.PrivateKey, kid string) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return signed, nil
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
	seen verifiedCache
}

// NewVerifier returns a verifier that finds keys in keys.
func NewVerifier(keys KeySource) *Verifier { return &Verifier{keys: keys, now: time.Now} }

// Verify checks token and returns its principal. Only EdDSA is accepted; the
// issuer, audience and expiry must be present and right; the key is found by
// kid and never from a URL in the token. Every refusal is fail.Unauthenticated
// with the same message, so an attacker learns nothing from it. A service
// token is refused here: its issuer and audience are not a user's.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	c, err := verify(ctx, token, Issuer, Audience, v.keys, v.now, &v.seen)
	if err != nil {
		return Principal{}, err
	}
	if c.Subject == "" || (c.Role != RoleCustomer && c.Role != RoleAdmin) {
		return refuse(errors.New("token lacks subject or role"))
	}
	p := Principal{Subject: c.Subject, Role: c.Role}
	if c.ExpiresAt != nil {
		p.Expires = c.ExpiresAt.Time
	}
	return p, nil
}

// refuse is the one answer to every token that does not pass; the cause is
// kept for the log, never shown.
func refuse(err error) (Principal, error) {
	return Principal{}, fail.Wrap(fail.Unauthenticated, err, "invalid or expired token")
}

// verify parses token and checks everything both kinds of token share: the
// size, the pinned algorithm, issuer and audience, a required expiry, the
// not-before and issued-at times, and a signature by the key its kid names.
// A token seen passes again without its signature checked a second time
// (see verifiedCache); the rest is checked on every call.
func verify(ctx context.Context, token, issuer, audience string, keys KeySource, now func() time.Time, seen *verifiedCache) (claims, error) {
	if len(token) > MaxTokenBytes {
		_, err := refuse(errors.New("token too long"))
		return claims{}, err
	}
	if strings.Count(token, ".") != 2 {
		_, err := refuse(errors.New("token is not a JWS compact serialization"))
		return claims{}, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5 * time.Second),
		jwt.WithTimeFunc(now),
	}
	if v, ok := seen.get(token); ok {
		if stillPasses(ctx, v, keys, opts) {
			return v.claims, nil
		}
		seen.forget(token) // and check it in full, for the refusal's reason
	}
	var (
		c   claims
		kid string
		key ed25519.PublicKey
	)
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid")
		}
		k, err := keys.Key(ctx, kid)
		key = k
		return k, err
	})
	if err != nil {
		if fail.Is(err, fail.Unavailable) { // the keys could not be fetched: not the token's fault
			return claims{}, err
		}
		_, err := refuse(err)
		return claims{}, err
	}
	seen.put(token, verifiedToken{claims: c, kid: kid, key: key})
	return c, nil
}

// stillPasses reports whether a token whose signature was checked before
// passes now: its kid still finds the key that checked it, and its claims
// pass the same checks as a new token's, against the clock of this moment.
func stillPasses(ctx context.Context, v verifiedToken, keys KeySource, opts []jwt.ParserOption) bool {
	key, err := keys.Key(ctx, v.kid)
	if err != nil || !key.Equal(v.key) {
		return false
	}
	return jwt.NewValidator(opts...).Validate(&v.claims) == nil
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
