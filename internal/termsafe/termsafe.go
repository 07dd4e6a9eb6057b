// Package termsafe makes untrusted text safe to print on a terminal.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String makes text from the server (rows, actors, messages) safe to print
// on a terminal: control characters (C0, DEL, C1: escape sequences, carriage
// returns, bells), Unicode format characters (bidi overrides and isolates,
// zero-width ones), line and paragraph separators and invalid UTF-8 are shown
// as \uXXXX escapes (invalid bytes as \ufffd). The escapes are also valid
// inside JSON strings, where such characters can only stand, so a JSON line
// stays JSON and means the same.
func String(s string) string {
	i := strings.IndexFunc(s, Unsafe)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for _, r := range s { // an invalid byte comes as utf8.RuneError
		if Unsafe(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Unsafe reports whether r is shown escaped: a character a terminal acts on or
// hides, or utf8.RuneError (an invalid byte).
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp) || r == utf8.RuneError
}
