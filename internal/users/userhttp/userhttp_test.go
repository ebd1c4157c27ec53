package userhttp_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
	"github.com/microshop/microshop/internal/users/userhttp"
	"github.com/microshop/microshop/internal/web"
)

// api is the users service's real routes behind the middleware host runs
// them with, on a real store.
type api struct {
	url    string
	signer *auth.Signer
}

func newAPI(t *testing.T) api {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "users", userdb.Migrations) // UserCreated is written with every new user
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	svc := &host.Service{
		Name:     "users",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   userhttp.Routes(users.NewService(userdb.New(db), signer), signer),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("users"),
		Verifier: auth.NewVerifier(signer),
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return api{url: srv.URL, signer: signer}
}

// answer is a response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// fields decodes a JSON object answer.
func (a answer) fields(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d %q is not a JSON object: %v", a.status, a.body, err)
	}
	return m
}

func (a answer) want(t *testing.T, status int) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d %s, want %d", a.status, a.body, status)
	}
	return a
}

// wantProblem checks a problem-details answer with status and returns its detail.
func (a answer) wantProblem(t *testing.T, status int) string {
	t.Helper()
	a.want(t, status)
	if ct := a.header.Get("Content-Type"); ct != web.ProblemContentType {
		t.Errorf("Content-Type = %q, want %q", ct, web.ProblemContentType)
	}
	var p web.Problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("problem %q: %v", a.body, err)
	}
	if p.Status != status || p.Detail == "" {
		t.Errorf("problem = %+v, want status %d with a detail", p, status)
	}
	return p.Detail
}

func (a api) do(t *testing.T, method, path, token, body string, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// register signs up and returns the new id.
func (a api) register(t *testing.T, email, name, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "name": name, "password": password})
	got := a.do(t, "POST", "/api/v1/users", "", string(body), nil).want(t, http.StatusCreated).fields(t)
	id, _ := got["id"].(string)
	return id
}

// login returns an access token.
func (a api) login(t *testing.T, email, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	got := a.do(t, "POST", "/api/v1/auth/login", "", string(body), nil).want(t, http.StatusOK).fields(t)
	tok, _ := got["access_token"].(string)
	return tok
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestRegisterAnswers201WithTheV1ShapeAndLocation(t *testing.T) {
	a := newAPI(t)
	got := a.do(t, "POST", "/api/v1/users", "", `{"email":" Ada@Example.com","name":" Ada ","password":"correct horse"}`, nil).want(t, http.StatusCreated)
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	body := got.fields(t)
	if k := keys(body); !slices.Equal(k, []string{"id", "name"}) {
		t.Errorf("body fields = %v, want [id name]: no email, no hash, no role", k)
	}
	id, _ := body["id"].(string)
	if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
		t.Errorf("id %q is not a uuid v7", id)
	}
	if body["name"] != "Ada" {
		t.Errorf("name = %v, want the trimmed %q", body["name"], "Ada")
	}
	if loc := got.header.Get("Location"); loc != "/api/v1/users/"+id {
		t.Errorf("Location = %q, want %q", loc, "/api/v1/users/"+id)
	}
	// The new account works with the normalised email.
	a.login(t, "ada@example.com", "correct horse")
}

func TestRegisterRefusals(t *testing.T) {
	a := newAPI(t)
	a.register(t, "ada@example.com", "Ada", "correct horse")
	tests := []struct {
		name   string
		body   string
		header map[string]string
		status int
	}{
		{"email taken", `{"email":"ADA@example.com","name":"Other","password":"battery staple"}`, nil, http.StatusConflict},
		{"invalid email", `{"email":"not an address","name":"Eve","password":"battery staple"}`, nil, http.StatusUnprocessableEntity},
		{"short password", `{"email":"eve@example.com","name":"Eve","password":"short"}`, nil, http.StatusUnprocessableEntity},
		{"control character in name", `{"email":"eve@example.com","name":"Eve\u0000","password":"battery staple"}`, nil, http.StatusUnprocessableEntity},
		{"unknown field role", `{"email":"eve@example.com","name":"Eve","password":"battery staple","role":"admin"}`, nil, http.StatusBadRequest},
		{"truncated JSON", `{"email":"eve@example.com"`, nil, http.StatusBadRequest},
		{"two JSON values", `{"email":"eve@example.com","name":"Eve","password":"battery staple"}{}`, nil, http.StatusBadRequest},
		{"name is a number", `{"email":"eve@example.com","name":7,"password":"battery staple"}`, nil, http.StatusBadRequest},
		{"not JSON", `{"email":"eve@example.com","name":"Eve","password":"battery staple"}`, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			detail := a.do(t, "POST", "/api/v1/users", "", tc.body, tc.header).wantProblem(t, tc.status)
			if tc.name == "unknown field role" && !strings.Contains(detail, "role") {
				t.Errorf("detail %q does not name the unknown field", detail)
			}
		})
	}
	// None of the refused bodies created eve; registering her now works.
	a.register(t, "eve@example.com", "Eve", "battery staple")
}

