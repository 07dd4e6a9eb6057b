package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/shopstream/shopstream/internal/postgres"
)

// printDatabase tells a developer (serve --dev, make run) how to reach the
// database: the DATABASE_URL the other commands need, and a psql command that
// names the role shopstream logs in as, so that it works whatever the OS user
// (root has no role of its name).
func printDatabase(ctx context.Context, e env, db *postgres.DB, databaseURL string) error {
	role, err := db.CurrentUser(ctx)
	if err != nil {
		return err
	}
	shown, hidden := withRole(databaseURL, role)
	fmt.Fprintf(e.stdout, "database, for the other commands (shopstream admin, tail, doctor) in another terminal:\n  export DATABASE_URL=%s\n", shellQuote(shown))
	fmt.Fprintf(e.stdout, "psql, as any OS user:\n  psql %s\n", shellQuote(shown))
	if hidden {
		fmt.Fprintln(e.stdout, "  (the password is hidden: put yours in place of xxxxx)")
	}
	return nil
}

// withRole returns the URL with the role set when it names none (psql would
// take the OS user's name) and its password, if any, replaced by xxxxx. A
// keyword/value connection string is returned as it is.
func withRole(databaseURL, role string) (string, bool) {
	if !strings.HasPrefix(databaseURL, "postgres://") && !strings.HasPrefix(databaseURL, "postgresql://") {
		return databaseURL, false
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return databaseURL, false
	}
	name := role
	if u.User != nil && u.User.Username() != "" {
		name = u.User.Username()
	}
	_, hasPassword := u.User.Password()
	if hasPassword {
		u.User = url.UserPassword(name, "xxxxx")
	} else {
		u.User = url.User(name)
	}
	return u.String(), hasPassword
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
