package contract

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func loadShop(t *testing.T) *Doc {
	t.Helper()
	b, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(b)
	if err != nil {
		t.Fatalf("Load(testdata/shop.yaml): %v", err)
	}
	return d
}

const (
	item     = `{"id":"i1","name":"kettle","price_cents":2500}`
	problem  = `{"type":"about:blank","title":"Not Found","status":404,"detail":"no such item"}`
	jsonType = "application/json"
	probType = "application/problem+json"
)

func TestCheck(t *testing.T) {
	doc := loadShop(t)
	bearer := http.Header{"Authorization": {"Bearer x.y.z"}, "Content-Type": {jsonType}}
	anon := http.Header{"Content-Type": {jsonType}}
	tests := []struct {
		name       string
		method     string
		target     string
		reqHeader  http.Header
		reqBody    string
		status     int
		respHeader http.Header
		respBody   string
		wantErr    string // empty: the exchange keeps the contract
	}{
		{name: "a documented answer", method: "GET", target: "/items?limit=5", status: 200,
			respHeader: ct(jsonType), respBody: `{"items":[` + item + `]}`},
		{name: "a literal path beside a templated one", method: "GET", target: "/items/cheapest", status: 200,
			respHeader: ct(jsonType), respBody: item},
		{name: "a documented refusal", method: "GET", target: "/items/nope", status: 404,
			respHeader: ct(probType), respBody: problem},
		{name: "media type parameters are ignored", method: "GET", target: "/items/i1", status: 200,
			respHeader: ct(jsonType + "; charset=utf-8"), respBody: item},
		{name: "a response field the document does not name is allowed", method: "GET", target: "/items/i1", status: 200,
			respHeader: ct(jsonType), respBody: `{"id":"i1","name":"kettle","price_cents":2500,"colour":"red"}`},
		{name: "an undocumented path", method: "GET", target: "/orders", status: 200,
			respHeader: ct(jsonType), respBody: `{}`, wantErr: "not documented"},
		{name: "an undocumented method", method: "PUT", target: "/items/i1", status: 200,
			respHeader: ct(jsonType), respBody: item, wantErr: "not documented"},
		{name: "an undocumented status", method: "GET", target: "/items/i1", status: 500,
			respHeader: ct(probType), respBody: problem, wantErr: "status is not supported"},
		{name: "a response without a required field", method: "GET", target: "/items/i1", status: 200,
			respHeader: ct(jsonType), respBody: `{"id":"i1","name":"kettle"}`, wantErr: "price_cents"},
		{name: "a response field of the wrong type", method: "GET", target: "/items/i1", status: 200,
			respHeader: ct(jsonType), respBody: `{"id":"i1","name":"kettle","price_cents":"25.00"}`, wantErr: "price_cents"},
		{name: "a response of an undocumented media type", method: "GET", target: "/items/i1", status: 200,
			respHeader: ct("text/plain"), respBody: "kettle", wantErr: "text/plain"},
		{name: "a refusal that is not problem details", method: "GET", target: "/items/nope", status: 404,
			respHeader: ct(probType), respBody: `{"error":"no such item"}`, wantErr: "doesn't match"},
		{name: "a created item", method: "POST", target: "/items", reqHeader: bearer, reqBody: `{"name":"kettle","price_cents":2500}`,
			status: 201, respHeader: http.Header{"Content-Type": {jsonType}, "Location": {"/items/i1"}}, respBody: item},
		{name: "a 201 without its required Location", method: "POST", target: "/items", reqHeader: bearer, reqBody: `{"name":"kettle","price_cents":2500}`,
			status: 201, respHeader: ct(jsonType), respBody: item, wantErr: "Location"},
		{name: "no token, refused", method: "POST", target: "/items", reqHeader: anon, reqBody: `{"name":"kettle","price_cents":2500}`,
			status: 401, respHeader: ct(probType), respBody: problem},
		{name: "no token, yet served", method: "POST", target: "/items", reqHeader: anon, reqBody: `{"name":"kettle","price_cents":2500}`,
			status: 201, respHeader: http.Header{"Content-Type": {jsonType}, "Location": {"/items/i1"}}, respBody: item, wantErr: "instead of refused"},
		{name: "a basic credential where bearer is asked, served", method: "DELETE", target: "/items/i1",
			reqHeader: http.Header{"Authorization": {"Basic dTpw"}}, status: 204, wantErr: "instead of refused"},
		{name: "an unknown request field, refused", method: "POST", target: "/items", reqHeader: bearer, reqBody: `{"name":"kettle","price_cents":2500,"colour":"red"}`,
			status: 400, respHeader: ct(probType), respBody: problem},
		{name: "an unknown request field, accepted", method: "POST", target: "/items", reqHeader: bearer, reqBody: `{"name":"kettle","price_cents":2500,"colour":"red"}`,
			status: 201, respHeader: http.Header{"Content-Type": {jsonType}, "Location": {"/items/i1"}}, respBody: item, wantErr: "colour"},
		{name: "a missing required request field, refused", method: "POST", target: "/items", reqHeader: bearer, reqBody: `{"name":"kettle"}`,
			status: 422, respHeader: ct(probType), respBody: problem},
		{name: "a query value out of range, refused", method: "GET", target: "/items?limit=0", status: 422,
			respHeader: ct(probType), respBody: problem},
		{name: "a query value out of range, served", method: "GET", target: "/items?limit=0", status: 200,
			respHeader: ct(jsonType), respBody: `{"items":[]}`, wantErr: "limit"},
		{name: "a body where none is documented, served", method: "GET", target: "/items/i1", reqBody: `{"x":1}`, status: 200,
			respHeader: ct(jsonType), respBody: item, wantErr: "body not allowed"},
		{name: "a refusal the operation does not document", method: "POST", target: "/items", reqHeader: bearer, reqBody: `{"name":"kettle","price_cents":2500,"colour":"red"}`,
			status: 415, respHeader: ct(probType), respBody: problem, wantErr: "status is not supported"},
		{name: "no content", method: "DELETE", target: "/items/i1", reqHeader: bearer, status: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.reqBody))
			for k, v := range tt.reqHeader {
				req.Header[k] = v
			}
			err := doc.Check(req, []byte(tt.reqBody), tt.status, tt.respHeader, []byte(tt.respBody))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Check() = nil, want an error mentioning %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check() = %v, want an error mentioning %q", err, tt.wantErr)
			}
			// The caller's request is left as it was: its body unread.
			if got, _ := io.ReadAll(req.Body); string(got) != tt.reqBody {
				t.Errorf("request body after Check = %q, want %q", got, tt.reqBody)
			}
		})
	}
}

