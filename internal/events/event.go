package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/shopstream/shopstream/internal/wire"
)

// Change is one captured row: what a trigger appended in a writer's
// transaction, the rows as row_to_json rendered them (secret columns already
// removed), with the position its tick gives it.
type Change struct {
	ID       int64
	Position int64 // the tick's first position plus the change's rank in it
	Entity   string
	Action   string // created, updated, deleted, truncated
	Old      []byte // JSON object or nil
	New      []byte // JSON object or nil
	Actor    string
	At       time.Time
	// Refused, when set, says why the change is not accepted (it did not come
	// from its entity's table): Build fails with it and the sequencer skips it.
	Refused error
	// Key names the table's primary-key columns, when known: what a
	// too_large marker keeps of the row.
	Key []string
}

// Record is one row of the event log: a change with its position, secret columns
// removed and changed_fields computed. It is what every instance reads.
type Record struct {
	Position int64
	Entity   string
	Action   string
	Data     []byte // JSON object; for updates it holds "changed_fields" (but see Changed)
	Previous []byte // JSON object of the old values of changed fields; updates only
	// Changed holds the changed fields of an update whose row has a column
	// named changed_fields itself: Data keeps the row's value under that key
	// (data is the row), and the frame carries shopstream's at its top level.
	// Nil otherwise: they are in Data.
	Changed []byte
	// TooLarge, when set, marks an event that stands for a change too large
	// (or too deeply nested) to carry: Data holds only the row's key, and
	// this JSON object says why ({"reason":"size","bytes":N,"limit":M}).
	TooLarge []byte
	Actor    string
	At       time.Time
}

// Channel is the socket channel of the record's entity.
func (r *Record) Channel() string { return wire.Channel(r.Entity) }

// Columns says, per entity, which columns are secret and which are ignored.
// Names are lower case and match column names case-insensitively.
type Columns struct {
	Secret  map[string]bool // never sent
	Allowed map[string]bool // non-nil: allow-list mode, only these and the primary key are sent (Secret still wins)
	Ignored map[string]bool // a change of these alone emits no event
}

// Hidden reports whether the column name of a row whose primary key is key
// is never sent (nor may be filtered on).
func (c Columns) Hidden(name string, key []string) bool {
	return newHider(&c, key).hidden([]byte(name))
}

// hider applies Columns to the fields of one change, whose primary key is key.
// A nil hider hides nothing.
type hider struct {
	cols *Columns
	key  []string
}

func newHider(cols *Columns, key []string) *hider { return &hider{cols: cols, key: key} }

// hidden reports whether the column name (unquoted) must not be sent.
func (h *hider) hidden(name []byte) bool {
	if h == nil {
		return false
	}
	lower := lowerName(name)
	if h.cols.Secret[string(lower)] {
		return true
	}
	if h.cols.Allowed == nil || h.cols.Allowed[string(lower)] {
		return false
	}
	for _, k := range h.key {
		if k == string(name) {
			return false
		}
	}
	return true
}

// ignored reports whether a change of the column name alone emits no event.
func (h *hider) ignored(name []byte) bool { return h.cols.Ignored[string(lowerName(name))] }

// lowerName returns name in lower case: name itself when it has no upper-case
// or non-ASCII byte (the usual column name: no allocation), else a copy.
func lowerName(name []byte) []byte {
	for _, c := range name {
		if 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf {
			return bytes.ToLower(name)
		}
	}
	return name
}

// field is one member of a JSON object, in its original order: its key as it
// stands in the input (quoted, escaped) and its raw value. Both alias the input.
type field struct {
	key []byte // `"status"`
	val []byte
}

// name returns the unquoted key bytes, for lookups (m[string(b)] does not allocate).
func (f field) name() []byte {
	if bytes.IndexByte(f.key, '\\') < 0 {
		return f.key[1 : len(f.key)-1]
	}
	var s string
	_ = json.Unmarshal(f.key, &s)
	return []byte(s)
}

