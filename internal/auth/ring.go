package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// Signer issues access tokens from a key ring. The current key signs. The
// next key is published in the JWKS from the moment it is made, so that
// every verifier knows it before it signs a token. Previous keys stay
// published until the last token they signed has expired. Rotate moves the
// ring one step: next becomes current, current becomes previous, and a new
// next is made.
type Signer struct {
	ttl time.Duration
	// announce is how long the next key must have been published before
	// Rotate may promote it: the interval at which verifiers refresh their
	// keys, so that none meets the new key before it knows it.
	announce time.Duration
	path     string // where the ring persists; empty: in memory only
	now      func() time.Time

	mu    sync.RWMutex
	ring  ring
	saved []byte // the file as last read or written, so Reload sees a change
}

// ring is the signer's keys at one moment.
type ring struct {
	current  ringKey
	next     ringKey
	previous []ringKey // newest first
}

// ringKey is one key of the ring. since is when a next key was published,
// or when a previous key stopped signing.
type ringKey struct {
	private ed25519.PrivateKey
	kid     string
	since   time.Time
}

func newRingKey(private ed25519.PrivateKey, since time.Time) ringKey {
	return ringKey{private: private, kid: Thumbprint(private.Public().(ed25519.PublicKey)), since: since}
}

// generate makes a fresh key. crypto/rand never fails (Go 1.24 and later),
// so neither does this.
func generate(since time.Time) ringKey {
	_, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("generating an Ed25519 key: %v", err))
	}
	return newRingKey(private, since)
}

func (k ringKey) public() ed25519.PublicKey { return k.private.Public().(ed25519.PublicKey) }

// KeyRingState names the keys of a ring by kid; it holds nothing secret.
type KeyRingState struct {
	Current  string   `json:"current"`
	Next     string   `json:"next"`
	Previous []string `json:"previous"`
}

// NewSigner returns a signer whose ring lives in memory only: key signs
// tokens valid for ttl, and a fresh next key is published beside it. Tests
// use it; the shop opens its ring from a file with OpenSigner.
func NewSigner(key ed25519.PrivateKey, ttl time.Duration) *Signer {
	now := time.Now()
	return &Signer{ttl: ttl, now: time.Now, ring: ring{current: newRingKey(key, now), next: generate(now)}}
}

// OpenSigner returns a signer whose ring persists in the PEM file at path,
// creating the file (mode 0600) with a current and a next key when there is
// none. A file holding a single PKCS#8 key, as a mounted secret or an older
// shop wrote it, is that ring's current key; a next key is added and saved.
// Tokens live for ttl; Rotate refuses to promote a next key published for
// less than announce.
func OpenSigner(path string, ttl, announce time.Duration) (*Signer, error) {
	return openSigner(path, ttl, announce, time.Now)
}

func openSigner(path string, ttl, announce time.Duration, now func() time.Time) (*Signer, error) {
	s := &Signer{ttl: ttl, announce: announce, path: path, now: now}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, s.create()
	}
	if err != nil {
		return nil, fmt.Errorf("reading the signing key ring: %w", err)
	}
	r, err := decodeRing(b)
	if err != nil {
		return nil, fmt.Errorf("signing key ring %s: %w", path, err)
	}
	s.ring, s.saved = r, b
	if r.next.private == nil {
		s.ring.next = generate(s.now())
		if err := s.save(s.ring); err != nil {
			return nil, fmt.Errorf("publishing a next signing key (the key file must be writable, or hold a next key): %w", err)
		}
	}
	return s, nil
}

// create writes a new ring to a file that does not exist yet: written
// whole beside it, then linked into place, which fails if the file appeared
// meanwhile. Then another process made the ring first, and its ring is used.
func (s *Signer) create() error {
	now := s.now()
	r := ring{current: generate(now), next: generate(now)}
	b, err := encodeRing(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("creating the key folder: %w", err)
	}
	tmp, err := writeTemp(s.path, b)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, s.path)
	if errors.Is(err, os.ErrExist) {
		other, err := openSigner(s.path, s.ttl, s.announce, s.now)
		if err != nil {
			return err
		}
		s.ring, s.saved = other.ring, other.saved
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing the signing key ring: %w", err)
	}
	syncDir(s.path)
	s.ring, s.saved = r, b
	return nil
}

// Sign returns a token for subject with role, signed by the current key,
// and its lifetime.
func (s *Signer) Sign(subject, role string) (string, time.Duration, error) {
	s.mu.RLock()
	current := s.ring.current
	s.mu.RUnlock()
	tok, err := sign(newClaims(Issuer, Audience, subject, role, s.now(), s.ttl), current.private, current.kid)
	if err != nil {
		return "", 0, err
	}
	return tok, s.ttl, nil
}

// published returns the keys that verify tokens now: current, next and
// every previous key that may still have signed an unexpired token.
func (s *Signer) published() []ringKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := []ringKey{s.ring.current, s.ring.next}
	for _, k := range s.ring.previous {
		if s.stillValid(k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// stillValid reports whether a previous key may have signed a token that
// has not expired: it stopped signing less than a token's life ago (and a
// minute's leeway for clocks).
func (s *Signer) stillValid(previous ringKey) bool {
	return s.now().Before(previous.since.Add(s.ttl + time.Minute))
}

// JWKS returns the public keys that verify this signer's tokens: current,
// next and the previous keys still valid.
func (s *Signer) JWKS() JWKS {
	var set JWKS
	for _, k := range s.published() {
		set.Keys = append(set.Keys, PublicJWK(k.public()))
	}
	return set
}

// Key implements KeySource over the published keys, so the users service
// verifies tokens without a network round trip. The next key is accepted
// too: another instance of the service may have promoted it already.
func (s *Signer) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	for _, k := range s.published() {
		if k.kid == kid {
			return k.public(), nil
		}
	}
	return nil, fail.New(fail.Unauthenticated, "unknown signing key")
}

// State names the ring's keys.
func (s *Signer) State() KeyRingState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state(s.ring)
}

