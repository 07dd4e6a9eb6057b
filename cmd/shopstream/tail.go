package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/shopstream/shopstream/client"
	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/termsafe"
)

// tailOptions is what the tail command line asked for.
type tailOptions struct {
	client   *client.Client // of the service at --url
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
	return newTailer(opts, password, e).run(ctx)
}

func parseTailFlags(e env, args []string) (tailOptions, error) {
	fs := newFlagSet("tail", e)
	rawURL := fs.String("url", "http://"+config.Default("LISTEN_ADDR"), "the service's base URL (http or https)")
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
	c, err := client.New(*rawURL, client.WithBackoff(jitteredBackoff))
	if err != nil {
		return tailOptions{}, &usageError{fmt.Sprintf("tail: --url: %v", err)}
	}
	opts := tailOptions{client: c, email: *email, channels: channels, actions: actions, json: *asJSON, since: *since, count: *count}
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

// tailer is one running tail: what it asked for and where it prints.
type tailer struct {
	opts     tailOptions
	password string
	stdout   io.Writer
	stderr   io.Writer
}

func newTailer(opts tailOptions, password string, e env) *tailer {
	return &tailer{opts: opts, password: password, stdout: e.stdout, stderr: e.stderr}
}

// run logs in and prints the stream until ctx ends.
func (t *tailer) run(ctx context.Context) error {
	if err := t.opts.client.Login(ctx, t.opts.email, t.password); err != nil {
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
	stream, err := t.opts.client.Stream(ctx, subs...)
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
// describeEvent's line; escaped for the terminal either way.
func (t *tailer) print(ev client.Event) error {
	line := string(ev.Raw)
	if !t.opts.json {
		var err error
		if line, err = describeEvent(ev); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintln(t.stdout, termsafe.String(line)); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// createdFields is how many fields besides id a created or deleted event shows.
const createdFields = 4

// formatEvent renders an event message, as the server sent it, as one human
// line (describeEvent).
func formatEvent(raw []byte) (string, error) {
	ev, err := client.DecodeEvent(raw)
	if err != nil {
		return "", fmt.Errorf("decoding event: %w", err)
	}
	return describeEvent(ev)
}

// describeEvent renders an event as one human line:
//
//	1043 2026-01-25T10:30:00.000Z order:updated id=123 status: pending → processing (actor warehouse-sync)
func describeEvent(ev client.Event) (string, error) {
	parts := []string{strconv.FormatInt(ev.ID, 10), ev.Timestamp.UTC().Format(client.TimestampFormat), ev.Name()}
	if ev.Action != client.ActionTruncated {
		detail, err := eventDetail(ev)
		if err != nil {
			return "", fmt.Errorf("event %d: %w", ev.ID, err)
		}
		parts = append(parts, detail...)
	}
	if ev.Actor != "" {
		parts = append(parts, "(actor "+ev.Actor+")")
	}
	return strings.Join(parts, " "), nil
}

// eventDetail is "id=N" and then the changes (updated) or a few fields.
func eventDetail(ev client.Event) ([]string, error) {
	data, err := client.Fields(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var out []string
	if id, ok := client.Lookup(data, "id"); ok {
		out = append(out, "id="+renderValue(id))
	}
	if ev.Action == client.ActionUpdated {
		changes, err := describeChanges(ev.Changed, ev.Previous)
		if err != nil {
			return nil, err
		}
		return append(out, changes), nil
	}
	n := 0
	for _, f := range data {
		if f.Name == "id" || f.Name == "changed_fields" || n == createdFields {
			continue
		}
		out = append(out, f.Name+"="+renderValue(f.Value))
		n++
	}
	return out, nil
}

// describeChanges renders the changed fields (client.Event.Changed: the
// event's own or those in data) as "field: old → new, ...".
func describeChanges(changedFields, previous json.RawMessage) (string, error) {
	changed, err := client.Fields(changedFields)
	if err != nil {
		return "", fmt.Errorf("changed_fields: %w", err)
	}
	prev, err := client.Fields(previous)
	if err != nil {
		return "", fmt.Errorf("previous: %w", err)
	}
	items := make([]string, 0, len(changed))
	for _, f := range changed {
		old, ok := client.Lookup(prev, f.Name)
		if !ok {
			old = json.RawMessage("null")
		}
		items = append(items, f.Name+": "+renderValue(old)+" → "+renderValue(f.Value))
	}
	return strings.Join(items, ", "), nil
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
