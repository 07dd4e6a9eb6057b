package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// testCols is the column policy the tests use for every entity.
var testCols = Columns{
	Secret:  map[string]bool{"password_hash": true, "api_token": true},
	Ignored: map[string]bool{"updated_at": true, "last_seen_at": true},
}

func TestBuild(t *testing.T) {
	at := time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		name     string
		action   string
		old, new string
		wantOK   bool
		wantErr  bool
		data     string // exact bytes; "" means nil
		previous string // exact bytes; "" means nil
	}{
		{
			name:   "created keeps order and bytes, drops secrets",
			action: "created",
			new:    `{"id":7,"email":"a@x.io","password_hash":"$argon2id$v=19$x","total":22.50,"meta":{"tags": ["a", "b"], "n": null},"api_token":"tok","updated_at":"2026-01-25T10:30:00"}`,
			wantOK: true,
			data:   `{"id":7,"email":"a@x.io","total":22.50,"meta":{"tags": ["a", "b"], "n": null},"updated_at":"2026-01-25T10:30:00"}`,
		},
		{
			name:   "created with only secret columns gives an empty object",
			action: "created",
			new:    `{"password_hash":"h","api_token":"t"}`,
			wantOK: true,
			data:   `{}`,
		},
		{
			name:   "deleted takes the old row",
			action: "deleted",
			old:    `{"id":7,"status":"cancelled","password_hash":"h"}`,
			new:    `{"ignored":"new row is not used"}`,
			wantOK: true,
			data:   `{"id":7,"status":"cancelled"}`,
		},
		{
			name:   "truncated",
			action: "truncated",
			wantOK: true,
			data:   `{}`,
		},
		{
			name:     "updated: changed_fields last, ignored column rides along",
			action:   "updated",
			old:      `{"id":7,"status":"pending","total":22.50,"password_hash":"h1","updated_at":"t1"}`,
			new:      `{"id":7,"status":"shipped","total":22.50,"password_hash":"h2","updated_at":"t2"}`,
			wantOK:   true,
			data:     `{"id":7,"status":"shipped","total":22.50,"updated_at":"t2","changed_fields":{"status":"shipped","updated_at":"t2"}}`,
			previous: `{"status":"pending","updated_at":"t1"}`,
		},
		{
			name:     "updated: key order of the row is kept",
			action:   "updated",
			old:      `{"zeta":1,"alpha":"a","mid":[1,2]}`,
			new:      `{"zeta":2,"alpha":"b","mid":[1,2]}`,
			wantOK:   true,
			data:     `{"zeta":2,"alpha":"b","mid":[1,2],"changed_fields":{"zeta":2,"alpha":"b"}}`,
			previous: `{"zeta":1,"alpha":"a"}`,
		},
		{
			name:     "updated: numbers and nested values byte for byte",
			action:   "updated",
			old:      `{"id":7,"total":19.90,"items":[{"sku":"A-1","qty":1}],"meta":{"gift": false}}`,
			new:      `{"id":7,"total":22.50,"items":[{"sku":"A-1","qty":1},{"sku":"B-2","qty":2}],"meta":{"gift": true, "note": "x\"y"}}`,
			wantOK:   true,
			data:     `{"id":7,"total":22.50,"items":[{"sku":"A-1","qty":1},{"sku":"B-2","qty":2}],"meta":{"gift": true, "note": "x\"y"},"changed_fields":{"total":22.50,"items":[{"sku":"A-1","qty":1},{"sku":"B-2","qty":2}],"meta":{"gift": true, "note": "x\"y"}}}`,
			previous: `{"total":19.90,"items":[{"sku":"A-1","qty":1}],"meta":{"gift": false}}`,
		},
		{
			name:     "updated: 22.5 to 22.50 is a change of the rendered value",
			action:   "updated",
			old:      `{"id":7,"total":22.5}`,
			new:      `{"id":7,"total":22.50}`,
			wantOK:   true,
			data:     `{"id":7,"total":22.50,"changed_fields":{"total":22.50}}`,
			previous: `{"total":22.5}`,
		},
		{
			name:     "updated: column new in the row has previous null",
			action:   "updated",
			old:      `{"id":7,"status":"pending"}`,
			new:      `{"id":7,"status":"pending","tracking":"1Z999"}`,
			wantOK:   true,
			data:     `{"id":7,"status":"pending","tracking":"1Z999","changed_fields":{"tracking":"1Z999"}}`,
			previous: `{"tracking":null}`,
		},
		{
			name:     "updated: secret column changed with a real one is hidden everywhere",
			action:   "updated",
			old:      `{"id":1,"email":"a@x.io","password_hash":"h1","api_token":"t1"}`,
			new:      `{"id":1,"email":"b@x.io","password_hash":"h2","api_token":"t2"}`,
			wantOK:   true,
			data:     `{"id":1,"email":"b@x.io","changed_fields":{"email":"b@x.io"}}`,
			previous: `{"email":"a@x.io"}`,
		},
		{
			name:     "updated: secret column new in the row is hidden",
			action:   "updated",
			old:      `{"id":1,"email":"a@x.io"}`,
			new:      `{"id":1,"email":"b@x.io","api_token":"t"}`,
			wantOK:   true,
			data:     `{"id":1,"email":"b@x.io","changed_fields":{"email":"b@x.io"}}`,
			previous: `{"email":"a@x.io"}`,
		},
		{
			name:   "updated: only ignored columns",
			action: "updated",
			old:    `{"id":1,"updated_at":"t1","last_seen_at":"s1"}`,
			new:    `{"id":1,"updated_at":"t2","last_seen_at":"s2"}`,
		},
		{
			name:   "updated: only secret columns",
			action: "updated",
			old:    `{"id":1,"password_hash":"h1"}`,
			new:    `{"id":1,"password_hash":"h2"}`,
		},
		{
			name:   "updated: secret and ignored columns only",
			action: "updated",
			old:    `{"id":1,"password_hash":"h1","updated_at":"t1"}`,
			new:    `{"id":1,"password_hash":"h2","updated_at":"t2"}`,
		},
		{
			name:   "updated: nothing changed",
			action: "updated",
			old:    `{"id":1,"status":"pending"}`,
			new:    `{"id":1,"status":"pending"}`,
		},
		{
			name:   "updated: column dropped from the new row is no change",
			action: "updated",
			old:    `{"id":1,"status":"pending","legacy":5}`,
			new:    `{"id":1,"status":"pending"}`,
		},
		{name: "created: not JSON", action: "created", new: `not json`, wantErr: true},
		{name: "created: array row", action: "created", new: `[1,2]`, wantErr: true},
		{name: "created: missing value", action: "created", new: `{"a":}`, wantErr: true},
		{name: "created: nil row", action: "created", wantErr: true},
		{name: "deleted: nil old row", action: "deleted", new: `{"id":1}`, wantErr: true},
		{name: "updated: bad old row", action: "updated", old: `{"id":`, new: `{"id":1}`, wantErr: true},
		{name: "updated: bad new row", action: "updated", old: `{"id":1}`, new: `"str"`, wantErr: true},
		{name: "updated: non-string key", action: "updated", old: `{"id":1}`, new: `{1:2}`, wantErr: true},
		{name: "unknown action", action: "upserted", new: `{"id":1}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Change{ID: 99, Entity: "orders", Action: tt.action, Actor: "admin@shop.io", At: at}
			if tt.old != "" {
				c.Old = []byte(tt.old)
			}
			if tt.new != "" {
				c.New = []byte(tt.new)
			}
			rec, ok, err := Build(c, testCols)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Build: want error, got ok=%v data=%s", ok, rec.Data)
				}
				if ok {
					t.Fatalf("Build: ok=true with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (data=%s)", ok, tt.wantOK, rec.Data)
			}
			if !ok {
				return
			}
			if rec.Entity != "orders" || rec.Action != tt.action || rec.Actor != "admin@shop.io" || !rec.At.Equal(at) || rec.Position != 0 {
				t.Errorf("record header = %+v", rec)
			}
			if string(rec.Data) != tt.data {
				t.Errorf("data:\n got %s\nwant %s", rec.Data, tt.data)
			}
			if tt.previous == "" {
				if rec.Previous != nil {
					t.Errorf("previous = %s, want nil", rec.Previous)
				}
			} else if string(rec.Previous) != tt.previous {
				t.Errorf("previous:\n got %s\nwant %s", rec.Previous, tt.previous)
			}
			if !json.Valid(rec.Data) {
				t.Errorf("data is not valid JSON: %s", rec.Data)
			}
		})
	}
}

// TestBuildNilColumns checks that an entity without a column policy keeps every column.
func TestBuildNilColumns(t *testing.T) {
	rec, ok, err := Build(Change{Entity: "products", Action: "updated",
		Old: []byte(`{"id":1,"updated_at":"t1","password_hash":"a"}`),
		New: []byte(`{"id":1,"updated_at":"t2","password_hash":"b"}`)}, Columns{})
	if err != nil || !ok {
		t.Fatalf("Build: ok=%v err=%v", ok, err)
	}
	want := `{"id":1,"updated_at":"t2","password_hash":"b","changed_fields":{"updated_at":"t2","password_hash":"b"}}`
	if string(rec.Data) != want {
		t.Errorf("data:\n got %s\nwant %s", rec.Data, want)
	}
	if string(rec.Previous) != `{"updated_at":"t1","password_hash":"a"}` {
		t.Errorf("previous = %s", rec.Previous)
	}
}

func TestRecordFrame(t *testing.T) {
	cest := time.FixedZone("CEST", 2*60*60)
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{
			name: "update with actor",
			rec: Record{
				Position: 1042,
				Entity:   "orders",
				Action:   "updated",
				Data:     []byte(`{"id":7,"status":"shipped","changed_fields":{"status":"shipped"}}`),
				Previous: []byte(`{"status":"pending"}`),
				Actor:    "admin@shop.io",
				At:       time.Date(2026, 1, 25, 12, 30, 0, 0, cest),
			},
			want: `{"type":"event","id":"1042","channel":"orders_changes","event":"orders:updated",` +
				`"data":{"id":7,"status":"shipped","changed_fields":{"status":"shipped"}},` +
				`"previous":{"status":"pending"},"actor":"admin@shop.io","timestamp":"2026-01-25T10:30:00.000Z"}`,
		},
		{
			name: "create without actor",
			rec: Record{
				Position: 1,
				Entity:   "products",
				Action:   "created",
				Data:     []byte(`{"id":3,"price":22.50}`),
				At:       time.Date(2026, 1, 25, 12, 30, 0, 123999999, cest),
			},
			want: `{"type":"event","id":"1","channel":"products_changes","event":"products:created",` +
				`"data":{"id":3,"price":22.50},"timestamp":"2026-01-25T10:30:00.123Z"}`,
		},
		{
			name: "actor needing escapes",
			rec: Record{
				Position: 5,
				Entity:   "users",
				Action:   "deleted",
				Data:     []byte(`{"id":3}`),
				Actor:    "o\"neil\n<x>",
				At:       time.Date(2025, 12, 31, 23, 59, 59, 999000000, time.UTC),
			},
			want: `{"type":"event","id":"5","channel":"users_changes","event":"users:deleted",` +
				`"data":{"id":3},"actor":"o\"neil\n\u003cx\u003e","timestamp":"2025-12-31T23:59:59.999Z"}`,
		},
		{
			name: "truncated",
			rec: Record{
				Position: 9,
				Entity:   "orders",
				Action:   "truncated",
				Data:     []byte(`{}`),
				At:       time.Date(2026, 1, 1, 1, 0, 0, 0, cest),
			},
			want: `{"type":"event","id":"9","channel":"orders_changes","event":"orders:truncated",` +
				`"data":{},"timestamp":"2025-12-31T23:00:00.000Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rec.Frame()
			if string(got) != tt.want {
				t.Errorf("Frame:\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("Frame is not valid JSON")
			}
		})
	}
}

