// Package pgcluster runs a local PostgreSQL server from the system's
// PostgreSQL binaries, so that development and tests work on a bare machine
// with no server running, no Docker and no downloads.
//
// A Cluster is either ephemeral (a fresh temporary data dir, deleted by
// Remove) or persistent (a caller-chosen data dir whose data and port are
// kept between runs). When the process runs as root the server runs as the
// "postgres" OS user, since PostgreSQL refuses to run as root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	portFile   = "shopstream-port"
	ownerFile  = "shopstream-owner" // pid of the process that started the running server
	logFile    = "server.log"
	superuser  = "postgres"
	maxSockDir = 100 // sun_path is 108 bytes including "/.s.PGSQL.NNNNN"
)

// Options configures New. The zero value gives an ephemeral cluster on a
// free port.
type Options struct {
	// Dir is the data directory. Empty means a new temporary directory,
	// which makes the cluster ephemeral.
	Dir string
	// Port is the TCP port on 127.0.0.1. Zero means the port recorded in a
	// persistent Dir if it is still free, otherwise any free port.
	Port int
	// BinDir holds initdb, pg_ctl and psql. Empty means FindBinDir.
	BinDir string
	// FastUnsafe turns off fsync, synchronous_commit and full_page_writes:
	// much faster, but a crash can lose or corrupt data. Meant for tests.
	FastUnsafe bool
	// ExtraConf holds "key=value" server settings passed with -c.
	ExtraConf []string
	// Logger receives lifecycle messages (initdb, start, stop). Nil means
	// silent. The server's own log always goes to DIR/server.log.
	Logger *slog.Logger
}

// Cluster is a PostgreSQL server with its data directory.
type Cluster struct {
	Dir       string // absolute data directory
	Port      int    // TCP port on 127.0.0.1
	BinDir    string // directory of the PostgreSQL binaries
	Ephemeral bool   // Dir is temporary and deleted by Remove
	// Leftover is the pid of a server New found running in a persistent Dir
	// whose starter has exited without stopping it (killed, say), and which
	// New stopped before starting afresh; 0 when there was none.
	Leftover int

	fastUnsafe bool
	extraConf  []string
	log        *slog.Logger
	user       serverUser

	mu      sync.Mutex
	running bool
	owned   bool // we started the running server, so Stop stops it
}

// New prepares a cluster (running initdb when the data dir is new) and
// starts it. If a server is already running in a persistent Dir and the
// process that started it is still alive, New uses it as is; Stop then leaves
// it running. A server whose starter is gone is a leftover: New stops it,
// records its pid in Leftover and starts its own. On error an ephemeral dir
// is removed.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if err := c.open(ctx, opts.Port); err != nil {
		if c.Ephemeral {
			_ = os.RemoveAll(c.Dir)
		}
		return nil, err
	}
	return c, nil
}

func prepare(opts Options) (*Cluster, error) {
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	u, err := lookupServerUser()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{BinDir: binDir, fastUnsafe: opts.FastUnsafe, extraConf: opts.ExtraConf, log: log, user: u}
	if err := c.makeDir(opts.Dir); err != nil {
		return nil, err
	}
	return c, nil
}

// makeDir creates (or adopts) the data directory and checks the server user
// can reach it.
func (c *Cluster) makeDir(dir string) error {
	if dir == "" {
		tmp, err := os.MkdirTemp(os.TempDir(), "pgcluster-")
		if err != nil {
			return fmt.Errorf("create temp data dir: %w", err)
		}
		c.Dir, c.Ephemeral = tmp, true
		if err := c.user.chown(tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("data dir path: %w", err)
		}
		c.Dir = abs
		if err := c.user.mkdirAll(abs); err != nil {
			return err
		}
		if !c.initialized() {
			if err := c.user.chown(abs); err != nil {
				return err
			}
		}
	}
	if err := c.user.checkTraversable(c.Dir); err != nil {
		if c.Ephemeral {
			_ = os.RemoveAll(c.Dir)
		}
		return err
	}
	return nil
}

