package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Message is what a Stream delivers: an Event or a Notice.
type Message interface{ isMessage() }

// Event is one committed row change.
type Event struct {
	ID      int64  // increasing across all channels; resume after it with Since
	Channel string // e.g. "order_changes"
	Entity  string // e.g. "order"
	Action  string // ActionCreated, ActionUpdated, ActionDeleted or ActionTruncated
	// Data is the row after the change (before it, for deleted; {} for
	// truncated), as a JSON object.
	Data json.RawMessage
	// Previous has the old values of the changed columns (updated), else nil.
	Previous json.RawMessage
	// Changed has the new values of the changed columns (updated): the
	// event's top-level changed_fields when it has them, else
	// data.changed_fields (README: "One rule for names"). Nil otherwise.
	Changed   json.RawMessage
	Actor     string    // who wrote the change; "" when unknown
	Timestamp time.Time // when the change was made
	// Raw is the message exactly as the server sent it.
	Raw json.RawMessage
}

func (Event) isMessage() {}

// Name is the event's "entity:action", e.g. "order:updated".
func (e Event) Name() string { return e.Entity + ":" + e.Action }

// NoticeKind says what a Notice is about.
type NoticeKind int

// The kinds of notice. None ends the stream.
const (
	// NoticeReconnecting: the socket was lost (Err); the next attempt is in
	// Delay.
	NoticeReconnecting NoticeKind = iota + 1
	// NoticeLoggingIn: the server ended the session (1008); the stream logs
	// in again with the credentials of the last Login.
	NoticeLoggingIn
	// NoticeResync: the events of Channel after Since are no longer in the
	// server's log (resync_required): some were missed, reload the data.
	NoticeResync
	// NoticeResumeRefused: the server refused to resume Channel after Since
	// (Code, Message); the stream goes on live and some events may be missed.
	NoticeResumeRefused
	// NoticeSubscribeFailed: the server refused to subscribe to Channel (Code,
	// Message). It is tried again on the next connection.
	NoticeSubscribeFailed
	// NoticeRevoked: the user's role may no longer read Channel (Code
	// forbidden, Message); its subscription ended, the others go on.
	NoticeRevoked
	// NoticeServerError: an error message the stream did not ask for (Code,
	// Message).
	NoticeServerError
	// NoticeDuplicate: an event ID at or below the last one delivered on
	// Channel came again and was dropped.
	NoticeDuplicate
)

// Notice is something a reader of the stream may want to report.
type Notice struct {
	Kind          NoticeKind
	Channel       string        // the channel concerned; "" for a connection notice
	Since         int64         // NoticeResync, NoticeResumeRefused: the resume point
	ID            int64         // NoticeDuplicate: the dropped event
	Code, Message string        // the server's error code and text, when it sent one
	Err           error         // NoticeReconnecting: why the socket was lost
	Delay         time.Duration // NoticeReconnecting: the wait before the next attempt
}

func (Notice) isMessage() {}

// String describes the notice in one line. The channel, codes and messages
// come from the server as they are: escape them before printing on a terminal.
func (n Notice) String() string {
	switch n.Kind {
	case NoticeReconnecting:
		return fmt.Sprintf("connection lost (%v); reconnecting in %s", n.Err, n.Delay.Round(time.Millisecond))
	case NoticeLoggingIn:
		return "session ended; logging in again"
	case NoticeResync:
		return fmt.Sprintf("%s: resync_required: events since %d are no longer in the log; some were missed", n.Channel, n.Since)
	case NoticeResumeRefused:
		return fmt.Sprintf("%s: the server refused to resume after %d (%s); going on live, some events may be missed", n.Channel, n.Since, n.Message)
	case NoticeSubscribeFailed:
		return fmt.Sprintf("subscribing to %s failed: %s: %s", n.Channel, n.Code, n.Message)
	case NoticeRevoked:
		return fmt.Sprintf("%s: subscription revoked: %s: %s", n.Channel, n.Code, n.Message)
	case NoticeServerError:
		return fmt.Sprintf("server error %s: %s", n.Code, n.Message)
	case NoticeDuplicate:
		return fmt.Sprintf("skipping event %d on %s: already seen", n.ID, n.Channel)
	}
	return fmt.Sprintf("notice %d", int(n.Kind))
}

// DecodeEvent decodes one event message as the server sends it (an Event's
// Raw, a line of a batch frame, a line of `shopstream tail --json`).
func DecodeEvent(msg []byte) (Event, error) {
	msgs, err := decodeFrame(msg)
	if err != nil {
		return Event{}, err
	}
	if len(msgs) != 1 || msgs[0].Type != TypeEvent {
		return Event{}, fmt.Errorf("not one event message: %q", truncate(string(msg), 200))
	}
	return msgs[0].event()
}

// Field is one member of a JSON object.
type Field struct {
	Name  string
	Value json.RawMessage
}

// Fields returns the members of a JSON object (an Event's Data, Previous or
// Changed) in the order the server wrote them, which is the table's column
// order. An absent or null value has none.
func Fields(obj json.RawMessage) ([]Field, error) {
	if len(obj) == 0 || string(obj) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []Field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading key: %w", err)
		}
		name, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("reading %q: %w", truncate(name, 40), err)
		}
		out = append(out, Field{Name: name, Value: val})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("reading the object's end: %w", err)
	}
	return out, nil
}

// Lookup returns the value of the first field called name.
func Lookup(fields []Field, name string) (json.RawMessage, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// serverMessage is one decoded server message: the fields of every type, the
// objects of an event kept raw.
type serverMessage struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Position  string          `json:"position"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Previous  json.RawMessage `json:"previous"`
	Changed   json.RawMessage `json:"changed_fields"`
	Actor     string          `json:"actor"`
	Timestamp string          `json:"timestamp"`

	raw []byte
}

// decodeFrame splits a text frame into its messages (several, separated by
// "\n", with BatchSubprotocol) and decodes each. It stops at the first that
// is not a JSON object.
func decodeFrame(frame []byte) ([]serverMessage, error) {
	var out []serverMessage
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m serverMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return out, fmt.Errorf("server sent invalid JSON %q: %w", truncate(string(line), 200), err)
		}
		m.raw = line
		out = append(out, m)
	}
	return out, nil
}

// event turns an event message into an Event.
func (m serverMessage) event() (Event, error) {
	id, err := strconv.ParseInt(m.ID, 10, 64)
	if err != nil || id <= 0 {
		return Event{}, fmt.Errorf("event with bad id %q", truncate(m.ID, 40))
	}
	entity, action, ok := strings.Cut(m.Event, ":")
	if !ok || entity == "" || action == "" {
		return Event{}, fmt.Errorf("event %d: bad event name %q", id, truncate(m.Event, 40))
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return Event{}, fmt.Errorf("event %d: bad timestamp: %w", id, err)
	}
	ev := Event{
		ID: id, Channel: m.Channel, Entity: entity, Action: action,
		Data: nullToNil(m.Data), Previous: nullToNil(m.Previous), Changed: nullToNil(m.Changed),
		Actor: m.Actor, Timestamp: ts, Raw: json.RawMessage(bytes.Clone(m.raw)),
	}
	if ev.Changed == nil && action == ActionUpdated && len(ev.Data) > 0 {
		var data struct {
			Changed json.RawMessage `json:"changed_fields"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			return Event{}, fmt.Errorf("event %d: data: %w", id, err)
		}
		ev.Changed = nullToNil(data.Changed)
	}
	return ev, nil
}

func nullToNil(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return bytes.Clone(v)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
