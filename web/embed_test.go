package web

import (
	"io/fs"
	"os"
	"testing"
)

// The files served at /shopstream.js and /shopstream.d.ts are the client
// package's, and the dashboard's own files are still there.
func TestStatic(t *testing.T) {
	for name, src := range map[string]string{
		"shopstream.js":   "client/shopstream.js",
		"shopstream.d.ts": "client/shopstream.d.ts",
		"index.html":      "static/index.html",
		"dashboard.js":    "static/dashboard.js",
	} {
		got, err := fs.ReadFile(Static(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is not %s", name, src)
		}
	}
	for _, name := range []string{"client/shopstream.js", "../go.mod", "/etc/passwd", "static/index.html"} {
		if _, err := Static().Open(name); err == nil {
			t.Errorf("%s opened, want an error", name)
		}
	}
}
