package userhttp_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
	"github.com/microshop/microshop/internal/users/userhttp"
	"github.com/microshop/microshop/internal/web"
)

// ringAPI is the users service on a key ring kept in a file, with every
// exchange checked against the published document.
type ringAPI struct {
	url    string
	client *http.Client
	ring   *auth.Signer
}

func newRingAPI(t *testing.T, announce time.Duration) ringAPI {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "users", userdb.Migrations)
	ring, err := auth.OpenSigner(filepath.Join(t.TempDir(), "keys", "jwt.pem"), time.Hour, announce)
	if err != nil {
		t.Fatal(err)
	}
	svc := users.NewService(userdb.New(db), ring)
	if _, err := svc.EnsureAdmin(t.Context(), "admin@example.com", "admin-password"); err != nil {
		t.Fatal(err)
	}
	hosted := &host.Service{
		Name:     "users",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   userhttp.Routes(svc, ring),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("users"),
		Verifier: auth.NewVerifier(ring),
	}
	srv := httptest.NewServer(hosted.Handler())
	t.Cleanup(srv.Close)
	doc, err := contract.Load(userhttp.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: contract.Transport(doc, srv.Client().Transport, func(err error) { t.Errorf("contract: %v", err) })}
	return ringAPI{url: srv.URL, client: client, ring: ring}
}

func (a ringAPI) send(t *testing.T, method, path, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.url+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (a ringAPI) login(t *testing.T) string {
	t.Helper()
	code, b := a.send(t, "POST", "/api/v1/auth/login", "", `{"email":"admin@example.com","password":"admin-password"}`)
	if code != http.StatusOK {
		t.Fatalf("login = %d %s", code, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(b, &tok)
	return tok.AccessToken
}

func (a ringAPI) jwksKids(t *testing.T) []string {
	t.Helper()
	code, b := a.send(t, "GET", "/.well-known/jwks.json", "", "")
	if code != http.StatusOK {
		t.Fatalf("jwks = %d %s", code, b)
	}
	var set auth.JWKS
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestRotateSigningKeys(t *testing.T) {
	a := newRingAPI(t, 0)
	before := a.ring.State()
	admin := a.login(t)
	customer, _, _ := a.ring.Sign("user-1", auth.RoleCustomer)

	if code, _ := a.send(t, "POST", "/api/v1/admin/keys/rotate", "", ""); code != http.StatusUnauthorized {
		t.Errorf("rotate, anonymous = %d, want 401", code)
	}
	if code, _ := a.send(t, "POST", "/api/v1/admin/keys/rotate", customer, ""); code != http.StatusForbidden {
		t.Errorf("rotate, a customer = %d, want 403", code)
	}
	if got := a.ring.State(); got.Current != before.Current {
		t.Fatalf("a refused rotation rotated: %+v", got)
	}

	code, b := a.send(t, "POST", "/api/v1/admin/keys/rotate", admin, "")
	if code != http.StatusOK {
		t.Fatalf("rotate, an admin = %d %s, want 200", code, b)
	}
	var after auth.KeyRingState
	if err := json.Unmarshal(b, &after); err != nil {
		t.Fatal(err)
	}
	if after.Current != before.Next || after.Next == before.Next || !slices.Equal(after.Previous, []string{before.Current}) {
		t.Errorf("after rotating = %+v, want current %s (the old next), a new next, previous [%s]", after, before.Next, before.Current)
	}
	if got, want := a.jwksKids(t), []string{after.Current, after.Next, before.Current}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids after rotating = %v, want current, next and previous %v", got, want)
	}
	// The admin's token, signed before, still works; a new one is signed by
	// the new current key.
	if code, b := a.send(t, "GET", "/api/v1/users/me", admin, ""); code != http.StatusOK {
		t.Errorf("a token from before the rotation = %d %s, want 200 until it expires", code, b)
	}
	if kid := kidOf(t, a.login(t)); kid != after.Current {
		t.Errorf("a token after the rotation is signed by %s, want the new current key %s", kid, after.Current)
	}
}

func TestRotateRefusesANextKeyTooNewToBeKnown(t *testing.T) {
	a := newRingAPI(t, time.Hour)
	before := a.ring.State()
	code, b := a.send(t, "POST", "/api/v1/admin/keys/rotate", a.login(t), "")
	if code != http.StatusConflict {
		t.Fatalf("rotate a minute after the next key was published = %d %s, want 409", code, b)
	}
	if !strings.Contains(string(b), "verifiers refresh") {
		t.Errorf("409 detail %s does not say why", b)
	}
	if got := a.ring.State(); got.Current != before.Current || got.Next != before.Next {
		t.Errorf("a refused rotation changed the ring: %+v, want %+v", got, before)
	}
}

// kidOf reads the kid from a token's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	var header struct {
		Kid string `json:"kid"`
	}
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(b, &header)
	return header.Kid
}