func TestLogin(t *testing.T) {
	a := newAPI(t)
	id := a.register(t, "ada@example.com", "Ada", "correct horse")

	got := a.do(t, "POST", "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse"}`, nil).want(t, http.StatusOK).fields(t)
	if k := keys(got); !slices.Equal(k, []string{"access_token", "expires_in", "token_type"}) {
		t.Errorf("login fields = %v", k)
	}
	if got["token_type"] != "Bearer" || got["expires_in"] != float64(3600) {
		t.Errorf("token_type %v expires_in %v, want Bearer 3600", got["token_type"], got["expires_in"])
	}
	tok, _ := got["access_token"].(string)
	p, err := auth.NewVerifier(a.signer).Verify(context.Background(), tok)
	if err != nil || p.Subject != id || p.Role != auth.RoleCustomer {
		t.Errorf("token principal = %+v, %v; want customer %s", p, err, id)
	}

	wrong := a.do(t, "POST", "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"wrong password"}`, nil)
	unknown := a.do(t, "POST", "/api/v1/auth/login", "", `{"email":"nobody@example.com","password":"correct horse"}`, nil)
	wrongDetail, unknownDetail := wrong.wantProblem(t, http.StatusUnauthorized), unknown.wantProblem(t, http.StatusUnauthorized)
	if wrongDetail != unknownDetail {
		t.Errorf("wrong password says %q, unknown email says %q: they must not differ", wrongDetail, unknownDetail)
	}
	a.do(t, "POST", "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse","remember":true}`, nil).wantProblem(t, http.StatusBadRequest)
}

func TestMe(t *testing.T) {
	a := newAPI(t)
	id := a.register(t, "ada@example.com", "Ada", "correct horse")
	tok := a.login(t, "ada@example.com", "correct horse")

	got := a.do(t, "GET", "/api/v1/users/me", tok, "", nil).want(t, http.StatusOK).fields(t)
	if got["id"] != id || got["name"] != "Ada" || len(got) != 2 {
		t.Errorf("me = %v, want {id: %s, name: Ada}", got, id)
	}
	a.do(t, "GET", "/api/v1/users/me", "", "", nil).wantProblem(t, http.StatusUnauthorized)
	a.do(t, "GET", "/api/v1/users/me", "not-a-token", "", nil).wantProblem(t, http.StatusUnauthorized)
	// A valid token for an account that does not exist (any more).
	ghost, _, err := a.signer.Sign(uuid.Must(uuid.NewV7()).String(), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	a.do(t, "GET", "/api/v1/users/me", ghost, "", nil).wantProblem(t, http.StatusNotFound)
}

func TestReadingAUserByVersion(t *testing.T) {
	a := newAPI(t)
	ada := a.register(t, "ada@example.com", "Ada", "correct horse")
	bob := a.register(t, "bob@example.com", "Bob", "battery staple")
	adaToken := a.login(t, "ada@example.com", "correct horse")
	admin, _, err := a.signer.Sign("some-admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	v1 := map[string]any{"id": ada, "name": "Ada"}
	v2 := map[string]any{"id": ada, "name": "Ada", "email": "ada@example.com"}
	const (
		mediaV1 = "application/vnd.microshop.users.v1+json"
		mediaV2 = "application/vnd.microshop.users.v2+json"
	)
	tests := []struct {
		name        string
		path        string
		token       string
		accept      string
		want        map[string]any
		contentType string
		vary        bool
	}{
		{"v1 path", "/api/v1/users/" + ada, adaToken, "", v1, "application/json", false},
		{"v2 path", "/api/v2/users/" + ada, adaToken, "", v2, "application/json", false},
		{"admin reads v2", "/api/v2/users/" + ada, admin, "", v2, "application/json", false},
		{"negotiated, no Accept", "/api/users/" + ada, adaToken, "", v1, mediaV1, true},
		{"negotiated, plain JSON", "/api/users/" + ada, adaToken, "application/json", v1, mediaV1, true},
		{"negotiated, v1", "/api/users/" + ada, adaToken, mediaV1, v1, mediaV1, true},
		{"negotiated, v2", "/api/users/" + ada, adaToken, mediaV2, v2, mediaV2, true},
		{"negotiated, v2 among others", "/api/users/" + ada, adaToken, "application/json;q=0.5, " + mediaV2 + ";q=1", v2, mediaV2, true},
		{"negotiated, v2 for admin", "/api/users/" + ada, admin, mediaV2, v2, mediaV2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := a.do(t, "GET", tc.path, tc.token, "", map[string]string{"Accept": tc.accept}).want(t, http.StatusOK)
			body := got.fields(t)
			if len(body) != len(tc.want) {
				t.Errorf("body = %v, want %v", body, tc.want)
			}
			for k, v := range tc.want {
				if body[k] != v {
					t.Errorf("%s = %v, want %v", k, body[k], v)
				}
			}
			if ct := got.header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.contentType)
			}
			if vary := slices.Contains(got.header.Values("Vary"), "Accept"); vary != tc.vary {
				t.Errorf("Vary: Accept present = %v, want %v (Vary = %q)", vary, tc.vary, got.header.Values("Vary"))
			}
		})
	}

	// Another user's account is forbidden on every version, whether or not it exists.
	for _, path := range []string{"/api/v1/users/" + bob, "/api/v2/users/" + bob, "/api/users/" + bob, "/api/v1/users/" + uuid.Must(uuid.NewV7()).String()} {
		got := a.do(t, "GET", path, adaToken, "", map[string]string{"Accept": mediaV2})
		if detail := got.wantProblem(t, http.StatusForbidden); strings.Contains(detail, "bob") {
			t.Errorf("GET %s: detail %q leaks the other account", path, detail)
		}
		if strings.Contains(string(got.body), "bob@example.com") {
			t.Errorf("GET %s leaked bob's email: %s", path, got.body)
		}
	}
	// The negotiated answer varies by Accept even when it is refused, so no cache mixes them up.
	if got := a.do(t, "GET", "/api/users/"+bob, adaToken, "", nil); !slices.Contains(got.header.Values("Vary"), "Accept") {
		t.Errorf("refused negotiated answer has Vary %q, want Accept", got.header.Values("Vary"))
	}
	for _, path := range []string{"/api/v1/users/" + ada, "/api/v2/users/" + ada, "/api/users/" + ada} {
		a.do(t, "GET", path, "", "", nil).wantProblem(t, http.StatusUnauthorized)
	}
	a.do(t, "GET", "/api/v2/users/"+uuid.Must(uuid.NewV7()).String(), admin, "", nil).wantProblem(t, http.StatusNotFound)
}

func TestJWKSVerifiesTheTokensLoginIssues(t *testing.T) {
	a := newAPI(t)
	a.register(t, "ada@example.com", "Ada", "correct horse")
	tok := a.login(t, "ada@example.com", "correct horse")

	got := a.do(t, "GET", "/.well-known/jwks.json", "", "", nil).want(t, http.StatusOK)
	if cc := got.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control = %q, want a max-age so verifiers can cache the keys", cc)
	}
	var set auth.JWKS
	if err := json.Unmarshal(got.body, &set); err != nil {
		t.Fatalf("jwks %s: %v", got.body, err)
	}
	ring := a.signer.State()
	if len(set.Keys) != 2 || set.Keys[0].Kid != ring.Current || set.Keys[1].Kid != ring.Next {
		t.Fatalf("jwks = %+v, want the current key %s and the next one %s", set.Keys, ring.Current, ring.Next)
	}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" || k.Kid == "" || k.X == "" {
			t.Errorf("key = %+v, want an Ed25519 signing key with kid", k)
		}
	}
	if strings.Contains(string(got.body), `"d"`) {
		t.Errorf("jwks carries a private part: %s", got.body)
	}
	// A verifier that knows only what the document says accepts the token.
	remote := auth.NewRemoteKeys(func(context.Context) ([]byte, error) { return got.body, nil })
	p, err := auth.NewVerifier(remote).Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("token does not verify with the published keys: %v", err)
	}
	if p.Role != auth.RoleCustomer {
		t.Errorf("role = %q, want customer", p.Role)
	}
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	a := newAPI(t)
	got := a.do(t, "GET", "/openapi.yaml", "", "", nil).want(t, http.StatusOK)
	if string(got.body) != string(userhttp.OpenAPI) || len(got.body) == 0 {
		t.Errorf("GET /openapi.yaml served %d bytes, want the %d-byte embedded document", len(got.body), len(userhttp.OpenAPI))
	}
}
