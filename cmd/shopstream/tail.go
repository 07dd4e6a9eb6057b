package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/termsafe"
)

// Reconnect backoff of tail: exponential from tailMinBackoff to tailMaxBackoff,
// with full jitter.
const (
	tailMinBackoff   = time.Second
	tailMaxBackoff   = 30 * time.Second
	tailPingInterval = 30 * time.Second
	tailReadLimit    = 64 << 20 // one message can carry a whole (large) row
	tailHTTPTimeout  = 15 * time.Second
)

// tailOptions is what the tail command line asked for.
type tailOptions struct {
	base     *url.URL // the service's http(s) URL
	email    string
	channels []string
	filter   json.RawMessage // nil: no filter
	actions  []string
	json     bool
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
	base, err := parseBaseURL(*rawURL)
	if err != nil {
		return tailOptions{}, err
	}
	opts := tailOptions{base: base, email: *email, channels: channels, actions: actions, json: *asJSON}
	if len(opts.channels) == 0 {
		for _, ent := range config.Entities {
			opts.channels = append(opts.channels, ent+"_changes")
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
it stopped. Ends with exit code 0 on SIGINT.

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

// tailer is one running tail: its HTTP client with the session cookie, and the
// resume position of each channel.
type tailer struct {
	opts     tailOptions
	password string
	client   *http.Client
	stdout   io.Writer
	stderr   io.Writer
	since    map[string]int64 // the last event id seen (or position confirmed) per channel
}

func newTailer(opts tailOptions, password string, e env) (*tailer, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("creating cookie jar: %w", err)
	}
	return &tailer{
		opts: opts, password: password, client: &http.Client{Jar: jar},
		stdout: e.stdout, stderr: e.stderr, since: map[string]int64{},
	}, nil
}

// errSessionEnded is a close with 1008: log in again.
var errSessionEnded = errors.New("the server closed the socket: session ended or missing (1008)")

// fatalError ends tail: reconnecting would not help.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func (e *fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return &fatalError{fmt.Errorf(format, args...)} }

// run logs in and follows the socket until ctx ends.
func (t *tailer) run(ctx context.Context) error {
	if err := t.login(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var attempt int
	reloggedIn := false
	for {
		established, err := t.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			attempt, reloggedIn = 0, false
		}
		switch {
		case errors.Is(err, errSessionEnded):
			if reloggedIn {
				return err
			}
			fmt.Fprintln(t.stderr, "tail: session ended; logging in again")
			if lerr := t.login(ctx); lerr != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("%w; logging in again failed: %w", err, lerr)
			}
			reloggedIn = true
		case retryable(err):
			d := jitteredBackoff(attempt)
			attempt++
			fmt.Fprintf(t.stderr, "tail: connection lost (%s); reconnecting in %s\n", termsafe.String(err.Error()), d.Round(time.Millisecond))
			if !wait(ctx, d) {
				return nil
			}
		default:
			return err
		}
	}
}

// jitteredBackoff is the delay before reconnect attempt n (0-based): uniform in
// [0, min(max, min·2ⁿ)).
func jitteredBackoff(n int) time.Duration {
	ceil := tailMaxBackoff
	if n < 5 {
		ceil = min(tailMaxBackoff, tailMinBackoff<<n)
	}
	return time.Duration(rand.Int64N(int64(ceil)))
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dialError is a handshake the server answered with an HTTP status.
type dialError struct {
	status int
	err    error
}

func (e *dialError) Error() string {
	return fmt.Sprintf("socket handshake refused with HTTP %d: %v", e.status, e.err)
}

func (e *dialError) Unwrap() error { return e.err }

// retryable reports whether err is worth a reconnect: a network error, a server
// error during the handshake, or close code 1001, 1011 or 1013.
func retryable(err error) bool {
	var de *dialError
	if errors.As(err, &de) {
		return de.status >= 500 || de.status == http.StatusTooManyRequests
	}
	var fe *fatalError
	if errors.As(err, &fe) {
		return false
	}
	switch websocket.CloseStatus(err) {
	case -1:
		return true // no close frame: the network or the process went away
	case websocket.StatusGoingAway, websocket.StatusInternalError, websocket.StatusTryAgainLater:
		return true
	}
	return false
}

// login posts the credentials; the jar keeps the session cookie.
func (t *tailer) login(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{"email": t.opts.email, "password": t.password})
	if err != nil {
		return fmt.Errorf("encoding login: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, tailHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(lctx, http.MethodPost, t.opts.base.String()+"/api/auth/login", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building login request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return loginError(resp)
	}
	if len(t.client.Jar.Cookies(t.socketHTTPURL())) == 0 {
		return errors.New("logged in, but the session cookie cannot be sent to this URL " +
			"(a Secure cookie over plain http: use https, or COOKIE_SECURE=false on the server)")
	}
	return nil
}

func loginError(resp *http.Response) error {
	var apiErr struct{ Error, Message string }
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	_ = json.Unmarshal(b, &apiErr)
	msg := apiErr.Message
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		msg += " (retry after " + ra + " s)"
	}
	return fmt.Errorf("logging in: HTTP %d %s: %s", resp.StatusCode, apiErr.Error, msg)
}

// socketHTTPURL is the socket's address in http(s) form, for the cookie jar.
func (t *tailer) socketHTTPURL() *url.URL {
	u := *t.opts.base
	u.Path += "/ws"
	return &u
}

func (t *tailer) socketURL() string {
	u := t.socketHTTPURL()
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.String()
}

// connection opens one socket and reads it until it ends. established is true
// once the server said "connected".
func (t *tailer) connection(ctx context.Context) (established bool, err error) {
	conn, err := t.dial(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(tailReadLimit)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go keepAlive(cctx, conn)
	s := &tailSession{t: t, conn: conn}
	err = s.readLoop(cctx)
	return s.established, err
}

func (t *tailer) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, tailHTTPTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, t.socketURL(), &websocket.DialOptions{
		HTTPClient:   t.client,
		Subprotocols: []string{"shopstream.batch"},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &dialError{status: resp.StatusCode, err: err}
		}
		return nil, fmt.Errorf("opening socket: %w", err)
	}
	return conn, nil
}

