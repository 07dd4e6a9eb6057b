package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// TestReadmeWalkthrough runs the README's walkthrough as written: the shell
// blocks between its markers, in one bash, against `shopstream serve --dev`
// (what make run starts) on a fresh database, with the DATABASE_URL that serve
// printed and SHOPSTREAM_URL set to where it listens.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	var path []string // PATH for the walkthrough: psql from PG_BINDIR (devdb) when PATH has none
	if _, err := osexec.LookPath("psql"); err != nil {
		bin := os.Getenv("PG_BINDIR")
		if _, serr := os.Stat(filepath.Join(bin, "psql")); bin == "" || serr != nil {
			t.Fatalf("the README walkthrough needs psql in PATH or in PG_BINDIR (Debian: apt-get install postgresql-client): %v", err)
		}
		path = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	}
	for _, tool := range []string{"bash", "curl", "node", "go"} {
		if _, err := osexec.LookPath(tool); err != nil {
			t.Fatalf("the README walkthrough needs %s in PATH (make deps installs what it can): %v", tool, err)
		}
	}
	if v := runShell(t, "/", nil, `node -p 'process.versions.node'`); !nodeHasWebSocket(strings.TrimSpace(v)) {
		t.Fatalf("the README walkthrough needs Node.js 20.10 or later (its WebSocket), found %s", v)
	}
	blocks := walkthroughBlocks(t, "../../README.md")
	dir := t.TempDir()
	buildShopstream(t, filepath.Join(dir, ".bin", "shopstream"))
	dev := startDevServer(t, dir, pgtest.NewEmptyDB(t))

	// The psql line serve printed works as it is, for root and for others.
	if got := runShell(t, dir, path, dev.psql+" -X -At -c 'SELECT current_user'"); strings.TrimSpace(got) != "postgres" {
		t.Errorf("the printed psql command logs in as %q, want postgres", got)
	}
	if os.Geteuid() == 0 {
		got := runShell(t, "/", path, "setpriv --reuid=65534 --regid=65534 --clear-groups "+dev.psql+" -X -At -c 'SELECT current_user'")
		if strings.TrimSpace(got) != "postgres" {
			t.Errorf("the printed psql command, as user nobody, logs in as %q, want postgres", got)
		}
	}

	script := "set -euo pipefail\n" + strings.Join(blocks, "\n")
	out := runShell(t, dir, append(path, "DATABASE_URL="+dev.databaseURL, "SHOPSTREAM_URL="+dev.url), script)
	user := regexp.MustCompile(`(?m)^\{"user":\{"id":1,"email":"admin@shopstream.local","name":"Development Admin","role":"admin"\}\}\nHTTP 200$`)
	if n := len(user.FindAllString(out, -1)); n != 2 {
		t.Errorf("walkthrough: want the login and /api/auth/me to answer 200 with the user, found %d such answers", n)
	}
	checks := []struct{ what, pattern string }{
		{"the socket connects and subscribes", `"type":"subscribed","channel":"order_changes"`},
		{"the socket gets the UPDATE", `(?m)^\{"type":"event","id":"\d+","channel":"order_changes","event":"order:updated",.*"changed_fields":\{"status":"shipped","notes":"packed at [0-9:]+"\}\},"previous":\{"status":"pending","notes":null\},"actor":"warehouse-sync"`},
		{"tail catches up with the product change", `(?m)^\d+ \S+ product:updated id=2 stock: 40 → 39 \(actor storefront\)$`},
		{"admin list shows the development admin", `(?m)^1\s+admin@shopstream.local\s+Development Admin\s+admin\s+false`},
		{"doctor finds the database ready", `(?m)^OK +sequencer +an instance orders the event log`},
	}
	if strings.Contains(out, "\nWARN ") || strings.Contains(out, "\nFAIL ") {
		t.Errorf("walkthrough: doctor found something on make run's database")
	}
	for _, c := range checks {
		if !regexp.MustCompile(c.pattern).MatchString(out) {
			t.Errorf("walkthrough: %s: no line matches %s", c.what, c.pattern)
		}
	}
	if t.Failed() {
		t.Logf("walkthrough output:\n%s\nserver log:\n%s", out, dev.log.String())
	}
}