func (s *Signer) state(r ring) KeyRingState {
	st := KeyRingState{Current: r.current.kid, Next: r.next.kid, Previous: []string{}}
	for _, k := range r.previous {
		if s.stillValid(k) {
			st.Previous = append(st.Previous, k.kid)
		}
	}
	return st
}

// Rotate promotes the next key to current, keeps the current one as
// previous, and publishes a new next key; the ring is saved before it is
// used. It is a fail.Conflict while the next key has been published for
// less than the announce period: a verifier might not know it yet.
func (s *Signer) Rotate(_ context.Context) (KeyRingState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if published := now.Sub(s.ring.next.since); s.announce > 0 && published < s.announce {
		return KeyRingState{}, fail.New(fail.Conflict,
			"the next signing key has been published for %s; verifiers refresh their keys every %s, so it may sign from %s",
			published.Round(time.Millisecond), s.announce, s.ring.next.since.Add(s.announce).UTC().Format(time.RFC3339Nano))
	}
	retired := s.ring.current
	retired.since = now
	r := ring{current: s.ring.next, next: generate(now), previous: []ringKey{retired}}
	for _, k := range s.ring.previous {
		if s.stillValid(k) {
			r.previous = append(r.previous, k)
		}
	}
	if s.path != "" {
		if err := s.save(r); err != nil {
			return KeyRingState{}, err
		}
	}
	s.ring = r
	return s.state(r), nil
}

// Reload reads the ring's file again when another process changed it (a
// second instance of the service that rotated), so that every instance
// signs with the same current key and publishes the same next one.
func (s *Signer) Reload() error {
	if s.path == "" {
		return nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("reading the signing key ring: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(b, s.saved) {
		return nil
	}
	r, err := decodeRing(b)
	if err != nil {
		return fmt.Errorf("signing key ring %s: %w", s.path, err)
	}
	if r.next.private == nil { // a file written by hand: keep publishing the next key this instance has
		r.next = s.ring.next
	}
	s.ring, s.saved = r, b
	return nil
}

// save writes r over the ring's file atomically: a new file beside it,
// synced, then renamed over it, so a crash leaves the old ring or the new
// one, never half of one.
func (s *Signer) save(r ring) error {
	b, err := encodeRing(r)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(s.path, b)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after the rename there is nothing left to remove
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("saving the signing key ring: %w", err)
	}
	syncDir(s.path)
	s.saved = b
	return nil
}

// writeTemp writes b, synced and readable by the owner only, to a new file
// in the folder of path, and returns its name.
func writeTemp(path string, b []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return "", fmt.Errorf("writing the signing key ring: %w", err)
	}
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing the signing key ring: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes a rename or link in the folder of path durable; a folder
// that cannot be synced is left to the file system's own schedule.
func syncDir(path string) {
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// The ring's file is a sequence of PKCS#8 PEM blocks, each labelled by
// headers with its role and, for next and previous keys, its time. The
// current key comes first, so a reader that takes only the first block (as
// LoadOrCreateKey does) finds the key that signs.
const (
	headerRole  = "Microshop-Key"
	headerSince = "Microshop-Since"
)

func encodeRing(r ring) ([]byte, error) {
	var buf bytes.Buffer
	write := func(k ringKey, role string) error {
		der, err := x509.MarshalPKCS8PrivateKey(k.private)
		if err != nil {
			return fmt.Errorf("encoding a signing key: %w", err)
		}
		h := map[string]string{headerRole: role}
		if !k.since.IsZero() {
			h[headerSince] = k.since.UTC().Format(time.RFC3339Nano)
		}
		return pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Headers: h, Bytes: der})
	}
	if err := write(r.current, "current"); err != nil {
		return nil, err
	}
	if err := write(r.next, "next"); err != nil {
		return nil, err
	}
	for _, k := range r.previous {
		if err := write(k, "previous"); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func decodeRing(b []byte) (ring, error) {
	var (
		r       ring
		current int
	)
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PRIVATE KEY" {
			return ring{}, fmt.Errorf("a %q PEM block where Ed25519 PKCS#8 private keys were expected", block.Type)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return ring{}, fmt.Errorf("parsing a signing key: %w", err)
		}
		private, ok := parsed.(ed25519.PrivateKey)
		if !ok {
			return ring{}, errors.New("a signing key that is not Ed25519")
		}
		var since time.Time
		if v := block.Headers[headerSince]; v != "" {
			if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return ring{}, fmt.Errorf("the time of a signing key: %w", err)
			}
		}
		k := newRingKey(private, since)
		switch role := block.Headers[headerRole]; role {
		case "current", "": // an unlabelled key is a single-key file's only key
			current++
			r.current = k
		case "next":
			if r.next.private != nil {
				return ring{}, errors.New("more than one next key")
			}
			r.next = k
		case "previous":
			r.previous = append(r.previous, k)
		default:
			return ring{}, fmt.Errorf("a signing key labelled %q", role)
		}
	}
	if current != 1 {
		return ring{}, fmt.Errorf("%d current keys, want exactly one", current)
	}
	slices.SortStableFunc(r.previous, func(a, b ringKey) int { return b.since.Compare(a.since) })
	return r, nil
}
