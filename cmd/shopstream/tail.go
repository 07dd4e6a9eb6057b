package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/shopstream/shopstream/client"
	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/termsafe"
)

// tailOptions is what the tail command line asked for.
type tailOptions struct {
	base     *url.URL // the service's http(s) URL
	email    string
	channels []string
	filter   json.RawMessage // nil: no filter
	actions  []string
	json     bool
	since    int64 // resume every channel after this event id; 0: live
	count    int   // exit after this many events; 0: never
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func cmdTail(ctx context.Context, e env, args []string) error {
	opts, err := parseTailFlags(e, args)
	if err != nil {
		return err
	}
	password, err := tailPassword(e)
	if err != nil {
		return err
	}
	t, err := newTailer(opts, password, e)
	if err != nil {
		return err
	}
	return t.run(ctx)
}

func parseTailFlags(e env, args []string) (tailOptions, error) {
	fs := newFlagSet("tail", e)
	rawURL := fs.String("url", "http://127.0.0.1:3000", "the service's base URL (http or https)")
	email := fs.String("email", "", "the admin to log in as (required)")
	var channels, actions stringList
	fs.Var(&channels, "channel", "channel to follow; repeat or comma-separate (default: all five)")
	filter := fs.String("filter", "", `filter as a JSON object, e.g. '{"status":"pending"}'`)
	fs.Var(&actions, "actions", "comma-separated actions: created, updated, deleted, truncated (default: all)")
	asJSON := fs.Bool("json", false, "print each event message as the raw JSON the server sent, one per line")
	since := fs.Int64("since", 0, "first replay, on every channel, the events after this event `id` (0: from now on)")
	count := fs.Int("count", 0, "exit after printing `n` events (0: run until interrupted)")
	fs.Usage = func() { tailUsage(fs.Output(), fs.PrintDefaults) }
	if err := fs.Parse(args); err != nil {
		return tailOptions{}, err
	}
	if fs.NArg() > 0 {
		return tailOptions{}, &usageError{fmt.Sprintf("tail: unexpected argument %q", fs.Arg(0))}
	}
	if *email == "" {
		return tailOptions{}, &usageError{"tail: --email is required"}
	}
	if *since < 0 || *count < 0 {
		return tailOptions{}, &usageError{"tail: --since and --count take a number, 0 or more"}
	}
	base, err := parseBaseURL(*rawURL)
	if err != nil {
		return tailOptions{}, err
	}
	opts := tailOptions{base: base, email: *email, channels: channels, actions: actions, json: *asJSON, since: *since, count: *count}
	if len(opts.channels) == 0 {
		for _, ent := range config.Entities {
			opts.channels = append(opts.channels, client.Channel(ent))
		}
	}
	if *filter != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(*filter), &obj); err != nil {
			return tailOptions{}, &usageError{fmt.Sprintf("tail: --filter must be a JSON object: %v", err)}
		}
		opts.filter = json.RawMessage(*filter)
	}
	return opts, nil
}

func tailUsage(w io.Writer, printDefaults func()) {
	fmt.Fprint(w, `Usage: shopstream tail --email E [flags]

Logs in over REST, opens the socket and prints the events of the chosen channels
as they are committed, one line each. Reconnects with backoff and resumes where
it stopped. Ends with exit code 0 on SIGINT, or after --count events.

Flags:
`)
	printDefaults()
	fmt.Fprint(w, `
Environment:
  SHOPSTREAM_PASSWORD    the password; when unset, the first line of stdin
`)
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("tail: --url: %v", err)}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &usageError{fmt.Sprintf("tail: --url must be http://host[:port] or https://host[:port], got %q", raw)}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// tailPassword reads SHOPSTREAM_PASSWORD or else the first line of stdin.
func tailPassword(e env) (string, error) {
	if p := e.getenv("SHOPSTREAM_PASSWORD"); p != "" {
		return p, nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", &usageError{"tail: no password: set SHOPSTREAM_PASSWORD or write it on stdin"}
	}
	p := strings.TrimRight(line, "\r\n")
	if p == "" {
		return "", &usageError{"tail: empty password"}
	}
	return p, nil
}

// Reconnect backoff of tail: exponential from tailMinBackoff to tailMaxBackoff,
// with full jitter.
const (
	tailMinBackoff = client.DefaultMinBackoff
	tailMaxBackoff = client.DefaultMaxBackoff
)

var jitteredBackoff = client.FullJitter(tailMinBackoff, tailMaxBackoff)

// tailer is one running tail: the client and where it prints.
type tailer struct {
	opts     tailOptions
	password string
	client   *client.Client
	stdout   io.Writer
	stderr   io.Writer
}

func newTailer(opts tailOptions, password string, e env) (*tailer, error) {
	c, err := client.New(opts.base.String(), client.WithBackoff(jitteredBackoff))
	if err != nil {
		return nil, fmt.Errorf("tail: %w", err)
	}
	return &tailer{opts: opts, password: password, client: c, stdout: e.stdout, stderr: e.stderr}, nil
}