// TestBuildFrameRoundTrip builds an update and checks its frame decodes to the
// expected message.
func TestBuildFrameRoundTrip(t *testing.T) {
	rec, ok, err := Build(Change{Entity: "orders", Action: "updated", Actor: "ops",
		Old: []byte(`{"id":7,"status":"pending","password_hash":"x"}`),
		New: []byte(`{"id":7,"status":"shipped","password_hash":"y"}`),
		At:  time.Date(2026, 1, 25, 5, 30, 0, 0, time.FixedZone("EST", -5*60*60))}, testCols)
	if err != nil || !ok {
		t.Fatalf("Build: ok=%v err=%v", ok, err)
	}
	rec.Position = 77
	want := `{"type":"event","id":"77","channel":"orders_changes","event":"orders:updated",` +
		`"data":{"id":7,"status":"shipped","changed_fields":{"status":"shipped"}},` +
		`"previous":{"status":"pending"},"actor":"ops","timestamp":"2026-01-25T10:30:00.000Z"}`
	if got := rec.Frame(); string(got) != want {
		t.Errorf("Frame:\n got %s\nwant %s", got, want)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add(uint8(0), []byte(nil), []byte(`{"id":7,"email":"a@x.io","password_hash":"h","total":22.50,"meta":{"tags": ["a"]}}`))
	f.Add(uint8(1), []byte(`{"id":7,"status":"pending","total":22.50,"updated_at":"t1"}`), []byte(`{"id":7,"status":"shipped","total":22.50,"updated_at":"t2"}`))
	f.Add(uint8(1), []byte(`{"id":1,"password_hash":"a","api_token":"b"}`), []byte(`{"id":1,"password_hash":"c","api_token":"d"}`))
	f.Add(uint8(1), []byte(`{"id":1,"updated_at":"a"}`), []byte(`{"id":1,"updated_at":"b","new_col":[1,{"x":null}]}`))
	f.Add(uint8(1), []byte(`{"id":1}`), []byte(`{"id":1,"changed_fields":"user column","pass\u0077ord_hash":"z"}`))
	f.Add(uint8(2), []byte(`{"id":3,"name":"Widget","price":9.99,"tags":["a","b"]}`), []byte(nil))
	f.Add(uint8(3), []byte(nil), []byte(nil))
	f.Add(uint8(1), []byte(`{"a":1,"a":2}`), []byte(`{"a":3,"a":3,"password_hash":1,"password_hash":2}`))
	f.Add(uint8(0), []byte(nil), []byte(`{"na\"me":"\u00e9","<b>":"&","k":-0.0e+10}`))
	f.Add(uint8(1), []byte(`{"ID":1,"Password_Hash":"a","STATUS":"x"}`), []byte(`{"ID":1,"Password_Hash":"b","STATUS":"y","Total":2}`))
	f.Add(uint8(0), []byte(nil), []byte(`{"id":2,"API_TOKEN":"t","Status":"s","email":"e"}`))
	actions := []string{"created", "updated", "deleted", "truncated"}
	f.Fuzz(func(t *testing.T, act uint8, old, new []byte) {
		c := Change{Entity: "orders", Action: actions[int(act)%len(actions)], Old: old, New: new,
			Actor: "fuzz", At: time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)}
		checkAllowList(t, c)
		rec, ok, err := Build(c, testCols)
		if err != nil {
			if ok {
				t.Fatalf("ok with error %v", err)
			}
			return
		}
		if !ok {
			if c.Action != "updated" {
				t.Fatalf("%s change dropped", c.Action)
			}
			return
		}
		if !json.Valid(rec.Data) {
			t.Fatalf("data is not valid JSON: %q", rec.Data)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(rec.Data, &top); err != nil {
			t.Fatalf("data is not an object: %v: %q", err, rec.Data)
		}
		checkNoSecrets(t, "data", top)
		if c.Action == "updated" {
			var changed, prev map[string]json.RawMessage
			// shopstream's changed fields are in data, unless the row has a
			// column of that name: data keeps the column, Changed holds them.
			where := top["changed_fields"]
			if rec.Changed != nil {
				where = rec.Changed
				var row map[string]json.RawMessage
				if err := json.Unmarshal(c.New, &row); err == nil && string(row["changed_fields"]) != string(top["changed_fields"]) {
					t.Fatalf("the row's changed_fields column %s became %s in data", row["changed_fields"], top["changed_fields"])
				}
			}
			if err := json.Unmarshal(where, &changed); err != nil {
				t.Fatalf("changed_fields: %v: %q / %q", err, rec.Data, rec.Changed)
			}
			if len(changed) == 0 {
				t.Fatalf("update with no changed_fields: %q", rec.Data)
			}
			checkNoSecrets(t, "changed_fields", changed)
			if !json.Valid(rec.Previous) {
				t.Fatalf("previous is not valid JSON: %q", rec.Previous)
			}
			if err := json.Unmarshal(rec.Previous, &prev); err != nil {
				t.Fatalf("previous is not an object: %v", err)
			}
			checkNoSecrets(t, "previous", prev)
			for k := range changed {
				if _, ok := prev[k]; !ok {
					t.Fatalf("changed field %q has no previous value", k)
				}
			}
		} else if rec.Previous != nil {
			t.Fatalf("%s has previous %q", c.Action, rec.Previous)
		}
		if fr := rec.Frame(); !json.Valid(fr) {
			t.Fatalf("frame is not valid JSON: %q", fr)
		}
	})
}

func checkNoSecrets(t *testing.T, where string, obj map[string]json.RawMessage) {
	t.Helper()
	for k := range obj {
		if testCols.Secret[strings.ToLower(k)] {
			t.Fatalf("secret key %q in %s", k, where)
		}
	}
}

// allowCols is testCols in allow-list mode.
var allowCols = Columns{Secret: testCols.Secret, Ignored: testCols.Ignored,
	Allowed: map[string]bool{"status": true, "total": true, "api_token": true}}

// checkAllowList builds c in allow-list mode: no key but the listed ones (in
// any case) and the primary key id leaves, and never a secret one.
func checkAllowList(t *testing.T, c Change) {
	t.Helper()
	c.Key = []string{"id"}
	rec, ok, err := Build(c, allowCols)
	if err != nil || !ok {
		return
	}
	for where, raw := range map[string][]byte{"data": rec.Data, "changed": rec.Changed, "previous": rec.Previous} {
		var obj map[string]json.RawMessage
		if len(raw) == 0 || json.Unmarshal(raw, &obj) != nil {
			continue
		}
		for k, v := range obj {
			if where == "data" && k == "changed_fields" && rec.Changed == nil {
				var inner map[string]json.RawMessage
				if json.Unmarshal(v, &inner) == nil {
					for ik := range inner {
						checkAllowed(t, "changed_fields", ik)
					}
				}
				continue
			}
			checkAllowed(t, where, k)
		}
	}
}

func checkAllowed(t *testing.T, where, k string) {
	t.Helper()
	l := strings.ToLower(k)
	if testCols.Secret[l] || (!allowCols.Allowed[l] && k != "id") {
		t.Fatalf("allow-list mode sent %q in %s", k, where)
	}
}

// mustBuild builds a record for tests; it fails the test when the change emits nothing.
func mustBuild(tb testing.TB, action, old, new string) Record {
	tb.Helper()
	c := Change{Entity: "orders", Action: action, At: time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)}
	if old != "" {
		c.Old = []byte(old)
	}
	if new != "" {
		c.New = []byte(new)
	}
	rec, ok, err := Build(c, testCols)
	if err != nil || !ok {
		tb.Fatalf("Build(%s): ok=%v err=%v", action, ok, err)
	}
	return rec
}

