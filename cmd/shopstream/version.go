package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build: git describe; the Dockerfile: its VERSION argument). Without it,
// `shopstream version` shows the module version the go command recorded.
var version = "dev"

// printVersion writes the version, then what the build recorded of its
// source and toolchain: the commit, its time, whether the tree had changes.
func printVersion(w io.Writer) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	fmt.Fprint(w, versionText(version, bi))
}

func versionText(ldVersion string, bi *debug.BuildInfo) string {
	v := ldVersion
	if v == "dev" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	out := "shopstream " + v + "\n"
	if bi == nil {
		return out
	}
	for _, s := range []struct{ key, label string }{
		{"vcs.revision", "revision"}, {"vcs.time", "time"}, {"vcs.modified", "modified"},
	} {
		for _, kv := range bi.Settings {
			if kv.Key == s.key {
				out += fmt.Sprintf("%-9s %s\n", s.label+":", kv.Value)
			}
		}
	}
	return out + fmt.Sprintf("%-9s %s\n", "go:", bi.GoVersion)
}
