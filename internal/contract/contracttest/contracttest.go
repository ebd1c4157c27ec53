// Package contracttest holds test helpers that check a service's routes
// against its published OpenAPI document: every exchange a test makes, the
// document against the routes, and the surface as the shop serves it.
package contracttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/web"
)

// loaded caches each document by its text: loading and validating one takes
// longer than most of the exchanges checked against it.
var loaded sync.Map // string -> loadResult

type loadResult struct {
	doc *contract.Doc
	err error
}

// Load loads and validates a published document, failing the test if it is
// not valid OpenAPI.
func Load(t testing.TB, openapi []byte) *contract.Doc {
	t.Helper()
	v, ok := loaded.Load(string(openapi))
	if !ok {
		doc, err := contract.Load(openapi)
		v, _ = loaded.LoadOrStore(string(openapi), loadResult{doc, err})
	}
	r := v.(loadResult)
	if r.err != nil {
		t.Fatalf("openapi.yaml: %v", r.err)
	}
	return r.doc
}

// Server serves requests through Handler and fails the test on any exchange
// the document Doc does not allow.
type Server struct {
	Handler http.Handler
	Doc     *contract.Doc
}

// Do sends a request as principal p (nil for anonymous) with a JSON body
// (empty for none) and checks the exchange against the document.
func (s Server) Do(t testing.TB, p *auth.Principal, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	return s.Send(t, p, newRequest(method, target, body))
}

// newRequest is a request with a JSON body, or none when body is empty.
func newRequest(method, target, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// Send serves req as principal p and fails the test if the exchange is not
// one the document allows: an undocumented route or status, a body that
// does not fit its schema, or a request the document forbids that was not
// refused.
func (s Server) Send(t testing.TB, p *auth.Principal, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("reading the request body: %v", err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if p != nil {
		// The principal stands for a token the middleware verified; the
		// document only sees that one was sent.
		req = req.WithContext(auth.WithPrincipal(req.Context(), *p))
		req.Header.Set("Authorization", "Bearer verified-by-the-middleware")
	}
	rec := httptest.NewRecorder()
	s.Handler.ServeHTTP(rec, req)
	if err := s.Doc.Check(req, body, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("%v\nbody: %s", err, rec.Body)
	}
	return rec
}

// Decode decodes the recorded answer's JSON body into a T.
func Decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	return v
}

// WantStatus fails the test unless the answer has status want, and, for an
// error status, is a problem detail that repeats the status and says what
// went wrong.
func WantStatus(t testing.TB, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status: got %d, want %d; body %s", rec.Code, want, rec.Body)
	}
	if want >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("content type: got %q, want application/problem+json", ct)
		}
		p := Decode[struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}](t, rec)
		if p.Status != want || p.Detail == "" {
			t.Errorf("problem: got %+v, want status %d and a detail", p, want)
		}
	}
}

// Response is an answer read whole: its status, header and raw body, and
// the body as a JSON object when it is JSON.
type Response struct {
	Status int
	Header http.Header
	Raw    string
	Body   map[string]any
}

// Call is Do, with the answer read whole.
func (s Server) Call(t testing.TB, p *auth.Principal, method, target, body string) Response {
	t.Helper()
	return s.Exchange(t, p, newRequest(method, target, body))
}

// Exchange is Send, with the answer read whole; a JSON answer that is not
// an object fails the test.
func (s Server) Exchange(t testing.TB, p *auth.Principal, req *http.Request) Response {
	t.Helper()
	rec := s.Send(t, p, req)
	res := Response{Status: rec.Code, Header: rec.Header(), Raw: rec.Body.String()}
	if strings.Contains(rec.Header().Get("Content-Type"), "json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.Body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", req.Method, req.URL, rec.Body.String(), err)
		}
	}
	return res
}

// Keys lists the keys of a JSON object (none for anything else), sorted.
func Keys(v any) []string {
	m, _ := v.(map[string]any)
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Items is the items array of a listing, failing the test if it has none.
func Items(t testing.TB, res Response) []any {
	t.Helper()
	it, ok := res.Body["items"].([]any)
	if !ok {
		t.Fatalf("body %s has no items array", res.Raw)
	}
	return it
}

// WantProblem fails the test unless res has status and is a problem detail
// that repeats the status and whose detail contains detail (and is not
// empty).
func WantProblem(t testing.TB, res Response, status int, detail string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %d, want %d; body %s", res.Status, status, res.Raw)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	if got, _ := res.Body["status"].(float64); int(got) != status {
		t.Errorf("problem status = %v, want %d", res.Body["status"], status)
	}
	if got, _ := res.Body["detail"].(string); got == "" || !strings.Contains(got, detail) {
		t.Errorf("detail = %q, want it to contain %q", got, detail)
	}
}

