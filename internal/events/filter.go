package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Event is a record as the hub fans it out: its frame, encoded once, and its row
// fields, parsed once and only when a filter needs them.
type Event struct {
	Record
	Frame []byte

	parsed   bool
	fields   map[string]json.RawMessage // the row after the change (before, for deletes)
	previous map[string]json.RawMessage // old values of changed fields (updates)
}

func (e *Event) parse() {
	if e.parsed {
		return
	}
	e.parsed = true
	_ = json.Unmarshal(e.Data, &e.fields)
	if e.Previous != nil {
		_ = json.Unmarshal(e.Previous, &e.previous)
	}
}

// Actions is a set of actions; the zero value means all.
type Actions uint8

// The actions.
const (
	ActionCreated Actions = 1 << iota
	ActionUpdated
	ActionDeleted
	ActionTruncated
)

var actionBits = map[string]Actions{"created": ActionCreated, "updated": ActionUpdated, "deleted": ActionDeleted, "truncated": ActionTruncated}

// ParseActions turns action names into a set.
func ParseActions(names []string) (Actions, error) {
	var a Actions
	for _, n := range names {
		bit, ok := actionBits[n]
		if !ok {
			return 0, fmt.Errorf("unknown action %q: want created, updated, deleted or truncated", n)
		}
		a |= bit
	}
	return a, nil
}

// Filter maps a row field to the values it may have (any of); every field must
// match. Values are canonical JSON scalars.
type Filter map[string][][]byte

// ParseFilter validates a client's filter object: each value is a JSON scalar
// (string, number, boolean, null) or a non-empty list of them.
func ParseFilter(raw map[string]json.RawMessage) (Filter, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	f := make(Filter, len(raw))
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := bytes.TrimSpace(raw[k])
		var vals []json.RawMessage
		if len(v) > 0 && v[0] == '[' {
			if err := json.Unmarshal(v, &vals); err != nil || len(vals) == 0 {
				return nil, fmt.Errorf("filter %q: want a value or a non-empty list of values", k)
			}
		} else {
			vals = []json.RawMessage{v}
		}
		for _, val := range vals {
			c, err := canonical(val)
			if err != nil {
				return nil, fmt.Errorf("filter %q: %w", k, err)
			}
			f[k] = append(f[k], c)
		}
	}
	return f, nil
}

// canonical renders a JSON scalar so that equal values compare equal as bytes:
// numbers exactly (45, 45.0 and 4.5e1 are one number, 36028797018963969 and
// ...968 are two: see canonicalNumber), strings re-encoded.
func canonical(raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '-' || isDigit(raw[0])) {
		n, err := canonicalNumber(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid value")
		}
		return n, nil // starts with - or a digit: never equal to a string's, a boolean's or null's
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid value")
	}
	switch v.(type) {
	case string, bool, nil:
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("values must be strings, numbers, booleans or null")
}

// Matches reports whether the event is delivered under the subscription. An
// update matches when the row matched before or after the change.
func (s *Subscription) Matches(ev *Event) bool {
	if s.Actions != 0 && s.Actions&actionBits[ev.Action] == 0 {
		return false
	}
	if len(s.Filter) == 0 {
		return true
	}
	if ev.Action == "truncated" {
		return true // every row of the table is gone: each filtered list must learn it
	}
	if ev.TooLarge != nil {
		return true // the row is not here to test: every filtered list must refetch it
	}
	ev.parse()
	if s.Filter.matchRow(ev.fields, nil) {
		return true
	}
	return ev.previous != nil && s.Filter.matchRow(ev.fields, ev.previous)
}

// matchRow checks the row; overlay, when given, holds older values that replace
// the row's.
func (f Filter) matchRow(row, overlay map[string]json.RawMessage) bool {
	for k, want := range f {
		v, ok := overlay[k]
		if !ok {
			if v, ok = row[k]; !ok {
				return false
			}
		}
		c, err := canonical(v)
		if err != nil {
			return false
		}
		if !containsBytes(want, c) {
			return false
		}
	}
	return true
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}