// An event beyond MaxBytes, or nested deeper than MaxDepth, becomes a
// too_large marker with the row's key: never dropped.
func TestBuildWithinLimits(t *testing.T) {
	at := time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)
	big := `"` + strings.Repeat("x", 5000) + `"`
	deep := strings.Repeat("[", DefaultMaxDepth+1) + strings.Repeat("]", DefaultMaxDepth+1)
	for _, tt := range []struct {
		name   string
		c      Change
		data   string
		reason string
	}{
		{"size", Change{Action: "updated", Key: []string{"id", "region"},
			Old: []byte(`{"id":7,"region":"eu","notes":"a","password_hash":"h"}`),
			New: []byte(`{"id":7,"region":"eu","notes":` + big + `,"password_hash":"h"}`)},
			`{"id":7,"region":"eu"}`, `{"reason":"size","bytes":10076,"limit":4096}`},
		{"size, deleted, no key known", Change{Action: "deleted", Old: []byte(`{"id":8,"notes":` + big + `}`)},
			`{"id":8}`, `{"reason":"size","bytes":5019,"limit":4096}`},
		{"depth", Change{Action: "created", Key: []string{"id"}, New: []byte(`{"id":9,"doc":` + deep + `}`)},
			`{"id":9}`, `{"reason":"depth","depth":10002,"limit":10000}`},
		{"secret key column", Change{Action: "created", Key: []string{"token"}, New: []byte(`{"token":"t","notes":` + big + `}`)},
			`{}`, `{"reason":"size","bytes":5012,"limit":4096}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.Entity, c.At, c.Actor = "orders", at, strings.Repeat("é", 200)
			rec, ok, err := BuildWithin(c, Columns{Secret: map[string]bool{"password_hash": true, "token": true}}, Limits{MaxBytes: 4096})
			if err != nil || !ok {
				t.Fatalf("BuildWithin: ok %v, %v", ok, err)
			}
			if string(rec.Data) != tt.data || string(rec.TooLarge) != tt.reason || rec.Previous != nil || rec.Changed != nil {
				t.Fatalf("got data %s too_large %s previous %s", rec.Data, rec.TooLarge, rec.Previous)
			}
			if len(rec.Actor) > MaxActorBytes || !utf8.ValidString(rec.Actor) {
				t.Fatalf("actor of %d bytes (valid UTF-8: %v)", len(rec.Actor), utf8.ValidString(rec.Actor))
			}
			var fr map[string]json.RawMessage
			if err := json.Unmarshal(rec.Frame(), &fr); err != nil || string(fr["too_large"]) != tt.reason {
				t.Fatalf("frame %s: %v", rec.Frame(), err)
			}
		})
	}
	// Within the limits nothing changes.
	rec, ok, err := BuildWithin(Change{Entity: "orders", Action: "created", New: []byte(`{"id":1,"notes":"short"}`)}, Columns{}, Limits{MaxBytes: 4096})
	if err != nil || !ok || rec.TooLarge != nil || string(rec.Data) != `{"id":1,"notes":"short"}` {
		t.Fatalf("small event: %s %s %v %v", rec.Data, rec.TooLarge, ok, err)
	}
}

// Secret and allowed names match columns whatever their case; the primary key
// always leaves in allow-list mode, a secret column never.
func TestColumnsHideCaseInsensitively(t *testing.T) {
	secret := Columns{Secret: map[string]bool{"card_number": true, "cvc": true}}
	allow := Columns{Secret: map[string]bool{"password_hash": true}, Allowed: map[string]bool{"name": true, "password_hash": true}}
	for _, tc := range []struct {
		cols   Columns
		name   string
		key    []string
		hidden bool
	}{
		{secret, "card_number", nil, true},
		{secret, "Card_Number", nil, true},
		{secret, "CVC", nil, true},
		{secret, "card_numbers", nil, false},
		{secret, "name", nil, false},
		{allow, "Name", nil, false},
		{allow, "email", nil, true},
		{allow, "id", []string{"id"}, false},
		{allow, "ID", []string{"id"}, true}, // the key is matched by its exact name
		{allow, "password_hash", nil, true},
		{Columns{}, "anything", nil, false},
	} {
		if got := tc.cols.Hidden(tc.name, tc.key); got != tc.hidden {
			t.Errorf("Hidden(%q, key %q) = %v, want %v", tc.name, tc.key, got, tc.hidden)
		}
	}
	c := Change{Entity: "customers", Action: "updated", Key: []string{"id"},
		Old: []byte(`{"id":1,"Name":"a","Card_Number":"4111","email":"x"}`),
		New: []byte(`{"id":1,"Name":"b","Card_Number":"4242","email":"y"}`)}
	rec, ok, err := Build(c, Columns{Secret: map[string]bool{"card_number": true}, Allowed: map[string]bool{"name": true}})
	if err != nil || !ok {
		t.Fatalf("Build: %v %v", ok, err)
	}
	if got, want := string(rec.Data), `{"id":1,"Name":"b","changed_fields":{"Name":"b"}}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
}
