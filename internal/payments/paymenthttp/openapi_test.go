package paymenthttp_test

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/payments/simprovider"
)

// TestOpenAPIDescribesTheRoutes checks that the document is valid OpenAPI
// 3.0.3, that each operation it describes is a route of its own pattern,
// that internal routes are tagged so, and that every error is a problem.
func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(paymenthttp.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}

	mux := paymenthttp.Routes(payments.NewService(nil, simprovider.New()))
	param := regexp.MustCompile(`\{[^}]+\}`)
	var patterns []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			want := method + " " + path
			patterns = append(patterns, want)
			_, got := mux.Handler(httptest.NewRequest(method, param.ReplaceAllString(path, "x"), nil))
			if got != want {
				t.Errorf("documented %s is served by route %q, want %q", want, got, want)
			}
			internal := strings.HasPrefix(path, "/internal/")
			if tagged := len(op.Tags) == 1 && op.Tags[0] == "internal"; tagged != internal {
				t.Errorf("%s tags = %v; internal routes, and only they, are tagged internal", want, op.Tags)
			}
			for code, ref := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				mt := ref.Value.Content.Get("application/problem+json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
					t.Errorf("%s %s is not an application/problem+json Problem", want, code)
				}
			}
		}
	}
	// The routes mapped in routes.go; a route added there must be documented.
	if len(patterns) != 4 {
		t.Errorf("documented operations = %v, want the 4 routes of routes.go", patterns)
	}
	problem := doc.Components.Schemas["Problem"]
	for _, field := range []string{"type", "title", "status", "detail", "instance", "request_id"} {
		if problem == nil || problem.Value.Properties[field] == nil {
			t.Errorf("Problem schema lacks %q", field)
		}
	}
}
