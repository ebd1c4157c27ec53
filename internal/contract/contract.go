// Package contract checks HTTP exchanges against the published OpenAPI
// documents.
package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Doc is one OpenAPI document, loaded, validated and ready to route
// requests to its operations.
type Doc struct {
	spec   *openapi3.T
	router routers.Router
}

// Load parses an OpenAPI 3 document (YAML or JSON) and validates it. A
// document that refers to other files is refused: every published document
// stands on its own.
func Load(doc []byte) (*Doc, error) {
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("loading OpenAPI document: %w", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validating OpenAPI document %q: %w", title(spec), err)
	}
	// The legacy router matches on the path alone when the document names
	// no servers, so the same document checks a service reached directly
	// and through the gateway.
	router, err := legacy.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("routing OpenAPI document %q: %w", title(spec), err)
	}
	return &Doc{spec: spec, router: router}, nil
}

// Title is the document's info.title, which names the service.
func (d *Doc) Title() string { return title(d.spec) }

func title(spec *openapi3.T) string {
	if spec.Info == nil {
		return ""
	}
	return spec.Info.Title
}

func init() {
	// The console's script, styles and stream are text the documents
	// describe as strings.
	for _, ct := range []string{"text/html", "text/javascript", "text/css", "text/event-stream"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// Check checks one exchange: req with its body reqBody, answered with
// status, header and respBody. It fails when the route is not documented,
// when the answer is not one the document gives for that operation and
// status (an undocumented status included), and when the request breaks the
// document but was not refused with a 4xx: a request the contract forbids
// must not succeed, while refusing it is exactly what the contract asks.
//
// A bearer token is checked only for presence; whether it is valid is the
// service's business. req is not modified and its body is not read.
func (d *Doc) Check(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	r := withBody(req, reqBody)
	route, params, err := d.router.FindRoute(r)
	if err != nil {
		return fmt.Errorf("%s %s is not documented in %q: %w", r.Method, r.URL.Path, d.Title(), err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:                credentialsPresent,
		IncludeResponseStatus:             true,
		SkipSettingDefaults:               true,
		RejectWhenRequestBodyNotSpecified: true,
		// The path in the value and the reason say enough; a dump of the
		// whole schema would bury them.
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil && (status < 400 || status > 499) {
		return fmt.Errorf("%s %s breaks %q, yet was answered %d instead of refused: %w", r.Method, r.URL.Path, d.Title(), status, err)
	}
	if header == nil {
		header = http.Header{}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
		return fmt.Errorf("%s %s answered %d, which %q does not allow: %w", r.Method, r.URL.Path, status, d.Title(), err)
	}
	return nil
}

// documents reports whether the document has an operation for req.
func (d *Doc) documents(req *http.Request) bool {
	_, _, err := d.router.FindRoute(req)
	return err == nil
}

// withBody returns a copy of req that carries body, so that validation can
// read it without touching the caller's request.
func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
		return r
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Body, _ = r.GetBody()
	return r
}

// credentialsPresent accepts a request that carries the credentials a
// security scheme asks for, without judging them.
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s, r := in.SecurityScheme, in.RequestValidationInput.Request
	switch s.Type {
	case "http":
		scheme, value, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, s.Scheme) || strings.TrimSpace(value) == "" {
			return fmt.Errorf("no %s credentials in the Authorization header", s.Scheme)
		}
	case "apiKey":
		var present bool
		switch s.In {
		case "header":
			present = r.Header.Get(s.Name) != ""
		case "query":
			present = r.URL.Query().Get(s.Name) != ""
		case "cookie":
			_, err := r.Cookie(s.Name)
			present = err == nil
		}
		if !present {
			return fmt.Errorf("no API key %q in the %s", s.Name, s.In)
		}
	}
	return nil
}

// Docs is a set of documents checked as one, the way a client of the
// gateway sees the shop: each exchange is checked against the first
// document that has its route.
type Docs []*Doc

// LoadAll loads every document, naming the one that fails.
func LoadAll(docs ...[]byte) (Docs, error) {
	out := make(Docs, 0, len(docs))
	for i, b := range docs {
		d, err := Load(b)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Check checks an exchange as Doc.Check does, against the first document
// that has its route; it fails when none has.
func (ds Docs) Check(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	for _, d := range ds {
		if d.documents(req) {
			return d.Check(req, reqBody, status, header, respBody)
		}
	}
	titles := make([]string, 0, len(ds))
	for _, d := range ds {
		titles = append(titles, fmt.Sprintf("%q", d.Title()))
	}
	return fmt.Errorf("%s %s is not documented in any of %s", req.Method, req.URL.Path, strings.Join(titles, ", "))
}

// Checker checks one exchange; *Doc and Docs are Checkers.
type Checker interface {
	Check(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error
}

var (
	_ Checker = (*Doc)(nil)
	_ Checker = Docs(nil)
)

// Transport returns a RoundTripper that sends each request with base
// (http.DefaultTransport when nil) and checks the exchange with c, handing
// every breach to report, t.Error in a test. The caller still gets the
// answer as it came. Bodies are read in full, so an event stream
// (text/event-stream) is passed through unchecked.
func Transport(c Checker, base http.RoundTripper, report func(error)) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &checkingTransport{checker: c, base: base, report: report}
}

type checkingTransport struct {
	checker Checker
	base    http.RoundTripper
	report  func(error)
}

func (t *checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the request body to check it: %w", err)
		}
		reqBody = b
	}
	sent := withBody(req, reqBody)
	resp, err := t.base.RoundTrip(sent)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); strings.TrimSpace(mt) == "text/event-stream" {
		return resp, nil
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the response body to check it: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err := t.checker.Check(req, reqBody, resp.StatusCode, resp.Header, respBody); err != nil {
		t.report(err)
	}
	return resp, nil
}
