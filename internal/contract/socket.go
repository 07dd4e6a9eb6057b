package contract

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// socketSpec is docs/asyncapi.yaml, compiled: the messages of its channel,
// split by who sends them.
type socketSpec struct {
	client []*message // received by the server
	server []*message // sent by the server
}

type message struct {
	name   string // the key in channels.socket.messages
	typ    string // the payload's "type" const, for error messages
	schema *jsonschema.Schema
}

func loadSocket(path string) (*socketSpec, error) {
	url, doc, err := readDoc(path)
	if err != nil {
		return nil, err
	}
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.0.") {
		return nil, fmt.Errorf("%s: asyncapi %q, want 3.0.x", path, v)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7) // AsyncAPI's default schema format
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	root := node{val: any(doc)}
	byPtr := map[string]*message{}
	chans := root.child("channels")
	for _, ch := range chans.keys() {
		msgs := chans.child(ch).child("messages")
		for _, name := range msgs.keys() {
			ref := msgs.child(name)
			m, err := loadMessage(c, url, doc, name, ref)
			if err != nil {
				return nil, fmt.Errorf("%s: message %s: %w", path, name, err)
			}
			byPtr[ref.ptr] = m
		}
	}
	ss := &socketSpec{}
	dir := map[*message]string{}
	ops := root.child("operations")
	for _, id := range ops.keys() {
		op := ops.child(id)
		action, _ := op.child("action").val.(string)
		if err := ss.take(doc, byPtr, dir, op.child("messages"), action); err != nil {
			return nil, fmt.Errorf("%s: operation %s: %w", path, id, err)
		}
		if reply := op.child("reply"); reply.val != nil {
			replier := map[string]string{"receive": "send", "send": "receive"}[action]
			if err := ss.take(doc, byPtr, dir, reply.child("messages"), replier); err != nil {
				return nil, fmt.Errorf("%s: operation %s reply: %w", path, id, err)
			}
		}
	}
	for ptr, m := range byPtr {
		if dir[m] == "" {
			return nil, fmt.Errorf("%s: message %s (%s) is in no operation", path, m.name, ptr)
		}
	}
	return ss, nil
}

// take files the messages an operation lists as received (client) or sent
// (server) by the described server.
func (ss *socketSpec) take(doc map[string]any, byPtr map[string]*message, dir map[*message]string, list node, action string) error {
	arr, _ := list.val.([]any)
	for i := range arr {
		ref, _ := arr[i].(map[string]any)["$ref"].(string)
		m := byPtr[strings.TrimPrefix(ref, "#")]
		if m == nil {
			return fmt.Errorf("lists %q, not a message of a channel", ref)
		}
		if action != "send" && action != "receive" {
			return fmt.Errorf("action %q", action)
		}
		switch dir[m] {
		case action:
			continue
		case "":
			dir[m] = action
		default:
			return fmt.Errorf("message %s is both sent and received", m.name)
		}
		if action == "receive" {
			ss.client = append(ss.client, m)
		} else {
			ss.server = append(ss.server, m)
		}
	}
	sort.Slice(ss.client, func(i, j int) bool { return ss.client[i].name < ss.client[j].name })
	sort.Slice(ss.server, func(i, j int) bool { return ss.server[i].name < ss.server[j].name })
	return nil
}

func loadMessage(c *jsonschema.Compiler, url string, doc map[string]any, name string, ref node) (*message, error) {
	mn, err := resolve(doc, ref)
	if err != nil {
		return nil, err
	}
	pn := mn.child("payload")
	if pn.val == nil {
		return nil, fmt.Errorf("no payload")
	}
	sch, err := c.Compile(url + "#" + pn.ptr)
	if err != nil {
		return nil, err
	}
	m := &message{name: name, schema: sch}
	if p, err := resolve(doc, pn); err == nil {
		m.typ, _ = p.child("properties").child("type").child("const").val.(string)
	}
	return m, nil
}

// CheckServerFrame validates one frame the server sent: each message in it
// must match exactly one server message of the description. batch says the
// socket speaks shopstream.batch, whose frames hold messages separated by
// "\n"; without it a frame is one message. It returns the names matched.
func (s *Spec) CheckServerFrame(frame []byte, batch bool) ([]string, error) {
	parts := [][]byte{frame}
	if batch {
		parts = bytes.Split(frame, []byte("\n"))
	}
	var names []string
	for _, p := range parts {
		name, err := match(s.socket.server, p, false)
		if err != nil {
			return names, fmt.Errorf("server frame %.300s: %w", p, err)
		}
		s.see("message " + name)
		names = append(names, name)
	}
	return names, nil
}

// ClassifyClientMessage returns the client message b is, recording it as
// seen, or an error saying why it is none (a test may send invalid messages
// on purpose).
func (s *Spec) ClassifyClientMessage(b []byte) (string, error) {
	name, err := match(s.socket.client, b, false)
	if err != nil {
		return "", err
	}
	s.see("message " + name)
	return name, nil
}

// match finds the message of ms that b is: the first that matches, or with
// all, the only one (the descriptions' own tests check that their messages do
// not overlap; checking every frame against every candidate would double the
// cost of the most frequent frame, the event).
func match(ms []*message, b []byte, all bool) (string, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("not one JSON value: %v", err)
	}
	obj, _ := v.(map[string]any)
	typ, _ := obj["type"].(string)
	var found []string
	var failed []*message
	var errs []error
	for _, m := range ms {
		if m.typ != "" && m.typ != typ {
			continue // cannot match: its type is another const
		}
		if err := m.schema.Validate(v); err != nil {
			failed, errs = append(failed, m), append(errs, err)
			continue
		}
		found = append(found, m.name)
		if !all {
			break
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return "", fmt.Errorf("matches several messages: %s", strings.Join(found, ", "))
	case len(failed) == 0:
		return "", fmt.Errorf("no message has type %q", typ)
	}
	why := make([]string, len(failed))
	for i, m := range failed {
		why[i] = "as " + m.name + ": " + errorText(errs[i])
	}
	return "", fmt.Errorf("matches no message:\n%s", strings.Join(why, "\n"))
}

func (ss *socketSpec) names() []string {
	var out []string
	for _, m := range append(append([]*message{}, ss.client...), ss.server...) {
		out = append(out, "message "+m.name)
	}
	return out
}
