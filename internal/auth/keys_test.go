package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// jwksServer serves a signer's JWKS to RemoteKeys and counts the fetches; it
// can be told to fail.
type jwksServer struct {
	signer  *Signer
	fetches atomic.Int64
	down    atomic.Bool
}

func (j *jwksServer) fetch(context.Context) ([]byte, error) {
	j.fetches.Add(1)
	if j.down.Load() {
		return nil, errors.New("connection refused")
	}
	return json.Marshal(j.signer.JWKS())
}

func remoteOn(j *jwksServer, c *clock, refresh time.Duration) *RemoteKeys {
	k := NewRemoteKeys(j.fetch).RefreshEvery(refresh)
	k.now = c.now
	return k
}

func TestRemoteKeysRefreshWhenDueAndForgetRetiredKeys(t *testing.T) {
	c := newClock()
	signer := NewSigner(newServiceKey(t), time.Hour)
	signer.now = c.now
	j := &jwksServer{signer: signer}
	keys := remoteOn(j, c, 30*time.Second)
	v := &Verifier{keys: keys, now: c.now}
	ctx := context.Background()
	tok, _, _ := signer.Sign("user-1", RoleCustomer)

	for range 10 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := j.fetches.Load(); got != 1 {
		t.Errorf("fetches for ten verifications within the interval = %d, want 1", got)
	}
	c.advance(30 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if got := j.fetches.Load(); got != 2 {
		t.Errorf("fetches once the set is due = %d, want 2", got)
	}

	// The users service stops publishing a key: at the next refresh its
	// tokens stop verifying here too.
	retired := signer.State().Current
	if _, err := signer.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Hour + time.Minute) // the retired key's last token has expired
	fresh, _, _ := signer.Sign("user-1", RoleCustomer)
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Key(ctx, retired); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Key(a key the server stopped publishing) = %v, want unauthenticated", err)
	}
}

func TestRemoteKeysKeepTheirKeysWhenTheServerIsDown(t *testing.T) {
	c := newClock()
	signer := NewSigner(newServiceKey(t), time.Hour)
	signer.now = c.now
	j := &jwksServer{signer: signer}
	v := &Verifier{keys: remoteOn(j, c, 30*time.Second), now: c.now}
	ctx := context.Background()
	tok, _, _ := signer.Sign("user-1", RoleCustomer)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	j.down.Store(true)
	c.advance(time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("a known key while the key server is down: %v, want it still verifies", err)
	}
	// A kid nobody knows, while the keys cannot be fetched, is not the
	// token's fault: the answer is unavailable, not unauthenticated.
	c.advance(time.Minute)
	other := NewSigner(newServiceKey(t), time.Hour)
	stranger, _, _ := other.Sign("user-1", RoleCustomer)
	if _, err := v.Verify(ctx, stranger); !fail.Is(err, fail.Unavailable) {
		t.Errorf("an unknown kid while the key server is down = %v, want unavailable", err)
	}
}

// TestRemoteKeysFetchOnceForManyCallers: while a fetch is under way, the
// callers that need it wait for it and the others go on; none fetches again.
func TestRemoteKeysFetchOnceForManyCallers(t *testing.T) {
	signer := NewSigner(newServiceKey(t), time.Hour)
	release := make(chan struct{})
	var fetches atomic.Int64
	keys := NewRemoteKeys(func(context.Context) ([]byte, error) {
		fetches.Add(1)
		<-release
		return json.Marshal(signer.JWKS())
	})
	v := NewVerifier(keys)
	tok, _, _ := signer.Sign("user-1", RoleCustomer)
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				failed.Add(1)
			}
		})
	}
	close(release)
	wg.Wait()
	if got := fetches.Load(); got != 1 {
		t.Errorf("fetches for 50 concurrent first verifications = %d, want 1", got)
	}
	if got := failed.Load(); got != 0 {
		t.Errorf("failed verifications = %d, want 0", got)
	}
}

// TestRotationUnderTrafficFailsNothing rotates a ring twice while verifiers
// refresh at the interval the ring announces its next key for: not one
// verification fails, and no verifier ever meets a kid it does not know
// (it never needs the unknown-kid fetch).
func TestRotationUnderTrafficFailsNothing(t *testing.T) {
	c := newClock()
	const refresh = 30 * time.Second
	signer := openRing(t, filepath.Join(t.TempDir(), "jwt.pem"), c, time.Hour, refresh)
	j := &jwksServer{signer: signer}
	verifiers := make([]*Verifier, 3)
	remotes := make([]*RemoteKeys, 3)
	for i := range verifiers {
		remotes[i] = remoteOn(j, c, refresh)
		verifiers[i] = &Verifier{keys: remotes[i], now: c.now}
	}
	ctx := context.Background()
	first, _, _ := signer.Sign("user-0", RoleCustomer)
	var requests, failed, unknownKid int
	step := func(n int) {
		for i := range n {
			tok, _, _ := signer.Sign(fmt.Sprintf("user-%d", i), RoleCustomer)
			for vi, v := range verifiers {
				for _, tk := range []string{tok, first} {
					requests++
					if _, err := v.Verify(ctx, tk); err != nil {
						failed++
						t.Errorf("verifier %d: %v", vi, err)
					}
				}
				c.advance(100 * time.Millisecond)
			}
		}
	}
	// Count the fetches that an unknown kid caused: a fetch by a verifier
	// whose set was not due.
	for _, r := range remotes {
		inner := r.fetch
		r.fetch = func(ctx context.Context) ([]byte, error) {
			if age := c.now().Sub(r.fetched); !r.fetched.IsZero() && age < refresh {
				unknownKid++
			}
			return inner(ctx)
		}
	}

	step(5)
	rotations, tooSoon := 0, 0
	for rotations < 2 {
		if _, err := signer.Rotate(ctx); fail.Is(err, fail.Conflict) {
			tooSoon++
			step(1)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		rotations++
		step(5)
	}
	step(20)
	t.Logf("requests=%d failed=%d rotations=%d refused_too_soon=%d unknown_kid_fetches=%d", requests, failed, rotations, tooSoon, unknownKid)
	if failed != 0 || unknownKid != 0 {
		t.Errorf("failed=%d unknown_kid_fetches=%d, want 0 and 0", failed, unknownKid)
	}
	if tooSoon == 0 {
		t.Error("no rotation was refused as too soon: the announce period was not tested")
	}
}
