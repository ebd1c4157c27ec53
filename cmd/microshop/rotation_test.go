package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
)

// TestKeyRotationFailsNoRequest rotates the users service's signing keys
// twice while customers keep calling the shop, through the gateway and
// straight at orders (both verify with the keys they fetch from users) and
// at users (which verifies with its own ring). Tokens from before the
// rotations, and tokens signed by each new key as soon as it signs, are
// used all along. Not one request fails, and a rotation asked too soon
// after the last is refused rather than let a verifier meet a key it does
// not know.
func TestKeyRotationFailsNoRequest(t *testing.T) {
	const refresh = 200 * time.Millisecond
	dir := t.TempDir()
	shop := start(t, dir, append([]string{"MICROSHOP_JWKS_REFRESH=" + refresh.String()}, tokenTestEnv...), "up")
	gw := newClient(t, shop.addrs["gateway"])
	admin := gw.login(adminEmail, adminPassword)
	_, oldToken := gw.signup("dora@example.com") // issued before any rotation

	// fresh is the newest token a login got; the login loop keeps it fresh.
	var fresh atomic.Value
	fresh.Store(oldToken)
	var (
		requests, failed atomic.Int64
		byKid            sync.Map // kid -> *atomic.Int64: successful requests with a token it signed
		failures         sync.Map // a sample of what failed
		stop             = make(chan struct{})
		wg               sync.WaitGroup
	)
	count := func(token string, r response, err error, what string) {
		requests.Add(1)
		if err != nil || r.Status != http.StatusOK {
			failed.Add(1)
			failures.Store(what, fmt.Sprintf("%d %s %v", r.Status, r.Body, err))
			return
		}
		n, _ := byKid.LoadOrStore(tokenKid(t, token), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	wg.Go(func() { // logs in again and again: each login is signed by the key that signs now
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := gw.try("POST", "/api/v1/auth/login", "", map[string]string{"email": "dora@example.com", "password": "password-dora@example.com"})
			if err != nil || r.Status != http.StatusOK {
				count("", r, err, "login")
				continue
			}
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.Unmarshal(r.Body, &tok)
			fresh.Store(tok.AccessToken)
		}
	})
	targets := []struct {
		c    *client
		path string
	}{
		{gw, "/api/v1/orders"},
		{gw, "/api/v1/users/me"},
		{newClient(t, shop.addrs["orders"]), "/api/v1/orders"},
		{newClient(t, shop.addrs["users"]), "/api/v1/users/me"},
	}
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				token := fresh.Load().(string)
				if n%2 == 1 {
					token = oldToken
				}
				target := targets[(i+n)%len(targets)]
				r, err := target.c.try("GET", target.path, token, nil)
				count(token, r, err, target.path)
			}
		})
	}

	servedBy := func(kid string) int64 {
		if n, ok := byKid.Load(kid); ok {
			return n.(*atomic.Int64).Load()
		}
		return 0
	}
	// rotate asks until the ring lets it (409 while its next key is too
	// new), then waits for 100 requests with a token of the new key.
	tooSoon := 0
	rotate := func() auth.KeyRingState {
		t.Helper()
		var st auth.KeyRingState
		waitFor(t, 20*time.Second, "a rotation", func() bool {
			r := gw.call("POST", "/api/v1/admin/keys/rotate", admin, nil)
			if r.Status == http.StatusConflict {
				tooSoon++
				time.Sleep(refresh / 4)
				return false
			}
			if r.Status != http.StatusOK {
				t.Fatalf("rotate = %d %s", r.Status, r.Body)
			}
			r.json(t, &st)
			return true
		})
		waitFor(t, 20*time.Second, "requests with the new key's tokens", func() bool { return servedBy(st.Current) >= 100 })
		return st
	}
	waitFor(t, 20*time.Second, "traffic before the rotations", func() bool { return requests.Load() >= 200 })
	first := rotate()
	second := rotate()
	close(stop)
	wg.Wait()

	if second.Current != first.Next || !strings.Contains(strings.Join(second.Previous, ","), first.Current) {
		t.Errorf("after two rotations the ring is %+v; after one it was %+v", second, first)
	}
	// The token from before both rotations is still good, everywhere.
	for _, target := range targets {
		if r := target.c.call("GET", target.path, oldToken, nil); r.Status != http.StatusOK {
			t.Errorf("GET %s with a token from before the rotations = %d %s, want 200 until it expires", target.path, r.Status, r.Body)
		}
	}
	oldKid := tokenKid(t, oldToken)
	t.Logf("key rotation: requests=%d failed=%d rotations=2 refused_too_soon=%d served_by_first_key=%d served_by_second=%d served_by_third=%d",
		requests.Load(), failed.Load(), tooSoon, servedBy(oldKid), servedBy(first.Current), servedBy(second.Current))
	if failed.Load() != 0 {
		failures.Range(func(what, why any) bool {
			t.Errorf("failed: %s: %s", what, why)
			return true
		})
		t.Errorf("failed requests during the rotations = %d, want 0", failed.Load())
	}
	if servedBy(oldKid) == 0 || servedBy(first.Current) == 0 || servedBy(second.Current) == 0 {
		t.Error("some key signed no token that was used: the traffic did not cover the rotation")
	}
}

// tokenKid reads the kid from a token's header.
func tokenKid(t testing.TB, token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Errorf("token header %q: %v", head, err)
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}
