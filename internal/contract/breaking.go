package contract

import (
	"fmt"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oasdiff/oasdiff/checker"
	"github.com/oasdiff/oasdiff/diff"
	"github.com/oasdiff/oasdiff/load"
)

// Breaking lists, one line each, the changes from base to current that
// would break a client written against base: oasdiff's default checks, kept
// at level ERR. Additive changes (a new path, a new optional request field,
// a new response field) are not listed.
func Breaking(base, current []byte) ([]string, error) {
	// One loader per document: a loader caches what it has read.
	baseSpec, err := load.NewSpecInfoFromData(openapi3.NewLoader(), base, "base.yaml")
	if err != nil {
		return nil, fmt.Errorf("loading the base document: %w", err)
	}
	currentSpec, err := load.NewSpecInfoFromData(openapi3.NewLoader(), current, "current.yaml")
	if err != nil {
		return nil, fmt.Errorf("loading the current document: %w", err)
	}
	report, sources, err := diff.GetWithOperationsSourcesMap(diff.NewConfig(), baseSpec, currentSpec)
	if err != nil {
		return nil, fmt.Errorf("comparing the documents: %w", err)
	}
	changes := checker.CheckBackwardCompatibility(checker.NewConfig(checker.GetAllChecks()), report, sources)
	l := checker.NewDefaultLocalizer()
	var out []string
	for _, c := range changes {
		if c.GetLevel() < checker.ERR {
			continue
		}
		where := c.GetOperation() + " " + c.GetPath()
		if c.GetOperation() == "" {
			where = c.GetSection()
		}
		out = append(out, fmt.Sprintf("%s: %s [%s]", where, c.GetUncolorizedText(l), c.GetId()))
	}
	return out, nil
}
