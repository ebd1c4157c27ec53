package userhttp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
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
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
	"github.com/microshop/microshop/internal/users/userhttp"
	"github.com/microshop/microshop/internal/web"
)

// guarded is the users service served as the shop serves it: user tokens
// checked everywhere, service tokens on the internal paths, and every
// exchange checked against the published document.
type guarded struct {
	url      string
	client   *http.Client
	db       *sqldb.DB
	signer   *auth.Signer
	services ed25519.PrivateKey
}

func newGuarded(t *testing.T) guarded {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "users", userdb.Migrations)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, serviceKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	hosted := &host.Service{
		Name:     "users",
		Log:      slog.New(slog.DiscardHandler),
		Routes:   userhttp.Routes(users.NewService(userdb.New(db), signer), signer),
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics("users"),
		Verifier: auth.NewVerifier(signer),
		Services: auth.NewServiceVerifier(serviceKey.Public().(ed25519.PublicKey), []string{"gateway", "orders", "legacy"}),
	}
	srv := httptest.NewServer(hosted.Handler())
	t.Cleanup(srv.Close)
	doc, err := contract.Load(userhttp.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: contract.Transport(doc, srv.Client().Transport, func(err error) { t.Errorf("contract: %v", err) })}
	return guarded{url: srv.URL, client: client, db: db, signer: signer, services: serviceKey}
}

// send makes a request with a bearer token (none if empty) and a JSON body
// (none if empty), and returns the status and the body.
func (g guarded) send(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// want sends and fails the test unless the answer has status want; an
// error answer must be a problem that says what went wrong.
func (g guarded) want(t *testing.T, want int, method, path, token, body string) map[string]any {
	t.Helper()
	got, m := g.send(t, method, path, token, body)
	if got != want {
		t.Fatalf("%s %s = %d %v, want %d", method, path, got, m, want)
	}
	if want >= 400 && (m["status"] != float64(want) || m["detail"] == "") {
		t.Errorf("%s %s: problem %v, want status %d and a detail", method, path, m, want)
	}
	return m
}

func (g guarded) register(t *testing.T, email, name string) (id, token string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "name": name, "password": "correct horse"})
	id, _ = g.want(t, http.StatusCreated, "POST", "/api/v1/users", "", string(body))["id"].(string)
	body, _ = json.Marshal(map[string]string{"email": email, "password": "correct horse"})
	token, _ = g.want(t, http.StatusOK, "POST", "/api/v1/auth/login", "", string(body))["access_token"].(string)
	return id, token
}

