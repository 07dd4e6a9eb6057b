package contract

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// restSpec is docs/openapi.yaml, compiled.
type restSpec struct {
	routes []*route
}

// route is one path of the description: its template split in segments
// ("{name}" matches any one segment) and its operations by method.
type route struct {
	template string
	segments []string
	ops      map[string]*operation
}

type operation struct {
	responses map[string]*response // by status: "200", "4XX", "default"
}

// response is one described response.
type response struct {
	headers []string         // required headers (canonical names)
	content map[string]media // by media type ("application/json", "text/*", "*/*")
}

// media is one described content type; schema is nil unless it is JSON.
type media struct {
	schema *jsonschema.Schema
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadREST(path string) (*restSpec, error) {
	url, doc, err := readDoc(path)
	if err != nil {
		return nil, err
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("%s: openapi %q, want 3.1.x", path, v)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	rs := &restSpec{}
	paths := node{val: any(doc)}.child("paths")
	for _, tmpl := range paths.keys() {
		rt := &route{template: tmpl, segments: strings.Split(tmpl, "/"), ops: map[string]*operation{}}
		item := paths.child(tmpl)
		for _, m := range methods {
			if op := item.child(m); op.val != nil {
				o, err := loadOperation(c, url, doc, op)
				if err != nil {
					return nil, fmt.Errorf("%s: %s %s: %w", path, strings.ToUpper(m), tmpl, err)
				}
				rt.ops[strings.ToUpper(m)] = o
			}
		}
		rs.routes = append(rs.routes, rt)
	}
	return rs, nil
}

func loadOperation(c *jsonschema.Compiler, url string, doc map[string]any, op node) (*operation, error) {
	o := &operation{responses: map[string]*response{}}
	resps := op.child("responses")
	if len(resps.keys()) == 0 {
		return nil, fmt.Errorf("no responses")
	}
	for _, status := range resps.keys() {
		rn, err := resolve(doc, resps.child(status))
		if err != nil {
			return nil, err
		}
		r := &response{content: map[string]media{}}
		hs := rn.child("headers")
		for _, name := range hs.keys() {
			h, err := resolve(doc, hs.child(name))
			if err != nil {
				return nil, err
			}
			if req, _ := h.object()["required"].(bool); req {
				r.headers = append(r.headers, http.CanonicalHeaderKey(name))
			}
		}
		ct := rn.child("content")
		for _, mt := range ct.keys() {
			var m media
			if isJSON(mt) {
				sn := ct.child(mt).child("schema")
				if sn.val == nil {
					return nil, fmt.Errorf("response %s %s: no schema", status, mt)
				}
				if m.schema, err = c.Compile(url + "#" + sn.ptr); err != nil {
					return nil, fmt.Errorf("response %s %s: %w", status, mt, err)
				}
			}
			r.content[mt] = m
		}
		o.responses[status] = r
	}
	return o, nil
}

func isJSON(mt string) bool { return mt == "application/json" || strings.HasSuffix(mt, "+json") }

// find returns the route path matches: an exact template first, else the one
// whose "{param}" segments match.
func (rs *restSpec) find(path string) *route {
	segs := strings.Split(path, "/")
	var best *route
	for _, rt := range rs.routes {
		if rt.template == path {
			return rt
		}
		if best == nil && matches(rt.segments, segs) {
			best = rt
		}
	}
	return best
}

func matches(tmpl, segs []string) bool {
	if len(tmpl) != len(segs) {
		return false
	}
	for i, t := range tmpl {
		if t != segs[i] && !(strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && segs[i] != "") {
			return false
		}
	}
	return true
}

// CheckResponse validates one response the server gave to method on path
// (the URL's path, without the query) against the description: its status
// must be described for that operation, its required headers present, its
// Content-Type one the response lists and, for JSON, its body valid against
// the schema. A path the description does not list must answer 404 (405 for a
// listed path with another method). HEAD is checked as GET without a body.
func (s *Spec) CheckResponse(method, path string, status int, header http.Header, body []byte) error {
	rt := s.rest.find(path)
	if rt == nil {
		if status == http.StatusNotFound {
			return nil
		}
		return fmt.Errorf("%s %s answered %d: the path is not described (only 404 may answer it)", method, path, status)
	}
	head := method == http.MethodHead
	op := rt.ops[method]
	if op == nil && head {
		op = rt.ops[http.MethodGet]
	}
	if op == nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return nil
		}
		return fmt.Errorf("%s %s answered %d: the method is not described for %s (only 404 or 405 may answer it)", method, path, status, rt.template)
	}
	opKey := method + " " + rt.template
	if head {
		opKey = http.MethodGet + " " + rt.template
	}
	key, r := op.response(status)
	if r == nil {
		return fmt.Errorf("%s %s answered %d: no such response is described for %s", method, path, status, opKey)
	}
	for _, h := range r.headers {
		if header.Get(h) == "" {
			return fmt.Errorf("%s %s answered %d without the required header %s", method, path, status, h)
		}
	}
	if err := r.checkBody(head || status == http.StatusSwitchingProtocols, header.Get("Content-Type"), body); err != nil {
		return fmt.Errorf("%s %s answered %d: %s", method, path, status, err)
	}
	s.see(opKey)
	s.see(opKey + " " + key)
	return nil
}

// response finds the described response for status: exact, then "4XX", then "default".
func (o *operation) response(status int) (string, *response) {
	code := strconv.Itoa(status)
	for _, k := range []string{code, code[:1] + "XX", "default"} {
		if r := o.responses[k]; r != nil {
			return k, r
		}
	}
	return "", nil
}

func (r *response) checkBody(noBody bool, contentType string, body []byte) error {
	if noBody {
		return nil
	}
	if len(r.content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("a body (%s, %d bytes) where none is described", contentType, len(body))
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("Content-Type %q: %v", contentType, err)
	}
	m, ok := r.media(mt)
	if !ok {
		return fmt.Errorf("Content-Type %s, the response describes %s", mt, strings.Join(r.mediaTypes(), ", "))
	}
	if m.schema == nil {
		return nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not JSON (%v): %.200q", err, body)
	}
	if err := m.schema.Validate(v); err != nil {
		return fmt.Errorf("body %.300s does not match the schema: %s", bytes.TrimSpace(body), errorText(err))
	}
	return nil
}

func (r *response) media(mt string) (media, bool) {
	for _, k := range []string{mt, mt[:strings.IndexByte(mt, '/')+1] + "*", "*/*"} {
		if m, ok := r.content[k]; ok {
			return m, true
		}
	}
	return media{}, false
}

func (r *response) mediaTypes() []string {
	var out []string
	for k := range r.content {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (rs *restSpec) operations() []string {
	var out []string
	for _, rt := range rs.routes {
		for m := range rt.ops {
			out = append(out, m+" "+rt.template)
		}
	}
	return out
}

func (rs *restSpec) responses() []string {
	var out []string
	for _, rt := range rs.routes {
		for m, op := range rt.ops {
			for status := range op.responses {
				out = append(out, m+" "+rt.template+" "+status)
			}
		}
	}
	sort.Strings(out)
	return out
}
