package shop

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/config"
)

const module = "github.com/microshop/microshop/"

// TestServicesDoNotImportEachOther fails the build when any package of a
// service imports a package of another service: services meet only on the
// wire. Building blocks may be imported by all, and may import no service.
func TestServicesDoNotImportEachOther(t *testing.T) {
	root := filepath.Join("..", "..")
	services := append(slices.Clone(config.BusinessServices), "gateway", "registry")
	checked := 0
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(root, "internal"), path)
		owner := strings.Split(filepath.ToSlash(rel), "/")[0]
		if owner == "shop" { // the composition root knows every service
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module+"internal/") {
				continue
			}
			target := strings.Split(strings.TrimPrefix(p, module+"internal/"), "/")[0]
			if target == owner || !slices.Contains(services, target) {
				continue
			}
			if strings.HasSuffix(path, "_test.go") && owner == "contract" {
				continue // the contract tests load every service's published document
			}
			t.Errorf("%s imports %s: %s may not depend on the %s service", filepath.ToSlash(rel), p, owner, target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files; is the walk looking in the right place?", checked)
	}
}
