package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

// LoadOrCreateKey reads an Ed25519 private key from a PKCS#8 PEM file, or,
// when the file does not exist, generates one and writes it with mode 0600 (a
// development convenience; production mounts the key as a secret).
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing signing key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not Ed25519", path)
	}
	return key, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating key folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it first: use theirs
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing signing key: %w", err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		return nil, fmt.Errorf("writing signing key: %w", err)
	}
	return key, f.Sync()
}

// Refresh defaults of RemoteKeys.
const (
	// DefaultKeyRefresh is how old a fetched key set may grow before it is
	// fetched again. The users service publishes a next key at least this
	// long before it signs with it, so a verifier that refreshes this often
	// never meets a kid it does not know.
	DefaultKeyRefresh = 30 * time.Second
	// unknownKidInterval bounds the fetches that unknown kids cause.
	unknownKidInterval = 5 * time.Second
)

// RemoteKeys is a KeySource that fetches a JWKS and keeps its keys by kid.
// The set is fetched again when it is older than the refresh interval (by
// the first verification that notices, while the others go on with the keys
// they have), and when a token names a kid it does not know, at most once
// per five seconds, so forged kids cannot make it hammer the key server.
// Each fetch replaces the set: a key the server stopped publishing stops
// verifying.
type RemoteKeys struct {
	fetch       func(ctx context.Context) ([]byte, error)
	minInterval time.Duration
	refresh     time.Duration
	now         func() time.Time

	mu       sync.Mutex
	keys     map[string]ed25519.PublicKey
	fetched  time.Time     // the last fetch, successful or not
	failed   error         // why the last fetch failed; nil when it did not
	inflight chan struct{} // closed when the fetch under way ends; nil when none is
}

// NewRemoteKeys returns a key source over fetch, which returns a JWKS
// document, refreshed every DefaultKeyRefresh.
func NewRemoteKeys(fetch func(ctx context.Context) ([]byte, error)) *RemoteKeys {
	return &RemoteKeys{fetch: fetch, minInterval: unknownKidInterval, refresh: DefaultKeyRefresh, now: time.Now, keys: map[string]ed25519.PublicKey{}}
}

// RefreshEvery sets how often the key set is fetched again, before first
// use, and returns k.
func (k *RemoteKeys) RefreshEvery(d time.Duration) *RemoteKeys {
	k.refresh = d
	return k
}

// Key returns the key with kid, fetching the JWKS when it is due or when
// kid is not known yet.
func (k *RemoteKeys) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	for {
		k.mu.Lock()
		key, known := k.keys[kid]
		age := k.now().Sub(k.fetched)
		due := k.fetched.IsZero() || age >= k.refresh
		switch {
		case known && (!due || k.inflight != nil):
			k.mu.Unlock()
			return key, nil
		case !known && k.inflight != nil: // wait for the fetch under way, then look again
			wait := k.inflight
			k.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fail.Wrap(fail.Unavailable, ctx.Err(), "signing keys unavailable")
			}
		case !known && !due && age < k.minInterval:
			failed := k.failed
			k.mu.Unlock()
			if failed != nil { // the keys could not be fetched: kid may be real
				return nil, failed
			}
			return nil, fail.New(fail.Unauthenticated, "unknown signing key")
		}
		// This caller fetches; the others meanwhile use the keys there are.
		done := make(chan struct{})
		k.inflight = done
		k.mu.Unlock()
		keys, err := k.load(ctx)
		k.mu.Lock()
		k.inflight = nil
		close(done)
		k.fetched, k.failed = k.now(), err
		if err == nil {
			k.keys = keys
		}
		key, known = k.keys[kid]
		k.mu.Unlock()
		switch {
		case known:
			return key, nil
		case err != nil:
			return nil, err
		default:
			return nil, fail.New(fail.Unauthenticated, "unknown signing key")
		}
	}
}

func (k *RemoteKeys) load(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	b, err := k.fetch(ctx)
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, err, "signing keys unavailable")
	}
	keys, err := decodeJWKS(b)
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, err, "signing keys unavailable")
	}
	return keys, nil
}
