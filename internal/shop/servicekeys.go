package shop

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/config"
	"github.com/microshop/microshop/internal/host"
)

// registryClient is the name service tokens give the registry client: one
// per process, shared by the services the process runs, which announce and
// resolve through it.
const registryClient = "discovery"

// loadServiceKey reads the shop-wide service key, or makes one for
// development, and builds the verifier of service tokens that every
// service's internal endpoints check. Every process of one shop reads the
// same key: that is what lets one service's token pass at another.
func (b *builder) loadServiceKey() error {
	key, err := auth.LoadOrCreateKey(b.cfg.ServiceKeyFile)
	if err != nil {
		return fmt.Errorf("loading the service key: %w", err)
	}
	b.serviceKey = key
	b.services = auth.NewServiceVerifier(key.Public().(ed25519.PublicKey), append(slices.Clone(config.Services), registryClient))
	return nil
}

// internalGuard is what the service name checks service tokens with on its
// internal paths. The gateway routes none of them, and answers 404 whoever
// asks, but for its own one (console.OTLPPath), which the gateway's builder
// guards.
func (b *builder) internalGuard(name string) *auth.ServiceVerifier {
	if name == "gateway" {
		return nil
	}
	return b.services
}

// authorizeInternal is the hook with which the service name's calls present
// its service token, on internal paths only: a public call keeps the user's
// token it carries, or none.
func (b *builder) authorizeInternal(name string) func(ctx context.Context, r *http.Request) error {
	signer := auth.NewServiceSigner(name, b.serviceKey)
	return func(ctx context.Context, r *http.Request) error {
		if !host.InternalPath(r.URL.Path) {
			return nil
		}
		return signer.Authorize(ctx, r)
	}
}

// keyRing opens the users service's signing key ring. A next key must be
// published for two refresh intervals before a rotation makes it sign: one
// for a second instance of users to reload the ring, one for every
// verifier to fetch the keys again.
func (b *builder) keyRing() (*auth.Signer, error) {
	signer, err := auth.OpenSigner(b.cfg.JWTKeyFile, b.cfg.TokenTTL, 2*b.cfg.KeyRefresh)
	if err != nil {
		return nil, fmt.Errorf("opening the signing key ring: %w", err)
	}
	return signer, nil
}

// followKeyRing re-reads the key ring every interval, so that an instance
// of users signs and publishes what another instance's rotation saved.
func followKeyRing(signer *auth.Signer, every time.Duration, log *slog.Logger) host.Worker {
	return func(ctx context.Context) {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := signer.Reload(); err != nil {
					log.Warn("reloading the signing key ring failed; keeping the keys in use", slog.Any("err", err))
				}
			}
		}
	}
}
