package contract

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestBreaking feeds the guard deliberately changed copies of a document:
// it must name every breaking change and stay quiet about additive ones,
// or the baseline test proves nothing.
func TestBreaking(t *testing.T) {
	base, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(doc *openapi3.T)
		want   []string // substrings, each of which some reported change must hold; none: not breaking
	}{
		{name: "unchanged", change: func(*openapi3.T) {}},
		{name: "a new path", change: func(doc *openapi3.T) {
			doc.Paths.Set("/items/dearest", doc.Paths.Value("/items/cheapest"))
		}},
		{name: "a new optional request field", change: func(doc *openapi3.T) {
			schema(doc, "NewItem").Properties["colour"] = openapi3.NewStringSchema().NewRef()
		}},
		{name: "a new response field", change: func(doc *openapi3.T) {
			s := schema(doc, "Item")
			s.Properties["colour"] = openapi3.NewStringSchema().NewRef()
			s.Required = append(s.Required, "colour")
		}},
		{name: "a removed path", change: func(doc *openapi3.T) {
			doc.Paths.Delete("/items/cheapest")
		}, want: []string{"GET /items/cheapest", "api-path-removed-without-deprecation"}},
		{name: "a removed operation", change: func(doc *openapi3.T) {
			doc.Paths.Value("/items/{id}").Delete = nil
		}, want: []string{"DELETE /items/{id}", "api-removed-without-deprecation"}},
		{name: "a removed response field", change: func(doc *openapi3.T) {
			s := schema(doc, "Item")
			delete(s.Properties, "price_cents")
			s.Required = slices.DeleteFunc(s.Required, func(p string) bool { return p == "price_cents" })
		}, want: []string{"price_cents", "response-required-property-removed"}},
		{name: "a new required request field", change: func(doc *openapi3.T) {
			s := schema(doc, "NewItem")
			s.Properties["sku"] = openapi3.NewStringSchema().NewRef()
			s.Required = append(s.Required, "sku")
		}, want: []string{"POST /items", "sku", "new-required-request-property"}},
		{name: "a response field of another type", change: func(doc *openapi3.T) {
			schema(doc, "Item").Properties["price_cents"] = openapi3.NewStringSchema().NewRef()
		}, want: []string{"price_cents", "response-property-type-changed"}},
		{name: "a tighter request rule", change: func(doc *openapi3.T) {
			schema(doc, "NewItem").Properties["name"].Value.MaxLength = openapi3.Ptr(uint64(10))
		}, want: []string{"POST /items", "name", "request-property-max-length-set"}},
		{name: "a removed success status", change: func(doc *openapi3.T) {
			doc.Paths.Value("/items").Post.Responses.Delete("201")
		}, want: []string{"POST /items", "201", "response-success-status-removed"}},
		{name: "several at once", change: func(doc *openapi3.T) {
			doc.Paths.Delete("/items/cheapest")
			s := schema(doc, "NewItem")
			s.Properties["sku"] = openapi3.NewStringSchema().NewRef()
			s.Required = append(s.Required, "sku")
		}, want: []string{"api-path-removed-without-deprecation", "new-required-request-property"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := openapi3.NewLoader().LoadFromData(base)
			if err != nil {
				t.Fatal(err)
			}
			tt.change(doc)
			changed, err := doc.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Breaking(base, changed)
			if err != nil {
				t.Fatalf("Breaking() error = %v", err)
			}
			if len(tt.want) == 0 && len(got) != 0 {
				t.Errorf("Breaking() = %q, want no breaking change", got)
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(got, func(line string) bool { return strings.Contains(line, w) }) {
					t.Errorf("Breaking() = %q, want a change mentioning %q", got, w)
				}
			}
		})
	}
}

func schema(doc *openapi3.T, name string) *openapi3.Schema {
	return doc.Components.Schemas[name].Value
}

func TestBreakingRefusesWhatItCannotRead(t *testing.T) {
	good, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Breaking([]byte("openapi: [3"), good); err == nil {
		t.Error("Breaking(unreadable base, good) = nil error, want one")
	}
	if _, err := Breaking(good, []byte("openapi: [3")); err == nil {
		t.Error("Breaking(good, unreadable current) = nil error, want one")
	}
}