// parseObject splits a JSON object into its members, keeping their order. It is
// the sequencer's hot path, so it validates with scanJSON and then walks the
// bytes once instead of decoding. A row nested deeper than maxDepth still
// comes back, with errTooDeep.
func parseObject(b []byte, maxDepth int) ([]field, error) {
	depth, ok := scanJSON(b)
	if !ok {
		return nil, fmt.Errorf("row is not valid JSON")
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, fmt.Errorf("row is not a JSON object")
	}
	out := make([]field, 0, 16)
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		kEnd := skipValue(b, i) // a string: json.Valid vouched for the shape
		vStart := skipSpace(b, skipSpace(b, kEnd)+1)
		vEnd := skipValue(b, vStart)
		out = append(out, field{key: b[i:kEnd], val: b[vStart:vEnd]})
		i = skipSpace(b, vEnd)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if depth > maxDepth {
		return out, errTooDeep{depth}
	}
	return out, nil
}

// errTooDeep is a row that nests deeper than an event may.
type errTooDeep struct{ depth int }

func (e errTooDeep) Error() string { return fmt.Sprintf("row nests %d levels deep", e.depth) }

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the valid JSON value starting at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return i
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
		i++
	}
	return i
}

// writeObject appends fields as a JSON object, leaving out the hidden ones.
func writeObject(buf *bytes.Buffer, fields []field, hide *hider, extra func(buf *bytes.Buffer, empty bool)) {
	buf.WriteByte('{')
	first := true
	for _, f := range fields {
		if hide.hidden(f.name()) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.Write(f.key)
		buf.WriteByte(':')
		buf.Write(f.val)
	}
	if extra != nil {
		extra(buf, first)
	}
	buf.WriteByte('}')
}

// Limits bound what one event carries. An event beyond them is replaced by
// one marked too_large that names the row by its key (see marker).
type Limits struct {
	// MaxBytes bounds data, previous and changed fields together; 0: none.
	MaxBytes int
	// MaxDepth bounds how deeply the row's JSON nests; 0: DefaultMaxDepth.
	MaxDepth int
}

// DefaultMaxDepth is the nesting encoding/json (and so shopstream tail) reads.
const DefaultMaxDepth = 10000

// MaxActorBytes bounds an event's actor; a longer one is cut (at a character).
const MaxActorBytes = 256

// Build turns a captured change into a log record with no size limit. ok is
// false when the change emits no event: an update where nothing but ignored
// or secret columns changed.
func Build(c Change, cols Columns) (rec Record, ok bool, err error) {
	return BuildWithin(c, cols, Limits{})
}

// BuildWithin is Build under lim: a change whose event would exceed them
// becomes a too_large marker (still an event, never skipped).
func BuildWithin(c Change, cols Columns, lim Limits) (rec Record, ok bool, err error) {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	c.Actor = cutActor(c.Actor)
	defer func() { rec.Position = c.Position }()
	rec, ok, err = build(c, cols, lim.MaxDepth)
	var deep errTooDeep
	switch {
	case errors.As(err, &deep):
		return marker(c, cols, fmt.Sprintf(`{"reason":"depth","depth":%d,"limit":%d}`, deep.depth, lim.MaxDepth), lim.MaxDepth), true, nil
	case err != nil || !ok:
		return rec, ok, err
	}
	if n := len(rec.Data) + len(rec.Previous) + len(rec.Changed); lim.MaxBytes > 0 && n > lim.MaxBytes {
		return marker(c, cols, fmt.Sprintf(`{"reason":"size","bytes":%d,"limit":%d}`, n, lim.MaxBytes), lim.MaxDepth), true, nil
	}
	return rec, true, nil
}

// marker is the event of a change too large (or too deep) to carry: its
// entity, action, actor and time, and in data only the row's key columns (the
// table's primary key; "id" when it is not known), so that a dashboard can
// fetch the row. TooLarge says why.
func marker(c Change, cols Columns, why string, maxDepth int) Record {
	rec := Record{Entity: c.Entity, Action: c.Action, Actor: c.Actor, At: c.At, TooLarge: []byte(why)}
	row := c.New
	if c.Action == "deleted" {
		row = c.Old
	}
	key := c.Key
	if len(key) == 0 {
		key = []string{"id"}
	}
	var kept []field
	hide := newHider(&cols, c.Key)
	if fields, err := parseObject(row, maxDepth); err == nil || errors.As(err, new(errTooDeep)) {
		for _, f := range fields {
			if name := f.name(); slices.Contains(key, string(name)) && !hide.hidden(name) {
				kept = append(kept, f)
			}
		}
	}
	var buf bytes.Buffer
	writeObject(&buf, kept, nil, nil)
	rec.Data = buf.Bytes()
	return rec
}

