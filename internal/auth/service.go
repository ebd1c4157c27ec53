package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// Service tokens: what a service presents to another's internal endpoints.
// Their issuer and audience differ from an access token's, so neither kind
// verifies where the other is asked for.
const (
	ServiceIssuer   = "microshop-services"
	ServiceAudience = "microshop-internal"
	// ServiceTokenTTL is short: a service token that leaks is soon useless,
	// and a service makes a new one without asking anybody.
	ServiceTokenTTL = 5 * time.Minute
)

// ServiceSigner issues the service tokens one service presents. It reuses a
// token until a fifth of its life is left, so a busy caller signs a few
// tokens an hour, not one per call.
type ServiceSigner struct {
	service string
	key     ed25519.PrivateKey
	kid     string
	ttl     time.Duration
	now     func() time.Time

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// NewServiceSigner returns the signer of the service named service, with the
// shop-wide service key.
func NewServiceSigner(service string, key ed25519.PrivateKey) *ServiceSigner {
	return &ServiceSigner{service: service, key: key, kid: Thumbprint(key.Public().(ed25519.PublicKey)), ttl: ServiceTokenTTL, now: time.Now}
}

// Token returns a service token that stays valid for at least a fifth of
// its lifetime.
func (s *ServiceSigner) Token() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.token != "" && now.Before(s.renewAt) {
		return s.token, nil
	}
	tok, err := sign(newClaims(ServiceIssuer, ServiceAudience, s.service, RoleService, now, s.ttl), s.key, s.kid)
	if err != nil {
		return "", fmt.Errorf("signing a service token for %s: %w", s.service, err)
	}
	s.token, s.renewAt = tok, now.Add(s.ttl*4/5)
	return tok, nil
}

// Authorize puts the service's token on r as its bearer credential,
// replacing any other: it is how a call to an internal endpoint says which
// service makes it.
func (s *ServiceSigner) Authorize(_ context.Context, r *http.Request) error {
	tok, err := s.Token()
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// ServiceVerifier checks service tokens: EdDSA only, the service issuer and
// audience, a required expiry, the service key's kid, the service role, and
// a subject that names one of the shop's services.
type ServiceVerifier struct {
	keys     KeySource
	services []string
	now      func() time.Time
	seen     verifiedCache
}

// NewServiceVerifier returns a verifier of tokens signed with the private
// half of key by one of services.
func NewServiceVerifier(key ed25519.PublicKey, services []string) *ServiceVerifier {
	return &ServiceVerifier{keys: staticKey{kid: Thumbprint(key), key: key}, services: slices.Clone(services), now: time.Now}
}

// Verify checks token and returns the service it speaks for, as a principal
// with the service role. Every refusal is the same fail.Unauthenticated.
func (v *ServiceVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	c, err := verify(ctx, token, ServiceIssuer, ServiceAudience, v.keys, v.now, &v.seen)
	if err != nil {
		return Principal{}, err
	}
	if c.Role != RoleService || !slices.Contains(v.services, c.Subject) {
		return refuse(errors.New("token does not name a service of the shop"))
	}
	return Principal{Subject: c.Subject, Role: RoleService}, nil
}

// staticKey is a KeySource of one key.
type staticKey struct {
	kid string
	key ed25519.PublicKey
}

func (s staticKey) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if kid != s.kid {
		return nil, fail.New(fail.Unauthenticated, "unknown signing key")
	}
	return s.key, nil
}
