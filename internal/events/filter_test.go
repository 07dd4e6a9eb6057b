package events

import (
	"encoding/json"
	"reflect"
	"testing"
)

// parseFilterJSON decodes a filter object as the socket does and parses it.
func parseFilterJSON(tb testing.TB, s string) (Filter, error) {
	tb.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		tb.Fatalf("test filter %s: %v", s, err)
	}
	return ParseFilter(raw)
}

func mustFilter(tb testing.TB, s string) Filter {
	tb.Helper()
	f, err := parseFilterJSON(tb, s)
	if err != nil {
		tb.Fatalf("ParseFilter(%s): %v", s, err)
	}
	return f
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string][]string // nil: want a nil filter
		wantErr bool
	}{
		{in: `{}`},
		{in: `null`},
		{in: `{"status":"pending"}`, want: map[string][]string{"status": {`"pending"`}}},
		{in: `{"customer_id":45}`, want: map[string][]string{"customer_id": {`45e0`}}},
		{in: `{"customer_id":45.0}`, want: map[string][]string{"customer_id": {`45e0`}}},
		{in: `{"customer_id":4.5e1}`, want: map[string][]string{"customer_id": {`45e0`}}},
		{in: `{"total":22.50}`, want: map[string][]string{"total": {`225e-1`}}},
		{in: `{"id":36028797018963969}`, want: map[string][]string{"id": {`36028797018963969e0`}}},
		{in: `{"total":1e400}`, want: map[string][]string{"total": {`1e400`}}},
		{in: `{"gift":true,"notes":null}`, want: map[string][]string{"gift": {`true`}, "notes": {`null`}}},
		{in: `{"name":"\u0041<b>"}`, want: map[string][]string{"name": {`"A\u003cb\u003e"`}}},
		{in: `{"status":["pending","paid"]}`, want: map[string][]string{"status": {`"pending"`, `"paid"`}}},
		{in: `{"status": [ "pending" , 1 , false , null ] }`, want: map[string][]string{"status": {`"pending"`, `1e0`, `false`, `null`}}},
		{in: `{"status":"pending","region":["eu","us"]}`, want: map[string][]string{"status": {`"pending"`}, "region": {`"eu"`, `"us"`}}},
		{in: `{"status":[]}`, wantErr: true},
		{in: `{"status":{"eq":"pending"}}`, wantErr: true},
		{in: `{"status":{}}`, wantErr: true},
		{in: `{"status":[["pending"]]}`, wantErr: true},
		{in: `{"status":["pending",["paid"]]}`, wantErr: true},
		{in: `{"status":[{"a":1}]}`, wantErr: true},
		{in: `{"ok":"fine","bad":[]}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := parseFilterJSON(t, tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %q", f)
				}
				if f != nil {
					t.Errorf("filter %q returned with error", f)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilter: %v", err)
			}
			if tt.want == nil {
				if f != nil {
					t.Fatalf("want nil filter, got %q", f)
				}
				return
			}
			got := map[string][]string{}
			for k, vals := range f {
				for _, v := range vals {
					got[k] = append(got[k], string(v))
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseFilterRawValues covers values a decoder would never hand over.
func TestParseFilterRawValues(t *testing.T) {
	for _, raw := range []map[string]json.RawMessage{
		{"a": nil},
		{"a": json.RawMessage(" ")},
		{"a": json.RawMessage("[")},
		{"a": json.RawMessage("[1,")},
		{"a": json.RawMessage(`"unterminated`)},
		{"a": json.RawMessage(`01`)},
		{"a": json.RawMessage(`1.`)},
		{"a": json.RawMessage(`-`)},
		{"a": json.RawMessage(`1e`)},
		{"a": json.RawMessage(`1e+`)},
		{"a": json.RawMessage(`.5`)},
		{"a": json.RawMessage(`1x`)},
	} {
		if f, err := ParseFilter(raw); err == nil {
			t.Errorf("ParseFilter(%q) = %q, want error", raw, f)
		}
	}
}