// keepAlive pings the server so that a silently dead connection is noticed.
func keepAlive(ctx context.Context, conn *websocket.Conn) {
	tick := time.NewTicker(tailPingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, tailPingInterval/2)
		err := conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			_ = conn.CloseNow()
			return
		}
	}
}

// tailSession is the protocol state of one socket.
type tailSession struct {
	t           *tailer
	conn        *websocket.Conn
	established bool
	pending     []subscribeReq // subscribes not answered yet, in the order sent
	live        int            // channels subscribed on this socket
	position    map[string]int64
}

type subscribeReq struct {
	channel string
	since   int64 // 0: none
}

func (s *tailSession) readLoop(ctx context.Context) error {
	for {
		_, frame, err := s.conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
				return fmt.Errorf("%w: %w", errSessionEnded, err)
			}
			return fmt.Errorf("reading socket: %w", err)
		}
		for _, msg := range bytes.Split(frame, []byte{'\n'}) {
			if len(bytes.TrimSpace(msg)) == 0 {
				continue
			}
			if err := s.handle(ctx, msg); err != nil {
				return err
			}
		}
	}
}

// serverMessage is the part of a server message tail looks at.
type serverMessage struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	Position string `json:"position"`
	ID       string `json:"id"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

func (s *tailSession) handle(ctx context.Context, msg []byte) error {
	var m serverMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return fatalf("server sent invalid JSON %q: %w", truncate(string(msg), 200), err)
	}
	switch m.Type {
	case "connected":
		s.established = true
		return s.subscribeAll(ctx)
	case "subscribed":
		return s.subscribed(m)
	case "resync_required":
		s.resync(m.Channel)
	case "error":
		return s.serverError(ctx, m)
	case "event":
		return s.t.event(m, msg)
	}
	return nil
}

func (s *tailSession) subscribeAll(ctx context.Context) error {
	s.position = map[string]int64{}
	for _, ch := range s.t.opts.channels {
		if err := s.subscribe(ctx, ch, s.t.since[ch]); err != nil {
			return err
		}
	}
	return nil
}

// subscribe asks for channel, resuming after since unless it is 0.
func (s *tailSession) subscribe(ctx context.Context, ch string, since int64) error {
	req := map[string]any{"type": "subscribe", "channel": ch}
	if s.t.opts.filter != nil {
		req["filter"] = s.t.opts.filter
	}
	if len(s.t.opts.actions) > 0 {
		req["actions"] = s.t.opts.actions
	}
	if since > 0 {
		req["since"] = strconv.FormatInt(since, 10)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fatalf("encoding subscribe: %w", err)
	}
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("subscribing to %s: %w", ch, err)
	}
	s.pending = append(s.pending, subscribeReq{channel: ch, since: since})
	return nil
}

// subscribed records the confirmed position. Without since, every event after
// it will come, so it is where to resume; with since, the replay still has to
// come, so the resume point stays where it was.
func (s *tailSession) subscribed(m serverMessage) error {
	req, ok := s.popPending()
	if !ok || req.channel != m.Channel {
		return fatalf("unexpected subscribed message for %q", m.Channel)
	}
	pos, err := strconv.ParseInt(m.Position, 10, 64)
	if err != nil {
		return fatalf("subscribed to %s at bad position %q: %w", m.Channel, m.Position, err)
	}
	s.live++
	s.position[m.Channel] = pos
	if req.since == 0 && pos > s.t.since[m.Channel] {
		s.t.since[m.Channel] = pos
	}
	return nil
}

// resync: the events after since are gone from the log; the server goes on live
// after the subscribed position.
func (s *tailSession) resync(channel string) {
	fmt.Fprintf(s.t.stderr, "tail: %s: resync_required: events since %d are no longer in the log; some were missed\n",
		termsafe.String(channel), s.t.since[channel])
	if pos := s.position[channel]; pos > s.t.since[channel] {
		s.t.since[channel] = pos
	}
}

func (s *tailSession) serverError(ctx context.Context, m serverMessage) error {
	req, ok := s.popPending()
	if !ok {
		fmt.Fprintf(s.t.stderr, "tail: server error %s: %s\n", termsafe.String(m.Code), termsafe.String(m.Message))
		return nil
	}
	if req.since > 0 && m.Code == "invalid_request" {
		// A resume the server cannot take (after a database crash, or on an
		// instance that has not read the newest events yet): go on live, as the
		// dashboard reloads, and say that something may have been missed.
		fmt.Fprintf(s.t.stderr, "tail: %s: the server refused to resume after %d (%s); going on live, some events may be missed\n",
			req.channel, req.since, termsafe.String(m.Message))
		s.t.since[req.channel] = 0 // no longer a trusted resume point
		return s.subscribe(ctx, req.channel, 0)
	}
	fmt.Fprintf(s.t.stderr, "tail: subscribing to %s failed: %s: %s\n", req.channel, termsafe.String(m.Code), termsafe.String(m.Message))
	if len(s.pending) == 0 && s.live == 0 {
		return fatalf("no channel could be subscribed")
	}
	return nil
}

func (s *tailSession) popPending() (subscribeReq, bool) {
	if len(s.pending) == 0 {
		return subscribeReq{}, false
	}
	req := s.pending[0]
	s.pending = s.pending[1:]
	return req, true
}

// event prints one event message and advances its channel's resume point.
func (t *tailer) event(m serverMessage, raw []byte) error {
	id, err := strconv.ParseInt(m.ID, 10, 64)
	if err != nil {
		return fatalf("event with bad id %q: %w", m.ID, err)
	}
	if id <= t.since[m.Channel] {
		fmt.Fprintf(t.stderr, "tail: skipping event %d on %s: already seen\n", id, termsafe.String(m.Channel))
		return nil
	}
	t.since[m.Channel] = id
	line := string(raw)
	if !t.opts.json {
		if line, err = formatEvent(raw); err != nil {
			return &fatalError{err}
		}
	}
	if _, err := fmt.Fprintln(t.stdout, termsafe.String(line)); err != nil {
		return fatalf("writing output: %w", err)
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