// Service is what the checks need to know of one service.
type Service struct {
	// Name is the service's name, as host knows it.
	Name string
	// OpenAPI is the document the service embeds and serves.
	OpenAPI []byte
	// Routes returns a fresh mux as the shop builds it, over a fresh
	// database: the service's routes and the dead-letter admin routes,
	// before host adds the ops endpoints.
	Routes func(t *testing.T) *http.ServeMux
	// Surface is every route the shop serves for the service, as its
	// "METHOD /pattern": routes.go, the dead-letter routes and the ops
	// endpoints.
	Surface []string
	// Public are paths, beyond the ops endpoints and the document, that an
	// anonymous GET gets 200 from.
	Public []string
	// Authorized is a GET that a valid token gets 200 from.
	Authorized Get
	// Closed names the request schemas that must refuse unknown fields
	// (additionalProperties: false).
	Closed []string
}

// Server is the service's routes over a fresh database, with every exchange
// checked against its document.
func (s Service) Server(t *testing.T) Server {
	t.Helper()
	return Server{Handler: s.Routes(t), Doc: Load(t, s.OpenAPI)}
}

// Get is a GET of Path with a token for Role.
type Get struct {
	Role string
	Path string
}

// pathParam is a path parameter in a route's pattern.
var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// example is a path that route's pattern matches, with every parameter "x".
func example(route string) (method, path string) {
	method, pattern, _ := strings.Cut(route, " ")
	return method, pathParam.ReplaceAllString(pattern, "x")
}

// hosted serves mux as the shop does: behind host's middleware, which
// verifies tokens with tokens, and with its ops endpoints, which mux holds
// once Handler is called.
func (s Service) hosted(mux *http.ServeMux, tokens *auth.Signer) *host.Service {
	return &host.Service{
		Name:     s.Name,
		Log:      slog.New(slog.DiscardHandler),
		Routes:   mux,
		Health:   web.NewHealth(),
		Metrics:  web.NewMetrics(s.Name),
		Verifier: auth.NewVerifier(tokens),
	}
}

// NewSigner is a token signer with a fresh key.
func NewSigner(t testing.TB) *auth.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(key, time.Hour)
}

// bearer is an Authorization header with a valid token for subject in role.
func bearer(t testing.TB, tokens *auth.Signer, subject, role string) string {
	t.Helper()
	token, _, err := tokens.Sign(subject, role)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + token
}

// CheckDocumented keeps the document and the routes in step: the document
// is valid OpenAPI 3.0.3 and describes exactly the surface, each route is
// served as its own pattern, the internal routes and only they are tagged
// "internal", every error answer is a Problem, and the Closed schemas
// refuse unknown fields.
func (s Service) CheckDocumented(t *testing.T) {
	t.Helper()
	Load(t, s.OpenAPI) // the document is valid
	doc, err := openapi3.NewLoader().LoadFromData(s.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version: got %q, want 3.0.3", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			route := method + " " + path
			documented = append(documented, route)
			internal := strings.HasPrefix(path, "/internal/")
			if slices.Contains(op.Tags, "internal") != internal || internal && len(op.Tags) != 1 {
				t.Errorf("%s: tags %v; internal routes, and only they, are tagged internal, and only so", route, op.Tags)
			}
			for code, ref := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				if code == "503" && (path == "/healthz" || path == "/ready") {
					continue // health and readiness answer with their own body
				}
				mt := ref.Value.Content.Get("application/problem+json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
					t.Errorf("%s %s is not an application/problem+json Problem", route, code)
				}
			}
		}
	}
	// A route added to routes.go must be documented, and listed in Surface.
	want := slices.Clone(s.Surface)
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("documented operations:\n got %v\nwant %v", documented, want)
	}
	// Every route, documented or listed, is served by its own pattern, not
	// by the mux's 404/405 or a neighbour's.
	mux := s.Routes(t)
	s.hosted(mux, NewSigner(t)).Handler()
	for _, route := range slices.Compact(slices.Sorted(slices.Values(slices.Concat(documented, want)))) {
		method, path := example(route)
		if _, pattern := mux.Handler(httptest.NewRequest(method, path, nil)); pattern != route {
			t.Errorf("%s: routed to pattern %q, want %q", route, pattern, route)
		}
	}
	problem := doc.Components.Schemas["Problem"]
	for _, field := range []string{"type", "title", "status", "detail", "instance", "request_id"} {
		if problem == nil || problem.Value.Properties[field] == nil {
			t.Errorf("Problem schema lacks %q", field)
		}
	}
	for _, name := range s.Closed {
		schema := doc.Components.Schemas[name]
		if schema == nil {
			t.Errorf("schema %s: not in the document", name)
			continue
		}
		if ap := schema.Value.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("schema %s: additionalProperties must be false", name)
		}
	}
}

