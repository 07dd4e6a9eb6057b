// Package web holds the dashboard and the browser client, embedded in the binary.
//
// The client is the npm package in web/client: its shopstream.js and
// shopstream.d.ts are served at /shopstream.js and /shopstream.d.ts, the
// same files `npm pack` puts in the package (one source of truth).
package web

import (
	"embed"
	"io/fs"
)

//go:embed static client/shopstream.js client/shopstream.d.ts
var files embed.FS

// clientFiles are served at the root from the client package.
var clientFiles = map[string]bool{"shopstream.js": true, "shopstream.d.ts": true}

// Static returns the files served at /: web/static, plus the client's files.
func Static() fs.FS { return staticFS{} }

type staticFS struct{}

func (staticFS) Open(name string) (fs.File, error) {
	if clientFiles[name] {
		return files.Open("client/" + name)
	}
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return files.Open("static")
	}
	return files.Open("static/" + name)
}
