package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/postgres"
)

func cmdMigrate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("migrate", e)
	demo := fs.Bool("demo", false, "also create the demo shop tables where missing, with sample rows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, db, err := configAndDB(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	return migrate(ctx, e, db, cfg, *demo)
}

// configAndDB loads the configuration and connects to the database.
func configAndDB(ctx context.Context, e env) (config.Config, *postgres.DB, error) {
	cfg, err := config.Load(e.getenv)
	if err != nil {
		return cfg, nil, fmt.Errorf("configuration: %w", err)
	}
	db, err := openDB(ctx, cfg)
	return cfg, db, err
}

func migrate(ctx context.Context, e env, db *postgres.DB, cfg config.Config, demo bool) error {
	rep, err := db.Migrate(ctx, cfg.Tables, demo, cfg.CaptureReplica)
	if err != nil && !errors.Is(err, postgres.ErrTablesRefused) {
		return err
	}
	if rep.From == rep.To {
		fmt.Fprintf(e.stdout, "schema: at version %d, nothing to apply\n", rep.To)
	} else {
		fmt.Fprintf(e.stdout, "schema: migrated from version %d to %d\n", rep.From, rep.To)
	}
	for _, a := range rep.Tables {
		if a.Err != nil {
			fmt.Fprintf(e.stdout, "table %s (%s): %s: %v\n", a.Table, a.Entity, a.Status, a.Err)
			continue
		}
		fmt.Fprintf(e.stdout, "table %s (%s): %s\n", a.Table, a.Entity, a.Status)
	}
	return err
}

func cmdAdmin(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return &usageError{"admin: want a subcommand: create, list, disable, enable, passwd, role"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("admin "+sub, e)
	email := fs.String("email", "", "the admin's email")
	name := fs.String("name", "", "display name (create)")
	role := fs.String("role", "", "role: admin, support, finance or one added to shopstream.roles")
	password := fs.String("password", "", "password (for scripts; otherwise read from stdin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	needEmail := sub != "list"
	if needEmail && *email == "" {
		return &usageError{"admin " + sub + ": --email is required"}
	}
	_, db, err := configAndDB(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	var u auth.User
	switch sub {
	case "create":
		if *name == "" || *role == "" {
			return &usageError{"admin create: --name and --role are required"}
		}
		hash, err := readHash(e, *password)
		if err != nil {
			return err
		}
		u, err = db.CreateUser(ctx, *email, *name, *role, hash)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created admin %d %s (%s)\n", u.ID, u.Email, u.Role)
		return nil
	case "list":
		return listUsers(ctx, e, db)
	case "disable", "enable":
		u, err = db.SetDisabled(ctx, *email, sub == "disable")
	case "passwd":
		hash, herr := readHash(e, *password)
		if herr != nil {
			return herr
		}
		u, err = db.SetPasswordHash(ctx, *email, hash)
	case "role":
		if *role == "" {
			return &usageError{"admin role: --role is required"}
		}
		u, err = db.SetRole(ctx, *email, *role)
	default:
		return &usageError{fmt.Sprintf("admin: unknown subcommand %q", sub)}
	}
	if errors.Is(err, auth.ErrNotFound) {
		return fmt.Errorf("no admin with email %s (or no such role)", *email)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: admin %d %s (role %s, disabled %t)\n", sub, u.ID, u.Email, u.Role, u.Disabled)
	return nil
}

// readHash takes the password from the flag or the first line of stdin.
func readHash(e env, password string) (string, error) {
	if password == "" {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", &usageError{"no password: give --password or write it on stdin"}
		}
		password = strings.TrimRight(line, "\r\n")
	}
	return auth.HashPassword(password)
}

func listUsers(ctx context.Context, e env, db *postgres.DB) error {
	users, err := db.ListUsers(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tDISABLED\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%s\n", u.ID, u.Email, u.Name, u.Role, u.Disabled, u.CreatedAt.Format("2006-01-02"))
	}
	return tw.Flush()
}
