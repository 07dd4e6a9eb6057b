package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testutil"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// These tests run the built devdb as a user would, each on a data dir of its
// own, and look at the PostgreSQL processes it leaves (or does not leave).

var build struct {
	once sync.Once
	path string
	err  error
}

// devdbBinary builds devdb once for the package's tests.
func devdbBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "devdb-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "devdb")
		out, err := exec.Command("go", "build", "-o", build.path, ".").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// dataDir is a fresh -dir that the postgres user can reach when we are root.
func dataDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "devdb-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "pg")
	t.Cleanup(func() {
		// Whatever a failed test left: stop it (immediate shutdown) first.
		if pid, ok := postmasterPID(dir); ok && alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			waitfor.Until(t, "the leftover test server to exit", func() bool { return !alive(pid) })
		}
		_ = os.RemoveAll(base)
	})
	return dir
}

// lockedBuffer collects devdb's stderr.
type lockedBuffer = testutil.Buffer

// devdbRun is one devdb process, in a process group of its own (with its
// command; the server has its own group).
type devdbRun struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	lines  chan string // the command's stdout
	exited chan error
}

func startDevdb(t *testing.T, args ...string) *devdbRun {
	t.Helper()
	cmd := exec.Command(devdbBinary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") { // set when the suite runs under devdb
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &devdbRun{cmd: cmd, stderr: &lockedBuffer{}, lines: make(chan string, 100), exited: make(chan error, 1)}
	cmd.Stderr = r.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
		r.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	return r
}

// expectLine waits for the command to print want.
func (r *devdbRun) expectLine(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(waitfor.Deadline)
	for {
		select {
		case line := <-r.lines:
			if line == want {
				return
			}
		case err := <-r.exited:
			t.Fatalf("devdb exited (%v) before its command printed %q; stderr:\n%s", err, want, r.stderr)
		case <-deadline:
			t.Fatalf("no %q from the command within %v; stderr:\n%s", want, waitfor.Deadline, r.stderr)
		}
	}
}

// wait waits for devdb to exit and returns its exit code.
func (r *devdbRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-r.exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("devdb: %v", err)
		}
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(waitfor.Deadline):
		t.Fatalf("devdb did not exit within %v; stderr:\n%s", waitfor.Deadline, r.stderr)
		return 0
	}
}

// childRunning is a command that says it runs, then waits to be signalled.
var childRunning = []string{"sh", "-c", "echo child-running; exec sleep 600"}

func postmasterPID(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid, err == nil
}

// alive reports whether pid runs: it exists and is not a zombie (a container's
// init may never reap the orphaned postmaster).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func runningServer(t *testing.T, dir string) int {
	t.Helper()
	pid, ok := postmasterPID(dir)
	if !ok || !alive(pid) {
		t.Fatalf("no running server in %s (postmaster.pid: pid %d, found %v)", dir, pid, ok)
	}
	return pid
}

func expectStopped(t *testing.T, dir string, pid int) {
	t.Helper()
	waitfor.Until(t, fmt.Sprintf("postgres pid %d to exit", pid), func() bool { return !alive(pid) })
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid still in %s (stat: %v)", dir, err)
	}
}

func TestHangupStopsServer(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	r := startDevdb(t, append([]string{"-fast", "-dir", dir, "--"}, childRunning...)...)
	r.expectLine(t, "child-running")
	pid := runningServer(t, dir)

	// Closing the terminal: SIGHUP to devdb (and its command).
	if err := syscall.Kill(r.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t); code != 128+int(syscall.SIGHUP) {
		t.Errorf("devdb exit code %d, want %d (its command died of SIGHUP); stderr:\n%s", code, 128+int(syscall.SIGHUP), r.stderr)
	}
	expectStopped(t, dir, pid)
}

func TestLeftoverServerStopped(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	first := startDevdb(t, append([]string{"-fast", "-dir", dir, "--"}, childRunning...)...)
	first.expectLine(t, "child-running")
	pid := runningServer(t, dir)

	// While the first devdb runs, a second one on the same dir shares its
	// server and leaves it running.
	shared := startDevdb(t, "-fast", "-dir", dir, "--", "sh", "-c", "echo shared")
	shared.expectLine(t, "shared")
	if code := shared.wait(t); code != 0 {
		t.Fatalf("sharing devdb exited %d; stderr:\n%s", code, shared.stderr)
	}
	if !strings.Contains(shared.stderr.String(), "already running for another devdb") {
		t.Errorf("sharing devdb did not say the server is another's; stderr:\n%s", shared.stderr)
	}
	if !alive(pid) {
		t.Fatal("the sharing devdb stopped the first one's server")
	}

	// SIGKILL devdb and its command (not the server, in its own group): the
	// server is left running.
	if err := syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t)
	if !alive(pid) {
		t.Fatal("the server died with devdb: nothing left over to test")
	}

	again := startDevdb(t, "-fast", "-dir", dir, "--", "sh", "-c", `"$PG_BINDIR/psql" -X -At -c "select 1" "$DATABASE_URL" >/dev/null && echo ran`)
	again.expectLine(t, "ran")
	if code := again.wait(t); code != 0 {
		t.Fatalf("devdb after a leftover exited %d; stderr:\n%s", code, again.stderr)
	}
	want := fmt.Sprintf("devdb: stopped the PostgreSQL (pid %d) an earlier devdb left running in %s", pid, dir)
	if !strings.Contains(again.stderr.String(), want) {
		t.Errorf("stderr does not report the leftover: want %q in\n%s", want, again.stderr)
	}
	expectStopped(t, dir, pid)
	if _, err := os.Stat(filepath.Join(dir, "shopstream-owner")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner file still in %s (stat: %v)", dir, err)
	}
}