// CheckHosted checks, against the document, what only the shop's
// middleware adds: health, readiness and metrics, the document served as
// embedded, and the 401 that a bad Authorization header gets on every
// route, public and internal ones included.
func (s Service) CheckHosted(t *testing.T) {
	t.Helper()
	tokens := NewSigner(t)
	h := s.hosted(s.Routes(t), tokens)
	h.Health.SetReady(true)
	srv := Server{Handler: h.Handler(), Doc: Load(t, s.OpenAPI)}
	send := func(method, path, authorization string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		return srv.Send(t, nil, req)
	}
	wantCode := func(rec *httptest.ResponseRecorder, what string, want int) {
		t.Helper()
		if rec.Code != want {
			t.Errorf("%s: got %d, want %d; body %s", what, rec.Code, want, rec.Body)
		}
	}

	for _, path := range append([]string{"/healthz", "/ready", "/metrics", "/openapi.yaml"}, s.Public...) {
		wantCode(send("GET", path, ""), "GET "+path, http.StatusOK)
	}
	if rec := send("GET", "/openapi.yaml", ""); len(s.OpenAPI) == 0 || !bytes.Equal(rec.Body.Bytes(), s.OpenAPI) {
		t.Errorf("GET /openapi.yaml served %d bytes, want the %d-byte embedded document", rec.Body.Len(), len(s.OpenAPI))
	}
	wantCode(send("GET", s.Authorized.Path, bearer(t, tokens, "user-1", s.Authorized.Role)),
		"GET "+s.Authorized.Path+" with a valid "+s.Authorized.Role+" token", http.StatusOK)
	for _, route := range s.Surface {
		method, path := example(route)
		for _, bad := range []string{"Bearer not-a-token", "Basic YTpi"} {
			WantStatus(t, send(method, path, bad), http.StatusUnauthorized)
		}
	}

	h.Health.Add("db", func(context.Context) error { return errors.New("disk on fire") })
	wantCode(send("GET", "/healthz", ""), "/healthz with a check down", http.StatusServiceUnavailable)
	h.Health.SetReady(false)
	wantCode(send("GET", "/ready", ""), "/ready while draining", http.StatusServiceUnavailable)
}

// CheckDeadLetters checks the dead-letter admin routes the shop mounts on
// the service's mux, through host's middleware with real tokens and against
// the document: an admin lists an empty page, a customer is refused, and
// replaying a letter that does not exist is a 404.
func (s Service) CheckDeadLetters(t *testing.T) {
	t.Helper()
	tokens := NewSigner(t)
	srv := Server{Handler: s.hosted(s.Routes(t), tokens).Handler(), Doc: Load(t, s.OpenAPI)}
	asAdmin, asCustomer := bearer(t, tokens, "admin-1", auth.RoleAdmin), bearer(t, tokens, "user-1", auth.RoleCustomer)
	send := func(method, path, authorization string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", authorization)
		return srv.Send(t, nil, req)
	}

	rec := send("GET", "/api/v1/admin/dlq", asAdmin)
	WantStatus(t, rec, http.StatusOK)
	if body := strings.TrimSpace(rec.Body.String()); body != `{"items":[],"next":""}` {
		t.Errorf("empty dead-letter listing: got %s, want {\"items\":[],\"next\":\"\"}", body)
	}
	WantStatus(t, send("GET", "/api/v1/admin/dlq", asCustomer), http.StatusForbidden)
	WantStatus(t, send("POST", "/api/v1/admin/dlq/no-such-letter/replay", asAdmin), http.StatusNotFound)
}
