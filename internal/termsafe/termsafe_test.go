package termsafe

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ümlauts, 日本":         "plain text, ümlauts, 日本",
		"\x1b[2J\x1b]0;owned\x07":         `\u001b[2J\u001b]0;owned\u0007`,
		"a\rb\nc\td\x7f":                  `a\u000db\u000ac\u0009d\u007f`,
		"\u0085\u009b31m":                 `\u0085\u009b31m`,
		"user\u202egnp.exe \u2066x\u2069": `user\u202egnp.exe \u2066x\u2069`,
		"zero\u200bwidth\ufeff":           `zero\u200bwidth\ufeff`,
		"line\u2028sep\u2029":             `line\u2028sep\u2029`,
		"bad \xff\xfe utf8":               `bad \ufffd\ufffd utf8`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzString: nothing a terminal acts on survives, printable text is kept,
// and a JSON line stays JSON with the same meaning.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "ok", "\x1b[31m", "\u202e", "\xff", `{"a":"\u0085"}`, "\u009d8;;http://x\u009c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if !utf8.ValidString(out) {
			t.Fatalf("output is not UTF-8: %q", out)
		}
		for _, r := range out {
			if Unsafe(r) {
				t.Fatalf("String(%q) = %q keeps %U", s, out, r)
			}
		}
		if strings.IndexFunc(s, Unsafe) < 0 && utf8.ValidString(s) && out != s {
			t.Fatalf("safe text changed: %q → %q", s, out)
		}
		b, _ := json.Marshal(map[string]string{"v": s}) // escapes C0, keeps C1 and bidi raw
		var before, after map[string]string
		if json.Unmarshal(b, &before) != nil {
			return
		}
		if err := json.Unmarshal([]byte(String(string(b))), &after); err != nil {
			t.Fatalf("a JSON line is no longer JSON: %s → %s: %v", b, String(string(b)), err)
		}
		if before["v"] != after["v"] && utf8.ValidString(s) {
			t.Fatalf("a JSON line changed meaning: %q → %q", before["v"], after["v"])
		}
	})
}
