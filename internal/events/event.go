package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Change is one row of the inbox: what a trigger appended in a writer's
// transaction, the rows as row_to_json rendered them.
type Change struct {
	ID     int64
	Entity string
	Action string // created, updated, deleted, truncated
	Old    []byte // JSON object or nil
	New    []byte // JSON object or nil
	Actor  string
	At     time.Time
}

// Record is one row of the event log: a change with its position, secret columns
// removed and changed_fields computed. It is what every instance reads.
type Record struct {
	Position int64
	Entity   string
	Action   string
	Data     []byte // JSON object; for updates it holds "changed_fields"
	Previous []byte // JSON object of the old values of changed fields; updates only
	Actor    string
	At       time.Time
}

// Channel is the socket channel of the record's entity.
func (r *Record) Channel() string { return r.Entity + "_changes" }

// Columns says, per entity, which columns are secret and which are ignored.
type Columns struct {
	Secret  map[string]bool
	Ignored map[string]bool
}

// field is one key of a JSON object, in its original order, with its raw value.
type field struct {
	key string
	val json.RawMessage
}

// parseObject splits a JSON object into its fields, keeping their order.
func parseObject(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("reading row: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("row is not a JSON object")
	}
	var out []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading row key: %w", err)
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("reading row value: %w", err)
		}
		out = append(out, field{key, val})
	}
	return out, nil
}

// writeObject appends fields as a JSON object, leaving out secret keys.
func writeObject(buf *bytes.Buffer, fields []field, secret map[string]bool, extra func(buf *bytes.Buffer, empty bool)) {
	buf.WriteByte('{')
	first := true
	for _, f := range fields {
		if secret[f.key] {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeKey(buf, f.key)
		buf.Write(f.val)
	}
	if extra != nil {
		extra(buf, first)
	}
	buf.WriteByte('}')
}

func writeKey(buf *bytes.Buffer, key string) {
	k, _ := json.Marshal(key)
	buf.Write(k)
	buf.WriteByte(':')
}

// Build turns an inbox change into a log record. ok is false when the change
// emits no event: an update where nothing but ignored or secret columns changed.
func Build(c Change, cols Columns) (rec Record, ok bool, err error) {
	rec = Record{Entity: c.Entity, Action: c.Action, Actor: c.Actor, At: c.At}
	var buf bytes.Buffer
	switch c.Action {
	case "truncated":
		rec.Data = []byte("{}")
		return rec, true, nil
	case "created", "deleted":
		row := c.New
		if c.Action == "deleted" {
			row = c.Old
		}
		fields, err := parseObject(row)
		if err != nil {
			return rec, false, err
		}
		writeObject(&buf, fields, cols.Secret, nil)
		rec.Data = buf.Bytes()
		return rec, true, nil
	case "updated":
		return buildUpdate(c, cols, rec)
	}
	return rec, false, fmt.Errorf("unknown action %q", c.Action)
}

func buildUpdate(c Change, cols Columns, rec Record) (Record, bool, error) {
	oldFields, err := parseObject(c.Old)
	if err != nil {
		return rec, false, err
	}
	newFields, err := parseObject(c.New)
	if err != nil {
		return rec, false, err
	}
	old := make(map[string]json.RawMessage, len(oldFields))
	for _, f := range oldFields {
		old[f.key] = f.val
	}
	var changed, previous []field
	relevant := false
	for _, f := range newFields {
		was, had := old[f.key]
		if had && bytes.Equal(was, f.val) {
			continue
		}
		if cols.Secret[f.key] {
			continue
		}
		if !had {
			was = json.RawMessage("null")
		}
		changed = append(changed, f)
		previous = append(previous, field{f.key, was})
		if !cols.Ignored[f.key] {
			relevant = true
		}
	}
	if !relevant {
		return rec, false, nil
	}
	var buf bytes.Buffer
	writeObject(&buf, newFields, cols.Secret, func(b *bytes.Buffer, empty bool) {
		if !empty {
			b.WriteByte(',')
		}
		writeKey(b, "changed_fields")
		writeObject(b, changed, nil, nil)
	})
	rec.Data = buf.Bytes()
	var pbuf bytes.Buffer
	writeObject(&pbuf, previous, nil, nil)
	rec.Previous = pbuf.Bytes()
	return rec, true, nil
}

// TimestampFormat is how events carry time: UTC, milliseconds, ISO-8601.
const TimestampFormat = "2006-01-02T15:04:05.000Z"

// Frame encodes the record as the socket's event message. It is computed once per
// event and shared by every socket that receives it.
func (r *Record) Frame() []byte {
	buf := bytes.NewBuffer(make([]byte, 0, len(r.Data)+len(r.Previous)+160))
	buf.WriteString(`{"type":"event","id":"`)
	buf.WriteString(strconv.FormatInt(r.Position, 10))
	buf.WriteString(`","channel":"`)
	buf.WriteString(r.Channel())
	buf.WriteString(`","event":"`)
	buf.WriteString(r.Entity)
	buf.WriteByte(':')
	buf.WriteString(r.Action)
	buf.WriteString(`","data":`)
	buf.Write(r.Data)
	if r.Previous != nil {
		buf.WriteString(`,"previous":`)
		buf.Write(r.Previous)
	}
	if r.Actor != "" {
		buf.WriteString(`,"actor":`)
		a, _ := json.Marshal(r.Actor)
		buf.Write(a)
	}
	buf.WriteString(`,"timestamp":"`)
	buf.WriteString(r.At.UTC().Format(TimestampFormat))
	buf.WriteString(`"}`)
	return buf.Bytes()
}