// run logs in and prints the stream until ctx ends.
func (t *tailer) run(ctx context.Context) error {
	if err := t.client.Login(ctx, t.opts.email, t.password); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	subs := make([]client.Subscription, len(t.opts.channels))
	for i, ch := range t.opts.channels {
		subs[i] = client.Subscription{Channel: ch, Filter: t.opts.filter, Actions: t.opts.actions, Since: t.opts.since}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := t.client.Stream(ctx, subs...)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	printed := 0
	for m := range stream.Messages() {
		switch m := m.(type) {
		case client.Event:
			err := t.print(m)
			if printed++; err != nil || printed == t.opts.count {
				cancel()
				<-stream.Done()
				return err
			}
		case client.Notice:
			fmt.Fprintln(t.stderr, "tail:", termsafe.String(m.String()))
		}
	}
	return stream.Err()
}

// print writes one event as a line: the server's JSON with --json, else
// formatEvent's line; escaped for the terminal either way.
func (t *tailer) print(ev client.Event) error {
	line := string(ev.Raw)
	if !t.opts.json {
		var err error
		if line, err = formatEvent(ev.Raw); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintln(t.stdout, termsafe.String(line)); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// eventMessage is the server's event message, with objects kept raw so that
// their field order survives.
type eventMessage struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Previous  json.RawMessage `json:"previous"`
	Changed   json.RawMessage `json:"changed_fields"` // only when the row has a column of that name
	Actor     string          `json:"actor"`
	Timestamp string          `json:"timestamp"`
}

// createdFields is how many fields besides id a created or deleted event shows.
const createdFields = 4

// formatEvent renders an event message as one human line:
//
//	1043 2026-01-25T10:30:00.000Z order:updated id=123 status: pending → processing (actor warehouse-sync)
func formatEvent(raw []byte) (string, error) {
	var ev eventMessage
	if err := json.Unmarshal(raw, &ev); err != nil {
		return "", fmt.Errorf("decoding event: %w", err)
	}
	parts := []string{ev.ID, ev.Timestamp, ev.Event}
	_, action, _ := strings.Cut(ev.Event, ":")
	if action != "truncated" {
		detail, err := eventDetail(action, ev)
		if err != nil {
			return "", fmt.Errorf("event %s: %w", ev.ID, err)
		}
		parts = append(parts, detail...)
	}
	if ev.Actor != "" {
		parts = append(parts, "(actor "+ev.Actor+")")
	}
	return strings.Join(parts, " "), nil
}

// eventDetail is "id=N" and then the changes (updated) or a few fields.
func eventDetail(action string, ev eventMessage) ([]string, error) {
	data, err := objectFields(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var out []string
	if id, ok := lookupField(data, "id"); ok {
		out = append(out, "id="+renderValue(id))
	}
	if action == "updated" {
		changes, err := describeChanges(data, ev.Changed, ev.Previous)
		if err != nil {
			return nil, err
		}
		return append(out, changes), nil
	}
	n := 0
	for _, f := range data {
		if f.key == "id" || f.key == "changed_fields" || n == createdFields {
			continue
		}
		out = append(out, f.key+"="+renderValue(f.val))
		n++
	}
	return out, nil
}

// describeChanges renders changed_fields as "field: old → new, ...": the
// event's own, when it has them at its top level (the row has a column of
// that name), else those in data.
func describeChanges(data []jsonField, top, previous json.RawMessage) (string, error) {
	raw := top
	if raw == nil {
		raw, _ = lookupField(data, "changed_fields")
	}
	changed, err := objectFields(raw)
	if err != nil {
		return "", fmt.Errorf("changed_fields: %w", err)
	}
	prev, err := objectFields(previous)
	if err != nil {
		return "", fmt.Errorf("previous: %w", err)
	}
	items := make([]string, 0, len(changed))
	for _, f := range changed {
		old, ok := lookupField(prev, f.key)
		if !ok {
			old = json.RawMessage("null")
		}
		items = append(items, f.key+": "+renderValue(old)+" → "+renderValue(f.val))
	}
	return strings.Join(items, ", "), nil
}

// jsonField is one member of a JSON object, in order.
type jsonField struct {
	key string
	val json.RawMessage
}

// objectFields splits a JSON object into its members, keeping their order. An
// absent or null value is an empty object.
func objectFields(raw json.RawMessage) ([]jsonField, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading key: %w", err)
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("reading %q: %w", key, err)
		}
		out = append(out, jsonField{key: key, val: val})
	}
	return out, nil
}

func lookupField(fields []jsonField, key string) (json.RawMessage, bool) {
	for _, f := range fields {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// renderValue prints a JSON value for people: plain strings without quotes,
// everything else as JSON, long values cut.
func renderValue(v json.RawMessage) string {
	var s string
	if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		if s == "" || strings.ContainsAny(s, " \t\r\n,\"=") {
			return truncate(strconv.Quote(s), 60)
		}
		return truncate(s, 60)
	}
	return truncate(string(v), 60)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
