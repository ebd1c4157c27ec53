package auth

import (
	"crypto/ed25519"
	"sync"
)

// Checking an Ed25519 signature is the dearest step of a request that
// carries a token, and the same token comes back on every request of a
// session, at the gateway and again at the service behind it: under load
// it took a seventh of the one-process shop's CPU. A verifiedCache
// remembers the tokens whose signature a verifier has checked, so that a
// token seen again skips only that step.
//
// Everything else is checked again on every use, as if the token were new:
// the claims (expiry, not-before, issued-at, issuer, audience) against the
// clock of that moment, and the key: the kid must still find the very key
// that checked the signature, so a key the key server stopped publishing
// stops verifying its tokens at once, remembered or not. Only tokens that
// passed are remembered; a refused one is checked in full every time.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[string]verifiedToken // by the token's compact form
}

// verifiedToken is what a checked token said, and the key that checked it.
type verifiedToken struct {
	claims claims
	kid    string
	key    ed25519.PublicKey
}

// maxVerified bounds the tokens remembered. Each is at most MaxTokenBytes,
// and only a token signed by the shop's key gets in, so an attacker cannot
// fill it; when it is full an arbitrary entry makes room, so a session
// that loses its entry only pays for one more signature check.
const maxVerified = 4096

func (c *verifiedCache) get(token string) (verifiedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.entries[token]
	return v, ok
}

func (c *verifiedCache) put(token string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]verifiedToken{}
	}
	if _, ok := c.entries[token]; !ok && len(c.entries) >= maxVerified {
		for t := range c.entries { // map order: an arbitrary one
			delete(c.entries, t)
			break
		}
	}
	c.entries[token] = v
}

// forget drops token, once it no longer passes.
func (c *verifiedCache) forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, token)
}
