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

// RemoteKeys is a KeySource that fetches a JWKS and caches its keys by kid. An
// unknown kid triggers at most one refetch per minInterval, so forged kids
// cannot make it hammer the key server.
type RemoteKeys struct {
	fetch       func(ctx context.Context) ([]byte, error)
	minInterval time.Duration

	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

// NewRemoteKeys returns a key source over fetch, which returns a JWKS document.
func NewRemoteKeys(fetch func(ctx context.Context) ([]byte, error)) *RemoteKeys {
	return &RemoteKeys{fetch: fetch, minInterval: 5 * time.Second, keys: map[string]ed25519.PublicKey{}}
}

// Key returns the key with kid, fetching the JWKS when it is not known yet.
func (k *RemoteKeys) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[kid]; ok {
		return key, nil
	}
	if !k.fetched.IsZero() && time.Since(k.fetched) < k.minInterval {
		return nil, fail.New(fail.Unauthenticated, "unknown signing key")
	}
	b, err := k.fetch(ctx)
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, err, "signing keys unavailable")
	}
	keys, err := decodeJWKS(b)
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, err, "signing keys unavailable")
	}
	k.fetched = time.Now()
	for id, key := range keys {
		k.keys[id] = key
	}
	if key, ok := k.keys[kid]; ok {
		return key, nil
	}
	return nil, fail.New(fail.Unauthenticated, "unknown signing key")
}