// cutActor bounds an actor to MaxActorBytes, cutting at a character boundary.
func cutActor(a string) string {
	if len(a) <= MaxActorBytes {
		return a
	}
	cut := MaxActorBytes
	for cut > 0 && !utf8.RuneStart(a[cut]) {
		cut--
	}
	return a[:cut]
}

func build(c Change, cols Columns, maxDepth int) (rec Record, ok bool, err error) {
	rec = Record{Entity: c.Entity, Action: c.Action, Actor: c.Actor, At: c.At}
	if c.Refused != nil {
		return rec, false, c.Refused
	}
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
		fields, err := parseObject(row, maxDepth)
		if err != nil {
			return rec, false, err
		}
		writeObject(&buf, fields, newHider(&cols, c.Key), nil)
		rec.Data = buf.Bytes()
		return rec, true, nil
	case "updated":
		return buildUpdate(c, cols, rec, maxDepth)
	}
	return rec, false, fmt.Errorf("unknown action %q", c.Action)
}

func buildUpdate(c Change, cols Columns, rec Record, maxDepth int) (Record, bool, error) {
	oldFields, err := parseObject(c.Old, maxDepth)
	if err != nil {
		return rec, false, err
	}
	newFields, err := parseObject(c.New, maxDepth)
	if err != nil {
		return rec, false, err
	}
	var changed, previous []field
	relevant := false
	hide := newHider(&cols, c.Key)
	for i, f := range newFields {
		was, had := lookup(oldFields, i, f.key)
		if had && bytes.Equal(was, f.val) {
			continue
		}
		name := f.name()
		if hide.hidden(name) {
			continue
		}
		if !had {
			was = []byte("null")
		}
		changed = append(changed, f)
		previous = append(previous, field{f.key, was})
		if !hide.ignored(name) {
			relevant = true
		}
	}
	if !relevant {
		return rec, false, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(c.New)+64))
	if hasKey(newFields, "changed_fields") {
		writeObject(buf, newFields, hide, nil)
		var cbuf bytes.Buffer
		writeObject(&cbuf, changed, nil, nil)
		rec.Changed = cbuf.Bytes()
	} else {
		writeObject(buf, newFields, hide, func(b *bytes.Buffer, empty bool) {
			if !empty {
				b.WriteByte(',')
			}
			b.WriteString(`"changed_fields":`)
			writeObject(b, changed, nil, nil)
		})
	}
	rec.Data = buf.Bytes()
	var pbuf bytes.Buffer
	writeObject(&pbuf, previous, nil, nil)
	rec.Previous = pbuf.Bytes()
	return rec, true, nil
}

// hasKey reports whether the row has a column named name (unescaped).
func hasKey(fields []field, name string) bool {
	for _, f := range fields {
		if string(f.name()) == name {
			return true
		}
	}
	return false
}

// lookup finds key among the old row's fields, trying position i first: old and
// new rows of one table have the same columns in the same order.
func lookup(fields []field, i int, key []byte) ([]byte, bool) {
	if i < len(fields) && bytes.Equal(fields[i].key, key) {
		return fields[i].val, true
	}
	for _, f := range fields {
		if bytes.Equal(f.key, key) {
			return f.val, true
		}
	}
	return nil, false
}

// TimestampFormat is how events carry time: UTC, milliseconds, ISO-8601.
const TimestampFormat = wire.TimestampFormat

// Frame encodes the record as the socket's event message. It is computed once per
// event and shared by every socket that receives it.
func (r *Record) Frame() []byte {
	buf := bytes.NewBuffer(make([]byte, 0, len(r.Data)+len(r.Previous)+160))
	buf.WriteString(`{"type":"` + wire.TypeEvent + `","id":"`)
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
	if r.Changed != nil {
		buf.WriteString(`,"changed_fields":`)
		buf.Write(r.Changed)
	}
	if r.TooLarge != nil {
		buf.WriteString(`,"too_large":`)
		buf.Write(r.TooLarge)
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