func TestParseActions(t *testing.T) {
	tests := []struct {
		in      []string
		want    Actions
		wantErr bool
	}{
		{in: nil, want: 0},
		{in: []string{}, want: 0},
		{in: []string{"created"}, want: ActionCreated},
		{in: []string{"updated"}, want: ActionUpdated},
		{in: []string{"deleted"}, want: ActionDeleted},
		{in: []string{"truncated"}, want: ActionTruncated},
		{in: []string{"updated", "deleted"}, want: ActionUpdated | ActionDeleted},
		{in: []string{"created", "created"}, want: ActionCreated},
		{in: []string{"created", "updated", "deleted", "truncated"}, want: ActionCreated | ActionUpdated | ActionDeleted | ActionTruncated},
		{in: []string{"Created"}, wantErr: true},
		{in: []string{""}, wantErr: true},
		{in: []string{"created", "upserted"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseActions(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseActions(%q): err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseActions(%q) = %b, want %b", tt.in, got, tt.want)
		}
	}
}

func TestSubscriptionMatches(t *testing.T) {
	order := `{"id":7,"status":"pending","customer_id":45,"total":22.50,"region":"eu","ref":"45","notes":null,"password_hash":"h"}`
	created := mustBuild(t, "created", "", order)
	deleted := mustBuild(t, "deleted", order, "")
	truncated := mustBuild(t, "truncated", "", "")
	// The order leaves the "pending" list.
	shipped := mustBuild(t, "updated",
		`{"id":7,"status":"pending","region":"eu","total":22.50}`,
		`{"id":7,"status":"shipped","region":"eu","total":22.50}`)
	// Only the total changes; status stays pending.
	repriced := mustBuild(t, "updated",
		`{"id":7,"status":"pending","region":"eu","total":10}`,
		`{"id":7,"status":"pending","region":"eu","total":20}`)
	// Status and region change together: the row was pending/us, is shipped/eu.
	moved := mustBuild(t, "updated",
		`{"id":7,"status":"pending","region":"us"}`,
		`{"id":7,"status":"shipped","region":"eu"}`)
	// A column that appears with the update: before, it was absent (null).
	tracked := mustBuild(t, "updated",
		`{"id":7,"status":"shipped"}`,
		`{"id":7,"status":"shipped","carrier":"ups"}`)

	tests := []struct {
		name    string
		filter  string // "" for none
		actions Actions
		rec     Record
		want    bool
	}{
		{"no filter, no actions", "", 0, created, true},
		{"equality match", `{"status":"pending"}`, 0, created, true},
		{"equality mismatch", `{"status":"paid"}`, 0, created, false},
		{"any-of list match", `{"status":["paid","pending"]}`, 0, created, true},
		{"any-of list mismatch", `{"status":["paid","shipped"]}`, 0, created, false},
		{"number 45 vs 45", `{"customer_id":45}`, 0, created, true},
		{"number 45.0 vs 45", `{"customer_id":45.0}`, 0, created, true},
		{"number 4.5e1 vs 45", `{"customer_id":4.5e1}`, 0, created, true},
		{"number 22.5 vs 22.50", `{"total":22.5}`, 0, created, true},
		{"string 45 vs number 45", `{"customer_id":"45"}`, 0, created, false},
		{"number 45 vs string 45", `{"ref":45}`, 0, created, false},
		{"string 45 vs string 45", `{"ref":"45"}`, 0, created, true},
		{"null matches null", `{"notes":null}`, 0, created, true},
		{"null does not match missing", `{"warehouse":null}`, 0, created, false},
		{"all fields match", `{"status":"pending","region":"eu","customer_id":[1,45]}`, 0, created, true},
		{"one field of several fails", `{"status":"pending","region":"us"}`, 0, created, false},
		{"missing field", `{"warehouse":"x"}`, 0, created, false},
		{"secret field is never visible", `{"password_hash":"h"}`, 0, created, false},
		{"actions exclude", "", ActionUpdated | ActionDeleted, created, false},
		{"actions include", "", ActionCreated | ActionUpdated, created, true},
		{"actions include, filter matches", `{"status":"pending"}`, ActionCreated, created, true},
		{"actions include, filter fails", `{"status":"paid"}`, ActionCreated, created, false},
		{"actions exclude, filter matches", `{"status":"pending"}`, ActionDeleted, created, false},
		{"deleted matches the old row", `{"status":"pending"}`, 0, deleted, true},
		{"deleted mismatch", `{"status":"paid"}`, 0, deleted, false},
		{"truncated matches any filter", `{"status":"paid"}`, 0, truncated, true},
		{"truncated matches a missing field filter", `{"warehouse":"x"}`, 0, truncated, true},
		{"truncated narrowed out by actions", `{"status":"pending"}`, ActionCreated | ActionUpdated, truncated, false},
		{"truncated with its action", "", ActionTruncated, truncated, true},
		{"update matched before, not after", `{"status":"pending"}`, 0, shipped, true},
		{"update matched after, not before", `{"status":"shipped"}`, 0, shipped, true},
		{"update matched neither", `{"status":"cancelled"}`, 0, shipped, false},
		{"update matched before, narrowed by actions", `{"status":"pending"}`, ActionCreated, shipped, false},
		{"update of an unfiltered field, row matches", `{"status":"pending"}`, 0, repriced, true},
		{"update of an unfiltered field, row does not match", `{"status":"shipped"}`, 0, repriced, false},
		{"update filter on the old value of the changed field", `{"total":10}`, 0, repriced, true},
		{"update filter on the new value of the changed field", `{"total":20.0}`, 0, repriced, true},
		{"update: before is pending/us, after shipped/eu", `{"status":"pending","region":"eu"}`, 0, moved, false},
		{"update: before row matches whole filter", `{"status":"pending","region":"us"}`, 0, moved, true},
		{"update: after row matches whole filter", `{"status":"shipped","region":"eu"}`, 0, moved, true},
		{"update: field was absent before, null matches", `{"carrier":null}`, 0, tracked, true},
		{"update: field present after", `{"carrier":"ups"}`, 0, tracked, true},
		{"update: changed_fields is not a row field", `{"changed_fields":"x"}`, 0, shipped, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := &Subscription{Actions: tt.actions}
			if tt.filter != "" {
				sub.Filter = mustFilter(t, tt.filter)
			}
			ev := &Event{Record: tt.rec, Frame: tt.rec.Frame()}
			if got := sub.Matches(ev); got != tt.want {
				t.Errorf("Matches = %v, want %v\nfilter %s\ndata %s\nprevious %s", got, tt.want, tt.filter, tt.rec.Data, tt.rec.Previous)
			}
			// The parsed row is cached on the event; a second look gives the same answer.
			if got := sub.Matches(ev); got != tt.want {
				t.Errorf("second Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzFilter(f *testing.F) {
	f.Add([]byte(`{"status":"pending"}`), []byte(`{"id":7,"status":"pending","total":22.50}`), []byte(`{"id":7,"status":"shipped","total":22.50}`))
	f.Add([]byte(`{"customer_id":[45,46.0,"47"]}`), []byte(`{"customer_id":45}`), []byte(`{"customer_id":46}`))
	f.Add([]byte(`{"a":null,"b":true}`), []byte(`{"a":null,"b":true,"c":{"d":[1]}}`), []byte(`{"a":1}`))
	f.Add([]byte(`{"a":[]}`), []byte(`{}`), []byte(`{}`))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":1}}`), []byte(`not json`))
	f.Add([]byte(`{"a":1e400}`), []byte(`{"a":1e400}`), []byte(`{"a":-1e400}`))
	f.Add([]byte(`{"changed_fields":1}`), []byte(`{"x":1}`), []byte(`{"x":2,"changed_fields":1}`))
	f.Fuzz(func(t *testing.T, filter, old, new []byte) {
		var raw map[string]json.RawMessage
		if json.Unmarshal(filter, &raw) != nil {
			return
		}
		flt, err := ParseFilter(raw)
		if err != nil {
			return
		}
		var recs []Record
		for _, c := range []Change{
			{Entity: "orders", Action: "created", New: new},
			{Entity: "orders", Action: "deleted", Old: old},
			{Entity: "orders", Action: "updated", Old: old, New: new},
			{Entity: "orders", Action: "truncated"},
		} {
			if rec, ok, err := Build(c, testCols); err == nil && ok {
				recs = append(recs, rec)
			}
		}
		// Rows the hub would never see: raw, possibly invalid, data.
		recs = append(recs, Record{Entity: "orders", Action: "updated", Data: new, Previous: old},
			Record{Entity: "orders", Action: "created", Data: old})
		for _, rec := range recs {
			for _, actions := range []Actions{0, ActionUpdated, ActionCreated | ActionTruncated} {
				sub := &Subscription{Filter: flt, Actions: actions}
				ev := &Event{Record: rec}
				first := sub.Matches(ev)
				if sub.Matches(ev) != first {
					t.Fatalf("Matches changed its answer on a second call")
				}
				if len(flt) == 0 && actions == 0 && !first {
					t.Fatalf("empty subscription refused %s", rec.Data)
				}
			}
		}
	})
}
