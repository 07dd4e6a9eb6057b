// Command shopstream streams committed changes of a shop's PostgreSQL tables to
// admin dashboards over WebSockets. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.As(err, new(*loggedError)) {
			fmt.Fprintln(os.Stderr, "shopstream:", err)
		}
		stop()
		os.Exit(exitCode(err))
	}
}