func (g guarded) serviceToken(t *testing.T, service string) string {
	t.Helper()
	tok, err := auth.NewServiceSigner(service, g.services).Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// renames lists the UserRenamed events in the outbox as "id=name".
func (g guarded) renames(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range sqldbtest.Outbox(t, g.db) {
		if e.Topic != users.TopicUserRenamed {
			continue
		}
		var p users.UserRenamed
		if err := e.Decode(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p.UserID+"="+p.Name)
	}
	return out
}

func TestRenameAnswers(t *testing.T) {
	g := newGuarded(t)
	ada, adaToken := g.register(t, "ada@example.com", "Ada")
	bob, _ := g.register(t, "bob@example.com", "Bob")
	admin, _, err := g.signer.Sign("some-admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}

	got := g.want(t, http.StatusOK, "PATCH", "/api/v1/users/"+ada, adaToken, `{"name":"  Ada Lovelace "}`)
	if len(got) != 2 || got["id"] != ada || got["name"] != "Ada Lovelace" {
		t.Errorf("PATCH answered %v, want exactly {id: %s, name: Ada Lovelace}", got, ada)
	}
	if me := g.want(t, http.StatusOK, "GET", "/api/v1/users/me", adaToken, ""); me["name"] != "Ada Lovelace" {
		t.Errorf("GET /api/v1/users/me after the rename = %v", me)
	}
	g.want(t, http.StatusOK, "PATCH", "/api/v1/users/"+bob, admin, `{"name":"Robert"}`)
	g.want(t, http.StatusOK, "PATCH", "/api/v1/users/"+ada, adaToken, `{"name":"Ada Lovelace"}`) // the same name: nothing to announce

	tests := []struct {
		name, path, token, body string
		status                  int
	}{
		{"no token", "/api/v1/users/" + ada, "", `{"name":"Eve"}`, http.StatusUnauthorized},
		{"a bad token", "/api/v1/users/" + ada, "not-a-token", `{"name":"Eve"}`, http.StatusUnauthorized},
		{"a service token", "/api/v1/users/" + ada, g.serviceToken(t, "gateway"), `{"name":"Eve"}`, http.StatusUnauthorized},
		{"another user's account", "/api/v1/users/" + bob, adaToken, `{"name":"Eve"}`, http.StatusForbidden},
		{"an account that does not exist, as a customer", "/api/v1/users/" + uuid.Must(uuid.NewV7()).String(), adaToken, `{"name":"Eve"}`, http.StatusForbidden},
		{"an account that does not exist, as an admin", "/api/v1/users/" + uuid.Must(uuid.NewV7()).String(), admin, `{"name":"Eve"}`, http.StatusNotFound},
		{"a blank name", "/api/v1/users/" + ada, adaToken, `{"name":"  "}`, http.StatusUnprocessableEntity},
		{"a control character", "/api/v1/users/" + ada, adaToken, `{"name":"Eve\u001b[31m"}`, http.StatusUnprocessableEntity},
		{"a name of 101 runes", "/api/v1/users/" + ada, adaToken, `{"name":"` + strings.Repeat("é", 101) + `"}`, http.StatusUnprocessableEntity},
		{"an unknown field", "/api/v1/users/" + ada, adaToken, `{"name":"Eve","role":"admin"}`, http.StatusBadRequest},
		{"no body", "/api/v1/users/" + ada, adaToken, ``, http.StatusUnsupportedMediaType},
		{"a name that is a number", "/api/v1/users/" + ada, adaToken, `{"name":7}`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g.want(t, tc.status, "PATCH", tc.path, tc.token, tc.body)
		})
	}
	if me := g.want(t, http.StatusOK, "GET", "/api/v1/users/me", adaToken, ""); me["name"] != "Ada Lovelace" {
		t.Errorf("name after the refusals = %v, want Ada Lovelace unchanged", me["name"])
	}
	if got, want := g.renames(t), []string{ada + "=Ada Lovelace", bob + "=Robert"}; !slices.Equal(got, want) {
		t.Errorf("UserRenamed events = %v, want %v: one per change, none for refusals or the same name", got, want)
	}
}

func TestImportProfilesAnswers(t *testing.T) {
	g := newGuarded(t)
	ada, adaToken := g.register(t, "ada@example.com", "Ada")
	bob, _ := g.register(t, "bob@example.com", "Bob")
	admin, _, err := g.signer.Sign("some-admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	gateway := g.serviceToken(t, "gateway")
	body := fmt.Sprintf(`{"profiles":[{"id":%q,"name":"Ada King","email":"ada@example.com"},{"id":%q,"name":"Bob"},{"id":"gone","name":"Ghost","email":"ghost@example.com"}]}`, ada, bob)
	const path = "/internal/v1/import/profiles"

	// Only the gateway, with its service token, imports.
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a customer's token", adaToken, http.StatusUnauthorized},
		{"an admin's token", admin, http.StatusUnauthorized},
		{"another service", g.serviceToken(t, "orders"), http.StatusForbidden},
		{"the monolith itself", g.serviceToken(t, "legacy"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) { g.want(t, tc.status, "POST", path, tc.token, body) })
	}
	if got := g.renames(t); len(got) != 0 {
		t.Fatalf("refused imports announced %v", got)
	}

	for range 2 { // the second import changes nothing and answers the same
		got := g.want(t, http.StatusOK, "POST", path, gateway, body)
		if got["imported"] != float64(2) || fmt.Sprint(got["missing"]) != "[gone]" {
			t.Errorf("import answered %v, want 2 imported and gone missing", got)
		}
	}
	if me := g.want(t, http.StatusOK, "GET", "/api/v1/users/me", adaToken, ""); me["name"] != "Ada King" {
		t.Errorf("ada's name after the import = %v, want the monolith's Ada King", me["name"])
	}
	if got, want := g.renames(t), []string{ada + "=Ada King"}; !slices.Equal(got, want) {
		t.Errorf("UserRenamed events = %v, want %v", got, want)
	}

	var tooMany strings.Builder
	tooMany.WriteString(`{"profiles":[`)
	for i := range users.MaxProfileImport + 1 {
		if i > 0 {
			tooMany.WriteString(",")
		}
		fmt.Fprintf(&tooMany, `{"id":%q,"name":"Ada Byron"}`, ada)
	}
	tooMany.WriteString(`]}`)
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"a bad name refuses the whole import", fmt.Sprintf(`{"profiles":[{"id":%q,"name":"Bobby"},{"id":%q,"name":"Ada\u0000"}]}`, bob, ada), http.StatusUnprocessableEntity},
		{"a repeated id", fmt.Sprintf(`{"profiles":[{"id":%q,"name":"Ada Byron"},{"id":%q,"name":"Ada B."}]}`, ada, ada), http.StatusUnprocessableEntity},
		{"more than 1000 profiles", tooMany.String(), http.StatusUnprocessableEntity},
		{"an unknown field", fmt.Sprintf(`{"profiles":[{"id":%q,"name":"Ada Byron","role":"admin"}]}`, ada), http.StatusBadRequest},
		{"not JSON", `profiles`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) { g.want(t, tc.status, "POST", path, gateway, tc.body) })
	}
	if got, want := g.renames(t), []string{ada + "=Ada King"}; !slices.Equal(got, want) {
		t.Errorf("UserRenamed events after refusals = %v, want still %v", got, want)
	}
	if me := g.want(t, http.StatusOK, "GET", "/api/v1/users/me", adaToken, ""); me["name"] != "Ada King" {
		t.Errorf("ada's name after refused imports = %v, want Ada King", me["name"])
	}
}
