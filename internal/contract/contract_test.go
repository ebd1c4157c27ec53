package contract_test

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/catalog/cataloghttp"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/inventory/inventoryhttp"
	"github.com/microshop/microshop/internal/legacy/legacyhttp"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/registry"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/users/userhttp"
)

// published maps each document, by the name the gateway lists it under and
// its baseline file is named after, to the document the code embeds and
// serves.
var published = map[string][]byte{
	"users":     userhttp.OpenAPI,
	"catalog":   cataloghttp.OpenAPI,
	"inventory": inventoryhttp.OpenAPI,
	"orders":    orderhttp.OpenAPI,
	"payments":  paymenthttp.OpenAPI,
	"shipping":  shippinghttp.OpenAPI,
	"legacy":    legacyhttp.OpenAPI,
	"registry":  registry.OpenAPI,
	"gateway":   gateway.OpenAPI,
}

// baselineDir holds the published version of every document.
var baselineDir = filepath.Join("..", "..", "api", "baseline")

var publish = flag.Bool("publish", false, "write each current document as its baseline when it breaks nothing against the one there")

func TestEveryDocumentIsValid(t *testing.T) {
	for name, doc := range published {
		t.Run(name, func(t *testing.T) {
			if len(doc) == 0 {
				t.Fatal("the embedded document is empty")
			}
			if _, err := contract.Load(doc); err != nil {
				t.Errorf("Load(%s) = %v", name, err)
			}
		})
	}
}

// TestGatewayServesEveryDocument keeps the gateway's list of documents and
// this test's in step, so no document escapes the checks.
func TestGatewayServesEveryDocument(t *testing.T) {
	for _, name := range gateway.Documented {
		if _, ok := published[name]; !ok {
			t.Errorf("the gateway serves a document for %q, which this test does not check", name)
		}
	}
	for name := range published {
		if !slices.Contains(gateway.Documented, name) {
			t.Errorf("the gateway does not serve the document of %q", name)
		}
	}
}

// TestNoBreakingChanges compares every document with its published
// baseline: within a version the API only grows. Run with -publish to
// record additive changes as the new baseline (see api/baseline/README.md).
func TestNoBreakingChanges(t *testing.T) {
	for name, doc := range published {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(baselineDir, name+".yaml")
			base, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) && *publish {
				writeBaseline(t, path, doc)
				return
			}
			if err != nil {
				t.Fatalf("reading the baseline: %v (a new document is published with -publish, see api/baseline/README.md)", err)
			}
			breaking, err := contract.Breaking(base, doc)
			if err != nil {
				t.Fatalf("comparing with %s: %v", path, err)
			}
			for _, change := range breaking {
				t.Errorf("breaking change against %s: %s", path, change)
			}
			if len(breaking) == 0 && *publish && !bytes.Equal(base, doc) {
				writeBaseline(t, path, doc)
			}
		})
	}
}

func writeBaseline(t *testing.T, path string, doc []byte) {
	t.Helper()
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatalf("publishing the baseline: %v", err)
	}
	t.Logf("published %s", path)
}

// TestGuardCatchesABreakingChangeToAPublishedDocument proves the guard on a
// real document, not only on the small one in testdata.
func TestGuardCatchesABreakingChangeToAPublishedDocument(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(baselineDir, "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(base, []byte("  /api/v1/auth/login:\n"), []byte("  /api/v1/auth/signin:\n"), 1)
	if bytes.Equal(broken, base) {
		t.Fatal("the users baseline has no /api/v1/auth/login to rename")
	}
	got, err := contract.Breaking(base, broken)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(got, func(line string) bool { return strings.Contains(line, "POST /api/v1/auth/login") }) {
		t.Errorf("Breaking(users, users with login renamed) = %q, want the removed POST /api/v1/auth/login", got)
	}
}