// open reuses a server already running in Dir, or initializes and starts one.
func (c *Cluster) open(ctx context.Context, port int) error {
	if p, pid, ok := c.runningServer(ctx); ok {
		if owner, alive := c.owner(); alive {
			c.Port, c.running = p, true
			c.log.Info("reusing running PostgreSQL", "dir", c.Dir, "port", p, "owner_pid", owner)
			return nil
		}
		if err := c.stopLeftover(ctx, pid); err != nil {
			return err
		}
	}
	if err := c.initdb(ctx); err != nil {
		return err
	}
	p, err := c.choosePort(port)
	if err != nil {
		return err
	}
	c.Port = p
	return c.Start(ctx)
}

// URL returns a connection URL for database dbname as the postgres superuser.
func (c *Cluster) URL(dbname string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.Port, dbname)
}

// Version returns the major version recorded in the data dir, e.g. "15".
func (c *Cluster) Version() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "PG_VERSION"))
	return strings.TrimSpace(string(b))
}

// Running reports whether the server is believed to be running.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Owned reports whether this Cluster started the server (so Stop stops it)
// rather than reusing one that was already running.
func (c *Cluster) Owned() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned
}

// Start starts the server on c.Port and waits until it accepts TCP
// connections. It does nothing if the server is already running.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	logPath := filepath.Join(c.Dir, logFile)
	args := []string{"-D", c.Dir, "-l", logPath, "-w", "-t", "60", "-o", c.serverArgs(), "start"}
	c.log.Info("starting PostgreSQL", "dir", c.Dir, "port", c.Port)
	if out, err := c.pgCommand(ctx, "pg_ctl", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("start postgres on port %d: %w\n%s%s", c.Port, err, out, logTail(logPath))
	}
	c.running, c.owned = true, true
	if err := waitTCP(ctx, c.Port, 10*time.Second); err != nil {
		return err
	}
	if err := c.saveOwner(); err != nil {
		return err
	}
	return c.savePort()
}

// Stop stops the server with a fast shutdown and waits for it to exit. It
// does nothing if the server was not started by this Cluster.
func (c *Cluster) Stop(ctx context.Context) error { return c.stop(ctx, "fast") }

// Crash stops the server the way a power loss would (pg_ctl stop -m
// immediate: no checkpoint, no WAL flush); the next Start recovers from the
// WAL. It does nothing if the server was not started by this Cluster.
func (c *Cluster) Crash(ctx context.Context) error { return c.stop(ctx, "immediate") }

func (c *Cluster) stop(ctx context.Context, mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running || !c.owned {
		return nil
	}
	c.log.Info("stopping PostgreSQL", "dir", c.Dir, "port", c.Port, "mode", mode)
	out, err := c.pgCommand(ctx, "pg_ctl", "-D", c.Dir, "-m", mode, "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop postgres (%s): %w\n%s", mode, err, out)
	}
	c.running, c.owned = false, false
	return c.removeOwner()
}

// Restart stops the server and starts it again on the same port, dropping
// every client connection. It fails for a server this Cluster did not start.
func (c *Cluster) Restart(ctx context.Context) error {
	if c.Running() && !c.Owned() {
		return errors.New("restart postgres: server was already running and is not ours to restart")
	}
	if err := c.Stop(ctx); err != nil {
		return err
	}
	return c.Start(ctx)
}

// Remove deletes the data dir of an ephemeral cluster; stop it first. For a
// persistent cluster it does nothing.
func (c *Cluster) Remove() error {
	if !c.Ephemeral {
		return nil
	}
	if c.Running() {
		return fmt.Errorf("remove %s: server still running", c.Dir)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove data dir: %w", err)
	}
	return nil
}

// Close stops the server if we started it and removes an ephemeral data dir.
func (c *Cluster) Close(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	return c.Remove()
}

// Psql runs one SQL command with psql against dbname and returns its
// unaligned, tuples-only output with surrounding space trimmed.
func (c *Cluster) Psql(ctx context.Context, dbname, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", superuser, "-d", dbname, "-c", sql)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", sql, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
