// Package contract checks what shopstream sends against its machine-readable
// descriptions: REST responses against docs/openapi.yaml (OpenAPI 3.1, JSON
// Schema 2020-12) and socket frames against docs/asyncapi.yaml (AsyncAPI 3.0,
// draft-07 payloads). The end-to-end tests pass every response and frame they
// read through it, so the descriptions cannot drift from the server. It also
// records which operations, responses and messages were seen, so a run can tell
// what the descriptions promise that no test exercised.
//
// It is used by tests only; it is not linked into the binary.
package contract

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// Spec is the loaded pair of descriptions. Its methods are safe for
// concurrent use.
type Spec struct {
	rest   *restSpec
	socket *socketSpec

	mu   sync.Mutex
	seen map[string]bool // keys of Unseen's form
}

// Load reads openapi.yaml and asyncapi.yaml from dir and compiles every
// schema they hold.
func Load(dir string) (*Spec, error) {
	rest, err := loadREST(filepath.Join(dir, "openapi.yaml"))
	if err != nil {
		return nil, err
	}
	socket, err := loadSocket(filepath.Join(dir, "asyncapi.yaml"))
	if err != nil {
		return nil, err
	}
	return &Spec{rest: rest, socket: socket, seen: map[string]bool{}}, nil
}

// readDoc reads a YAML file as the JSON value jsonschema works on (numbers
// as json.Number) and returns it with the URL it is known by.
func readDoc(path string) (string, map[string]any, error) {
	y, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("reading description: %w", err)
	}
	j, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return "", nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(j)))
	if err != nil {
		return "", nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf("%s: not an object", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("locating %s: %w", path, err)
	}
	return "file://" + filepath.ToSlash(abs), doc, nil
}

// node is a value of a description with its JSON pointer.
type node struct {
	ptr string
	val any
}

// child returns the member key of n's object (zero node when absent).
func (n node) child(key string) node {
	m, _ := n.val.(map[string]any)
	v, ok := m[key]
	if !ok {
		return node{}
	}
	return node{ptr: n.ptr + "/" + escape(key), val: v}
}

func (n node) object() map[string]any { m, _ := n.val.(map[string]any); return m }

// keys returns the members of n's object in order.
func (n node) keys() []string {
	var ks []string
	for k := range n.object() {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// resolve follows n's $ref (local, "#/...") until it reaches a value without one.
func resolve(doc map[string]any, n node) (node, error) {
	for range 16 {
		ref, ok := n.object()["$ref"].(string)
		if !ok {
			return n, nil
		}
		ptr, ok := strings.CutPrefix(ref, "#")
		if !ok {
			return node{}, fmt.Errorf("%s: only local references are supported, not %q", n.ptr, ref)
		}
		t := node{val: any(doc)}
		for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			t = t.child(unescape(tok))
			if t.val == nil {
				return node{}, fmt.Errorf("%s: reference %q leads nowhere", n.ptr, ref)
			}
		}
		n = t
	}
	return node{}, fmt.Errorf("%s: references nest too deeply", n.ptr)
}

func escape(s string) string   { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }
func unescape(s string) string { return strings.NewReplacer("~1", "/", "~0", "~").Replace(s) }

// see records that key was exercised.
func (s *Spec) see(key string) {
	s.mu.Lock()
	s.seen[key] = true
	s.mu.Unlock()
}

// Seen returns what was exercised so far, sorted: "GET /path", "GET /path 200"
// and "message name".
func (s *Spec) Seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Operations returns every operation ("GET /path") and message ("message
// name") the descriptions hold; Responses every described response ("GET /path
// 200").
func (s *Spec) Operations() []string {
	out := append(s.rest.operations(), s.socket.names()...)
	sort.Strings(out)
	return out
}

// Responses returns every described response, "GET /path 200".
func (s *Spec) Responses() []string { return s.rest.responses() }

// Unseen returns those of want that were not exercised.
func (s *Spec) Unseen(want []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range want {
		if !s.seen[k] {
			out = append(out, k)
		}
	}
	return out
}

// errorText flattens a validation error to one readable block.
func errorText(err error) string {
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return fmt.Sprintf("%v", ve)
	}
	return err.Error()
}
