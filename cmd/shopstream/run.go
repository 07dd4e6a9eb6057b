package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/shopstream/shopstream/internal/config"
)

// usageError is a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// loggedError is an error the command has already logged (as JSON, with
// LOG_FORMAT=json): main exits with its code without printing it again.
type loggedError struct{ err error }

func (e *loggedError) Error() string { return e.err.Error() }
func (e *loggedError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// env is what every command gets.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program: main only calls it, and tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	cmd, rest := "serve", args
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-h" || args[0] == "--help") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, e, rest)
	case "migrate":
		err = cmdMigrate(ctx, e, rest)
	case "admin":
		err = cmdAdmin(ctx, e, rest)
	case "tail":
		err = cmdTail(ctx, e, rest)
	case "doctor":
		err = cmdDoctor(ctx, e, rest)
	case "health":
		err = cmdHealth(ctx, e, rest)
	case "version":
		printVersion(stdout)
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	default:
		usage(stderr)
		return &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // the flag set printed its usage
	}
	return err
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: shopstream [command] [flags]

Commands:
  serve [--dev]        serve HTTP and WebSockets (the default command)
  migrate [--demo]     apply the schema and attach the triggers (--demo: demo shop tables)
  admin create         --email E --name N --role R [--password P | password on stdin]
  admin list           list admin users
  admin disable        --email E   (closes the user's sockets)
  admin enable         --email E
  admin passwd         --email E [--password P | password on stdin]
  admin role           --email E --role R
  tail                 --email E [--url U] [--channel C]... [--since ID] [--count N] [--json]  print events (tail --help)
  doctor               check the database before going live: triggers, privileges, NOTIFY queue, backlog
  health [--ready]     GET /healthz (--ready: /readyz) on LISTEN_ADDR; exit 0 when 200 (container health check)
  version              print the version, the commit built, its time, whether it had changes, the Go version

Every command reads its settings from the environment:
`)
	printVars(w)
}

// newFlagSet is a command's flags; its --help lists them and then the
// environment variables every command reads.
func newFlagSet(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("shopstream "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: shopstream %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nEnvironment:\n")
		printVars(fs.Output())
	}
	return fs
}

// printVars lists config.Vars, the one statement of every default.
func printVars(w io.Writer) {
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  %-24s %s (default: %s)\n", v.Name, v.Help, def)
	}
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		opts.ReplaceAttr = durationsInMillis
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationsInMillis writes a time.Duration as a number of milliseconds under
// its key with "_ms" appended ("duration": 1.5ms becomes "duration_ms": 1.5):
// slog's JSON handler would write nanoseconds, a unit nobody reads.
func durationsInMillis(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	return slog.Float64(a.Key+"_ms", float64(a.Value.Duration().Microseconds())/1000)
}
