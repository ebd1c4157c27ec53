package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// clock is a time the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openRing opens the ring at path on the test's clock.
func openRing(t *testing.T, path string, c *clock, ttl, announce time.Duration) *Signer {
	t.Helper()
	s, err := openSigner(path, ttl, announce, c.now)
	if err != nil {
		t.Fatalf("opening the ring %s: %v", path, err)
	}
	return s
}

func kids(set JWKS) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

func TestOpenSignerCreatesAndKeepsTheRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "jwt.pem")
	s, err := OpenSigner(path, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if st.Current == "" || st.Next == "" || st.Current == st.Next || len(st.Previous) != 0 {
		t.Fatalf("a new ring = %+v, want a current and a different next key, no previous", st)
	}
	if got, want := kids(s.JWKS()), []string{st.Current, st.Next}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids = %v, want current and next %v", got, want)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("the ring file's mode = %v, want 0600", mode)
	}
	again, err := OpenSigner(path, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.State(); got.Current != st.Current || got.Next != st.Next {
		t.Errorf("reopened ring = %+v, want %+v: tokens would not survive a restart", got, st)
	}
	// The first block is the current key, for readers of a single-key file.
	first, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := Thumbprint(first.Public().(ed25519.PublicKey)); got != st.Current {
		t.Errorf("LoadOrCreateKey reads kid %s, want the current key %s", got, st.Current)
	}
}

func TestOpenSignerTakesASingleKeyFileAsTheCurrentKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt.pem")
	key, err := LoadOrCreateKey(path) // a file as the shop wrote it before rings
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSigner(path, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if want := Thumbprint(key.Public().(ed25519.PublicKey)); st.Current != want {
		t.Errorf("current = %s, want the file's key %s", st.Current, want)
	}
	if st.Next == "" || st.Next == st.Current {
		t.Errorf("next = %q, want a new key beside the current one", st.Next)
	}
	again, err := OpenSigner(path, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.State(); got.Next != st.Next {
		t.Errorf("the next key was not saved: reopened next = %s, want %s", got.Next, st.Next)
	}
}

func TestOpenSignerRefusesABadRing(t *testing.T) {
	pemOf := func(role string) string {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		h := map[string]string{}
		if role != "" {
			h[headerRole] = role
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: h, Bytes: der}))
	}
	tests := map[string]string{
		"empty":               "",
		"two current keys":    pemOf("current") + pemOf("current"),
		"only a next key":     pemOf("next"),
		"two next keys":       pemOf("current") + pemOf("next") + pemOf("next"),
		"an unknown label":    pemOf("current") + pemOf("spare"),
		"a certificate":       pemOf("current") + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"not a PKCS#8 key":    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"a bad time":          strings.Replace(pemOf("next"), "Microshop-Key: next", "Microshop-Key: next\nMicroshop-Since: yesterday", 1) + pemOf(""),
		"two unlabelled keys": pemOf("") + pemOf(""),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt.pem")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSigner(path, time.Hour, 0)
			if err == nil {
				t.Fatalf("OpenSigner = %+v, nil; want an error", s.State())
			}
			t.Log(err)
		})
	}
}