// nodeHasWebSocket reports whether Node.js version v (20.10.0) has a
// WebSocket, with --experimental-websocket before 22.
func nodeHasWebSocket(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 20 || major == 20 && minor >= 10
}

// walkthroughBlocks returns the ```sh blocks between the walkthrough markers.
func walkthroughBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- walkthrough:begin -->")
	section, _, ok2 := strings.Cut(rest, "<!-- walkthrough:end -->")
	if !ok || !ok2 {
		t.Fatalf("%s has no <!-- walkthrough:begin --> ... <!-- walkthrough:end --> section", path)
	}
	var blocks []string
	for {
		_, after, found := strings.Cut(section, "```sh\n")
		if !found {
			break
		}
		block, tail, closed := strings.Cut(after, "\n```\n")
		if !closed {
			t.Fatalf("%s: an unterminated ```sh block in the walkthrough", path)
		}
		blocks, section = append(blocks, block), tail
	}
	if len(blocks) < 4 {
		t.Fatalf("%s: the walkthrough has %d shell blocks, want at least 4", path, len(blocks))
	}
	return blocks
}

// buildShopstream builds the command where make build puts it.
func buildShopstream(t *testing.T, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "go", "build", "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}

// devServer is `shopstream serve --dev` running as its own process.
type devServer struct {
	url         string // where it listens
	databaseURL string // the DATABASE_URL it printed to export
	psql        string // the psql command it printed
	log         *lockedBuffer
}

var (
	exportLine = regexp.MustCompile(`^  export DATABASE_URL='([^']+)'$`)
	psqlLine   = regexp.MustCompile(`^  (psql '[^']+')$`)
)

// startDevServer runs dir/.bin/shopstream serve --dev as make run does, on
// 127.0.0.1:0, and reads what it prints until it listens.
func startDevServer(t *testing.T, dir, dbURL string) *devServer {
	t.Helper()
	cmd := osexec.Command(filepath.Join(dir, ".bin", "shopstream"), "serve", "--dev")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LISTEN_ADDR=127.0.0.1:0", "SHOPSTREAM_ENV=development")
	s := &devServer{log: &lockedBuffer{}}
	cmd.Stderr = s.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting shopstream serve --dev: %v", err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("shopstream serve --dev exited with %v\n%s", err, s.log.String())
			}
		case <-time.After(waitfor.Deadline):
			_ = cmd.Process.Kill()
			t.Errorf("shopstream serve --dev did not stop on SIGTERM")
		}
	})
	var printed strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		printed.WriteString(line + "\n")
		if m := exportLine.FindStringSubmatch(line); m != nil {
			s.databaseURL = m[1]
		}
		if m := psqlLine.FindStringSubmatch(line); m != nil {
			s.psql = m[1]
		}
		if u, ok := strings.CutPrefix(line, "shopstream listening on "); ok {
			s.url = u
			break
		}
	}
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	if s.url == "" || s.databaseURL == "" || s.psql == "" {
		t.Fatalf("serve --dev did not print the export DATABASE_URL line, the psql line and where it listens:\n%s\nlog:\n%s", printed.String(), s.log.String())
	}
	if s.databaseURL != dbURL { // devdb's URLs name their role already
		t.Errorf("serve --dev printed DATABASE_URL %q, want %q", s.databaseURL, dbURL)
	}
	return s
}

// runShell runs script with bash in dir and returns its output (stdout and
// stderr); a non-zero exit fails the test.
func runShell(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *osexec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("bash: %v (%v)\nscript:\n%s\noutput:\n%s", err, ctx.Err(), script, out)
		}
		t.Fatal(fmt.Errorf("running bash: %w", err))
	}
	return string(out)
}