func ct(mediaType string) http.Header { return http.Header{"Content-Type": {mediaType}} }

func TestLoadRefusesBadDocuments(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"not YAML", "openapi: [3.0.3"},
		{"no info", "openapi: 3.0.3\npaths: {}\n"},
		{"a response without a description", `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      responses:
        "200": {}
`},
		{"a reference to nothing", `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      responses:
        "200":
          $ref: "#/components/responses/Missing"
`},
		{"a reference to another file", `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      responses:
        "200":
          $ref: "other.yaml#/components/responses/Ok"
`},
		{"a path parameter that is not declared", `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x/{id}:
    get:
      responses:
        "200": {description: ok}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := Load([]byte(tt.doc)); err == nil {
				t.Errorf("Load() = %q, nil; want an error", d.Title())
			}
		})
	}
}

func TestDocsCheckUsesTheDocumentWithTheRoute(t *testing.T) {
	other, err := Load([]byte(`openapi: 3.0.3
info: {title: other, version: "1"}
paths:
  /other:
    get:
      responses:
        "200": {description: ok}
`))
	if err != nil {
		t.Fatal(err)
	}
	docs := Docs{other, loadShop(t)}

	req := httptest.NewRequest("GET", "/items/i1", nil)
	if err := docs.Check(req, nil, 200, ct(jsonType), []byte(item)); err != nil {
		t.Errorf("Check(GET /items/i1) = %v, want nil", err)
	}
	if err := docs.Check(req, nil, 200, ct(jsonType), []byte(`{}`)); err == nil {
		t.Error("Check(GET /items/i1 with a bad body) = nil, want an error")
	}
	req = httptest.NewRequest("GET", "/other", nil)
	if err := docs.Check(req, nil, 200, nil, nil); err != nil {
		t.Errorf("Check(GET /other) = %v, want nil", err)
	}
	req = httptest.NewRequest("GET", "/nowhere", nil)
	err = docs.Check(req, nil, 200, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `"test shop"`) {
		t.Errorf("Check(GET /nowhere) = %v, want an error naming every document", err)
	}
}

func TestLoadAllNamesTheFailingDocument(t *testing.T) {
	good, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAll(good, []byte("openapi: 3.0.3\n")); err == nil || !strings.Contains(err.Error(), "document 1") {
		t.Errorf("LoadAll(good, bad) = %v, want an error naming document 1", err)
	}
	docs, err := LoadAll(good, good)
	if err != nil || len(docs) != 2 {
		t.Errorf("LoadAll(good, good) = %d documents, %v; want 2, nil", len(docs), err)
	}
}

func TestTransportChecksEveryExchange(t *testing.T) {
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		switch r.URL.Path {
		case "/items":
			w.Header().Set("Content-Type", jsonType)
			w.Header().Set("Location", "/items/i1")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, item)
		case "/items/i1":
			w.Header().Set("Content-Type", jsonType)
			_, _ = io.WriteString(w, `{"id":"i1"}`) // breaks the contract
		case "/items/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: hello\n\n")
		}
	}))
	defer srv.Close()

	var breaches []error
	client := &http.Client{Transport: Transport(loadShop(t), srv.Client().Transport, func(err error) { breaches = append(breaches, err) })}

	const sent = `{"name":"kettle","price_cents":2500}`
	req, _ := http.NewRequest("POST", srv.URL+"/items", strings.NewReader(sent))
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("Authorization", "Bearer x.y.z")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != item || gotBody != sent {
		t.Errorf("through the transport the server got %q and the client %q; want %q and %q", gotBody, body, sent, item)
	}
	if len(breaches) != 0 {
		t.Errorf("a kept contract reported %v, want nothing", breaches)
	}

	resp, err = client.Get(srv.URL + "/items/i1")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if len(breaches) != 1 {
		t.Errorf("a broken contract reported %d breaches, want 1: %v", len(breaches), breaches)
	}

	// A stream is neither read to its end nor checked, though the document does not list it.
	resp, err = client.Get(srv.URL + "/items/stream")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if len(breaches) != 1 {
		t.Errorf("an event stream was checked: %v", breaches)
	}
}
