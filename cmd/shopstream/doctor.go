package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopstream/shopstream/internal/postgres"
)

// errDoctorFailed is doctor's exit status 1 after its report.
var errDoctorFailed = errors.New("doctor: some checks failed (FAIL lines above)")

// cmdDoctor checks the database of DATABASE_URL as an operator would before
// going live, one line per check; it fails when any check does.
func cmdDoctor(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("doctor", e)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("doctor: unexpected argument %q", fs.Arg(0))}
	}
	cfg, db, err := configAndDB(ctx, e)
	if err != nil {
		fmt.Fprintf(e.stdout, "%-4s  server  %v\n", postgres.StatusFail, err)
		return errDoctorFailed
	}
	defer db.Close()
	checks := db.Doctor(ctx, postgres.DoctorOptions{
		Tables: cfg.Tables, Replica: cfg.CaptureReplica,
		Retention: cfg.Retention, PruneEvery: cfg.PruneEvery, IdlePoll: cfg.IdlePoll,
	})
	width := 0
	for _, c := range checks {
		width = max(width, len(c.Name))
	}
	for _, c := range checks {
		fmt.Fprintf(e.stdout, "%-4s  %-*s  %s\n", c.Status, width, c.Name, c.Detail)
	}
	if postgres.Failed(checks) {
		return errDoctorFailed
	}
	return nil
}
