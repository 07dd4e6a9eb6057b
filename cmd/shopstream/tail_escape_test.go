package main

import (
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/termsafe"
)

func TestTailEscapesControlCharacters(t *testing.T) {
	// The actor's escapes as printed: JSON's own \r stays as JSON wrote it.
	actor := map[string]string{"text": `ops\u001b]0;pwned\u0007\u000d`, "json": `ops\u001b]0;pwned\u0007\r`}
	for name, mode := range map[string][]string{"text": nil, "json": {"--json"}} {
		t.Run(name, func(t *testing.T) {
			db, s := tailSetup(t)
			rt := startTail(t, s, append([]string{"--channel", "order_changes"}, mode...)...)
			waitSubscribed(t, s, "order_changes")
			app := appConn(t, db, "evil-app")
			exec(t, app, `BEGIN`)
			exec(t, app, `SET LOCAL shopstream.actor = E'ops\x1b]0;pwned\x07\r'`)
			exec(t, app, `UPDATE orders SET notes = E'clear\x1b[2J\u202eexe.txt\u0085' WHERE id = 7001`)
			exec(t, app, `COMMIT`)
			line := rt.next(t)
			for _, r := range line {
				if termsafe.Unsafe(r) {
					t.Fatalf("tail printed %U raw: %q", r, line)
				}
			}
			for _, want := range []string{`\u001b[2J`, `\u202e`, `\u0085`, actor[name]} {
				if !strings.Contains(line, want) {
					t.Errorf("%q lacks the escape %s", line, want)
				}
			}
		})
	}
}
