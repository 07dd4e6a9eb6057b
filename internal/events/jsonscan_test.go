package events

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestScanJSON(t *testing.T) {
	for _, tt := range []struct {
		in    string
		depth int
		ok    bool
	}{
		{`{}`, 1, true}, {` [ ] `, 1, true}, {`1`, 0, true}, {`"a\u00e9\n"`, 0, true}, {`-0.5e+3`, 0, true},
		{`{"a":[1,{"b":null}],"c":true}`, 3, true}, {`[[[]]]`, 3, true},
		{`{"a":1,}`, 0, false}, {`[1,]`, 0, false}, {`{"a"}`, 0, false}, {`{1:2}`, 0, false}, {`[1 2]`, 0, false},
		{`"\x"`, 0, false}, {`"\u12"`, 0, false}, {"\"\x01\"", 0, false}, {`01`, 0, false}, {`1.`, 0, false},
		{`tru`, 0, false}, {`nul`, 0, false}, {`[`, 0, false}, {`]`, 0, false}, {`{"a":1}}`, 0, false}, {``, 0, false}, {`1 2`, 0, false},
	} {
		depth, ok := scanJSON([]byte(tt.in))
		if ok != tt.ok || (ok && depth != tt.depth) {
			t.Errorf("scanJSON(%q) = %d, %v; want %d, %v", tt.in, depth, ok, tt.depth, tt.ok)
		}
	}
	// Deeper than encoding/json goes.
	deep := strings.Repeat(`{"a":[`, 20000) + `1` + strings.Repeat(`]}`, 20000)
	if json.Valid([]byte(deep)) {
		t.Fatal("encoding/json accepts 40,000 levels: this test no longer shows why scanJSON exists")
	}
	if depth, ok := scanJSON([]byte(deep)); !ok || depth != 40000 {
		t.Fatalf("deep value: %d, %v", depth, ok)
	}
}

// FuzzScanJSON holds scanJSON to encoding/json's Valid on everything Valid can
// judge (nesting up to its limit of 10,000).
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":null}],"c":true}`, `[1,]`, `"\u00e9"`, "\"\xff\"", `-0.5e+3`, ` {} `, `{"a":1}}`, `[[[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		depth, ok := scanJSON(b)
		if depth > 9000 {
			return
		}
		if want := json.Valid(b); ok != want {
			t.Fatalf("scanJSON(%q) = %v, json.Valid says %v", b, ok, want)
		}
	})
}
