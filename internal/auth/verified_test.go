package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// TestRememberedTokensAreCheckedAgain: a token that verified once, and is
// remembered for it, is refused as soon as a new token would be: once it
// has expired, and once the key server stops publishing its key.
func TestRememberedTokensAreCheckedAgain(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	signer := NewSigner(newServiceKey(t), time.Hour)
	signer.now = c.now
	j := &jwksServer{signer: signer}
	v := &Verifier{keys: remoteOn(j, c, 30*time.Second), now: c.now}
	tok, _, _ := signer.Sign("user-1", RoleCustomer)
	for range 3 {
		if p, err := v.Verify(ctx, tok); err != nil || p.Subject != "user-1" {
			t.Fatalf("Verify(a fresh token) = %+v, %v; want user-1", p, err)
		}
	}

	// Expired: past its expiry and the five seconds of leeway.
	c.advance(time.Hour + 6*time.Second)
	if _, err := v.Verify(ctx, tok); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Verify(a remembered token, expired) = %v, want unauthenticated", err)
	}

	// Retired: the key server now publishes another key only; the
	// remembered token, still within its hour, stops verifying at the
	// next refresh of the key set.
	tok, _, _ = signer.Sign("user-1", RoleCustomer)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	other := NewSigner(newServiceKey(t), time.Hour)
	other.now = c.now
	j.signer = other
	c.advance(31 * time.Second)
	if _, err := v.Verify(ctx, tok); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Verify(a remembered token whose key is no longer published) = %v, want unauthenticated", err)
	}
}

// TestRememberedServiceTokensKeepTheirChecks: the service verifier
// remembers tokens too, and still refuses a remembered token from a
// service it was not told of, and an expired one.
func TestRememberedServiceTokensKeepTheirChecks(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	key := newServiceKey(t)
	s := NewServiceSigner("orders", key)
	s.now = c.now
	tok, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	v := NewServiceVerifier(key.Public().(ed25519.PublicKey), []string{"orders"})
	v.now = c.now
	for range 2 {
		if p, err := v.Verify(ctx, tok); err != nil || p.Subject != "orders" {
			t.Fatalf("Verify(a service token) = %+v, %v; want orders", p, err)
		}
	}
	narrow := NewServiceVerifier(key.Public().(ed25519.PublicKey), []string{"payments"})
	narrow.now = c.now
	if _, err := narrow.Verify(ctx, tok); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Verify(a token of a service not listed) = %v, want unauthenticated", err)
	}
	c.advance(24 * time.Hour)
	if _, err := v.Verify(ctx, tok); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Verify(a remembered service token, expired) = %v, want unauthenticated", err)
	}
}

// BenchmarkVerify is one verification of a token seen before.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer := NewSigner(key, time.Hour)
	v := NewVerifier(signer)
	tok, _, _ := signer.Sign("user-1", RoleCustomer)
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
