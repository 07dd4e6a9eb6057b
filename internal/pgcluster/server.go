package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgCommand runs one of the PostgreSQL server binaries as the server user.
func (c *Cluster) pgCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return c.user.command(ctx, filepath.Join(c.BinDir, name), args...)
}

func (c *Cluster) initialized() bool {
	_, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION"))
	return err == nil
}

// initdb creates the cluster unless the data dir already holds one. It tries
// the C.UTF-8 locale first and falls back to C.
func (c *Cluster) initdb(ctx context.Context) error {
	if c.initialized() {
		return nil
	}
	c.log.Info("initializing PostgreSQL data dir", "dir", c.Dir)
	var outputs []byte
	for _, locale := range []string{"C.UTF-8", "C"} {
		out, err := c.pgCommand(ctx, "initdb", "-D", c.Dir, "-U", superuser, "--auth=trust",
			"-E", "UTF8", "--locale="+locale).CombinedOutput()
		if err == nil {
			return nil
		}
		outputs = append(outputs, out...)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("initdb %s failed:\n%s", c.Dir, outputs)
}

// runningServer reports the port and the postmaster's pid of a server
// already running in Dir (postmaster.pid: line 1 the pid, line 4 the port).
func (c *Cluster) runningServer(ctx context.Context) (port, pid int, ok bool) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	if c.pgCommand(ctx, "pg_ctl", "-D", c.Dir, "status").Run() != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, 0, false
	}
	port, err1 := strconv.Atoi(strings.TrimSpace(lines[3]))
	pid, err2 := strconv.Atoi(strings.TrimSpace(lines[0]))
	return port, pid, err1 == nil && err2 == nil
}

// stopLeftover stops a server whose starter is gone, so that this run starts
// one of its own with its own settings and stops it at the end.
func (c *Cluster) stopLeftover(ctx context.Context, pid int) error {
	c.log.Warn("stopping PostgreSQL left running by an earlier run", "dir", c.Dir, "pid", pid)
	out, err := c.pgCommand(ctx, "pg_ctl", "-D", c.Dir, "-m", "fast", "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop the PostgreSQL (pid %d) left running in %s by an earlier run: %w\n%s", pid, c.Dir, err, out)
	}
	c.Leftover = pid
	return c.removeOwner()
}

// owner reads the pid recorded by the process that started the running
// server, and whether that process is still alive (then the server is shared,
// not left over). A server started by this process is alive too.
func (c *Cluster) owner() (int, bool) {
	b, err := os.ReadFile(filepath.Join(c.Dir, ownerFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	err = syscall.Kill(pid, 0)
	return pid, err == nil || errors.Is(err, syscall.EPERM)
}

// saveOwner records this process as the starter of the running server.
func (c *Cluster) saveOwner() error {
	if c.Ephemeral {
		return nil
	}
	path := filepath.Join(c.Dir, ownerFile)
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("record server owner: %w", err)
	}
	return nil
}

func (c *Cluster) removeOwner() error {
	if c.Ephemeral {
		return nil
	}
	if err := os.Remove(filepath.Join(c.Dir, ownerFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove server owner file: %w", err)
	}
	return nil
}

// choosePort returns want if set, else the port saved in a persistent dir if
// it is still free, else a free port.
func (c *Cluster) choosePort(want int) (int, error) {
	if want != 0 {
		return want, nil
	}
	if !c.Ephemeral {
		b, err := os.ReadFile(filepath.Join(c.Dir, portFile))
		if p, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && portFree(p) {
			return p, nil
		}
	}
	return freePort()
}

func (c *Cluster) savePort() error {
	if c.Ephemeral {
		return nil
	}
	path := filepath.Join(c.Dir, portFile)
	if err := os.WriteFile(path, []byte(strconv.Itoa(c.Port)+"\n"), 0o644); err != nil {
		return fmt.Errorf("save port: %w", err)
	}
	return c.user.chown(path)
}

// serverArgs returns the postgres command-line options for pg_ctl -o, quoted
// for the shell that pg_ctl hands them to.
func (c *Cluster) serverArgs() string {
	args := []string{"-p", strconv.Itoa(c.Port), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"}
	if len(c.Dir)+len("/.s.PGSQL.65535") <= maxSockDir {
		args = append(args, "-k", c.Dir)
	} else {
		args = append(args, "-c", "unix_socket_directories=")
	}
	if c.fastUnsafe {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, kv := range c.extraConf {
		args = append(args, "-c", kv)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP polls until 127.0.0.1:port accepts a connection or timeout passes.
func waitTCP(ctx context.Context, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres on %s: %w", addr, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last few lines of the server log, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "server.log:\n" + strings.Join(lines, "\n")
}
