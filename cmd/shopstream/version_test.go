package main

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestVersionText(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
	}}
	want := "shopstream v1.4.0\nrevision: abc123\ntime:     2026-12-01T10:00:00Z\nmodified: true\ngo:       go1.26.8\n"
	if got := versionText("dev", bi); got != want {
		t.Errorf("from the build info:\n%s\nwant:\n%s", got, want)
	}
	if got := versionText("1.2.3", bi); !strings.HasPrefix(got, "shopstream 1.2.3\nrevision: abc123\n") {
		t.Errorf("-X main.version does not win over the module version:\n%s", got)
	}
	bi = &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	if got := versionText("dev", bi); got != "shopstream dev\ngo:       go1.26.8\n" {
		t.Errorf("without a module version or VCS information:\n%s", got)
	}
}

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := osexec.Command("git", append([]string{"-c", "user.email=test@shopstream.local", "-c", "user.name=test", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s (the version test needs git)", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestVersionCommand builds the real binary as `make build` does from a
// repository of its own (a copy of this tree's files, committed, then one
// file changed) and checks what `shopstream version` prints against it.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for _, f := range strings.Split(git(t, root, "ls-files", "-co", "--exclude-standard"), "\n") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, src, "init", "-q")
	git(t, src, "add", "-A")
	git(t, src, "commit", "-q", "-m", "snapshot")
	rev := git(t, src, "rev-parse", "HEAD")
	commitTime, err := time.Parse(time.RFC3339, git(t, src, "log", "-1", "--format=%cI"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "shopstream")
	build := osexec.Command("go", "build", "-buildvcs=true", "-ldflags", "-X main.version=test-1.2.3", "-o", bin, "./cmd/shopstream")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := osexec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("shopstream version: %v\n%s", err, out)
	}
	want := strings.Join([]string{
		"shopstream test-1.2.3",
		"revision: " + rev,
		"time:     " + commitTime.UTC().Format(time.RFC3339),
		"modified: true",
		"go:       " + runtime.Version(),
	}, "\n") + "\n"
	if string(out) != want {
		t.Errorf("shopstream version printed:\n%s\nwant:\n%s", out, want)
	}
}