func TestRotateWaitsUntilTheNextKeyIsKnownAndKeepsOldTokensValid(t *testing.T) {
	c := newClock()
	const ttl, announce = time.Hour, 30 * time.Second
	path := filepath.Join(t.TempDir(), "jwt.pem")
	s := openRing(t, path, c, ttl, announce)
	v := &Verifier{keys: s, now: c.now}
	ctx := context.Background()
	before := s.State()

	oldToken, _, _ := s.Sign("user-1", RoleCustomer)
	c.advance(announce - time.Second)
	if _, err := s.Rotate(ctx); !fail.Is(err, fail.Conflict) {
		t.Fatalf("Rotate %v after the next key was published = %v, want a conflict", announce-time.Second, err)
	}
	if got := s.State(); got.Current != before.Current {
		t.Fatalf("a refused rotation changed the ring: %+v", got)
	}
	c.advance(time.Second)
	first, err := s.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate after %v: %v", announce, err)
	}
	if first.Current != before.Next || first.Next == before.Next || !slices.Equal(first.Previous, []string{before.Current}) {
		t.Errorf("after one rotation = %+v, want current %s (the old next), a new next, previous [%s]", first, before.Next, before.Current)
	}
	middleToken, _, _ := s.Sign("user-1", RoleCustomer)
	c.advance(announce)
	second, err := s.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(second.Previous, []string{first.Current, before.Current}) {
		t.Errorf("after two rotations previous = %v, want [%s %s]", second.Previous, first.Current, before.Current)
	}
	newToken, _, _ := s.Sign("user-1", RoleCustomer)
	for name, tok := range map[string]string{"before both": oldToken, "between": middleToken, "after": newToken} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("a token signed %s the rotations: %v, want valid until it expires", name, err)
		}
	}

	// The ring survives a restart, previous keys included.
	if got := openRing(t, path, c, ttl, announce).State(); got.Current != second.Current || !slices.Equal(got.Previous, second.Previous) {
		t.Errorf("reopened ring = %+v, want %+v", got, second)
	}

	// A previous key is dropped once every token it signed has expired.
	c.advance(ttl + time.Minute)
	if got := kids(s.JWKS()); slices.Contains(got, before.Current) || slices.Contains(got, first.Current) {
		t.Errorf("JWKS %v still publishes keys retired more than a token's life ago", got)
	}
	if _, err := s.Key(ctx, before.Current); !fail.Is(err, fail.Unauthenticated) {
		t.Errorf("Key(a key retired long ago) = %v, want unauthenticated", err)
	}
	if _, err := v.Verify(ctx, oldToken); err == nil {
		t.Error("an expired token from a retired key verified")
	}
}

func TestRotateFailsWithoutChangingTheRingWhenItCannotSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "jwt.pem")
	s, err := OpenSigner(path, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := s.State()
	if err := os.RemoveAll(dir); err != nil { // nowhere left to write, even for root
		t.Fatal(err)
	}
	if _, err := s.Rotate(context.Background()); err == nil {
		t.Fatal("Rotate with its folder gone = nil, want an error")
	}
	if got := s.State(); got.Current != before.Current || got.Next != before.Next {
		t.Errorf("the ring changed though it was not saved: %+v, want %+v", got, before)
	}
}

func TestReloadFollowsAnotherInstancesRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt.pem")
	a, err := OpenSigner(path, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenSigner(path, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := a.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := a.Sign("user-1", RoleCustomer)
	// Before reloading, b still verifies a's new tokens: their key was b's next.
	if _, err := NewVerifier(b).Verify(context.Background(), tok); err != nil {
		t.Errorf("b verifying a token of a's new current key before reloading: %v", err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := b.State(); got.Current != rotated.Current || got.Next != rotated.Next {
		t.Errorf("b after Reload = %+v, want a's ring %+v", got, rotated)
	}
	if err := b.Reload(); err != nil { // nothing changed: nothing to do
		t.Fatal(err)
	}
}

func TestConcurrentOpensAgreeOnOneRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "jwt.pem")
	states := make([]KeyRingState, 8)
	var wg sync.WaitGroup
	for i := range states {
		wg.Go(func() {
			s, err := OpenSigner(path, time.Hour, 0)
			if err != nil {
				t.Error(err)
				return
			}
			states[i] = s.State()
		})
	}
	wg.Wait()
	for i, st := range states {
		if st.Current != states[0].Current || st.Next != states[0].Next {
			t.Errorf("opener %d got ring %+v, opener 0 %+v: processes starting together must share one ring", i, st, states[0])
		}
	}
}

func TestJWKSHoldsNoPrivatePart(t *testing.T) {
	s := newSigner(t)
	b, err := json.Marshal(s.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"d"`) {
		t.Errorf("JWKS %s carries a private key", b)
	}
}
