// Command devdb runs a command against a local PostgreSQL database.
//
// Usage:
//
//	devdb [-dir PATH] [-fast] -- COMMAND [ARGS...]
//
// If DATABASE_URL is set, devdb just runs COMMAND. Otherwise it starts a
// PostgreSQL server from the system's binaries (kept in PATH with -dir, else
// in a temporary dir that is removed afterwards), creates the database
// "shopstream", and runs COMMAND with DATABASE_URL and PG_BINDIR set. It
// stops the server it started when COMMAND exits and exits with its status.
//
// Ctrl-C (SIGINT), SIGTERM and a closed terminal (SIGHUP) are passed on to
// COMMAND; one that has not exited 30 s later is killed, and the server stops.
// A server that an earlier devdb left running in -dir (that devdb was killed
// and could not stop it) is reported, stopped and started afresh with this
// run's settings; it stops when this run ends. A server whose devdb is still
// running (another terminal) is shared and left running.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shopstream/shopstream/internal/pgcluster"
)

const dbName = "shopstream"

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "devdb:", err)
	os.Exit(1)
}

// exitError carries the exit status devdb should exit with.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("command exited with status %d", e.code) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet(stderr)
	dir := fs.String("dir", "", "persistent data `directory` (default: a temporary one, removed at exit)")
	fast := fs.Bool("fast", false, "turn off fsync and friends (faster, unsafe on crash)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	command := fs.Args()
	if len(command) == 0 {
		fs.Usage()
		return &exitError{code: 2}
	}

	// Catch signals from now on so that setup is never cut short with a
	// server left running; they are forwarded to COMMAND once it runs.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// A closed output pipe (make run | head) must not kill devdb before it
	// stops the server: writes then fail with EPIPE instead. COMMAND gets the
	// default SIGPIPE back, since exec resets caught signals.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	if os.Getenv("DATABASE_URL") != "" {
		fmt.Fprintln(stderr, "devdb: using DATABASE_URL from the environment")
		return runChild(command, os.Environ(), sigs, stdout, stderr)
	}
	return withCluster(ctx, *dir, *fast, stderr, func(env []string) error {
		select {
		case sig := <-sigs:
			return &exitError{code: 128 + int(sig.(syscall.Signal))}
		default:
		}
		return runChild(command, env, sigs, stdout, stderr)
	})
}

// withCluster starts a cluster, makes sure the database exists, calls fn
// with the child environment, and then stops what it started.
func withCluster(ctx context.Context, dir string, fast bool, stderr io.Writer, fn func(env []string) error) (err error) {
	c, err := pgcluster.New(ctx, pgcluster.Options{Dir: dir, FastUnsafe: fast})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := c.Close(stopCtx); cerr != nil {
			fmt.Fprintln(stderr, "devdb:", cerr)
			err = cmp.Or(err, cerr)
		}
	}()
	if c.Leftover != 0 {
		fmt.Fprintf(stderr, "devdb: stopped the PostgreSQL (pid %d) an earlier devdb left running in %s; starting it afresh\n", c.Leftover, c.Dir)
	}
	note := ""
	if !c.Owned() {
		note = ", already running for another devdb: it stops when that one ends"
	}
	fmt.Fprintf(stderr, "devdb: PostgreSQL %s at 127.0.0.1:%d (data in %s%s)\n", c.Version(), c.Port, c.Dir, note)
	if err := ensureDatabase(ctx, c, dbName); err != nil {
		return err
	}
	env := setEnv(os.Environ(), "DATABASE_URL", c.URL(dbName))
	return fn(setEnv(env, "PG_BINDIR", c.BinDir))
}

func ensureDatabase(ctx context.Context, c *pgcluster.Cluster, name string) error {
	out, err := c.Psql(ctx, "postgres", fmt.Sprintf("select 1 from pg_database where datname = '%s'", name))
	if err != nil || out == "1" {
		return err
	}
	if _, err := c.Psql(ctx, "postgres", fmt.Sprintf(`create database "%s"`, name)); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// setEnv returns env with key set to value, replacing any earlier setting.
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// killGrace is how long a signalled command has to exit before it is killed.
const killGrace = 30 * time.Second

// runChild runs command with the terminal attached, forwarding signals from
// sigs (a command still running killGrace after the first is killed), and
// turns a non-zero exit into an *exitError.
func runChild(command, env []string, sigs <-chan os.Signal, stdout, stderr io.Writer) error {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start command: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		var kill <-chan time.Time
		for {
			select {
			case sig := <-sigs:
				_ = cmd.Process.Signal(sig)
				if kill == nil {
					kill = time.After(killGrace)
				}
			case <-kill:
				fmt.Fprintf(stderr, "devdb: %s still running %v after the signal: killing it\n", command[0], killGrace)
				_ = cmd.Process.Kill()
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: exitCode(ee)}
	}
	if err != nil {
		return fmt.Errorf("run command: %w", err)
	}
	return nil
}

func exitCode(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
