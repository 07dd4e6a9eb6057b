package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Rotate keeps the capture tables within retention without deleting a row
// (PgQ's rotation). Writers append to the current table; the next one in
// turn (the oldest) is truncated once every change in it is older than
// retention and ticked, and becomes current once it is empty and the current
// one has been filled for half the retention. So a change is kept at least
// retention, and at most about twice that.
//
// TRUNCATE takes the table's ACCESS EXCLUSIVE lock, which it waits for at
// most 100 ms (the next rotation tries again): holding it proves that no
// open transaction has written to the table, so every change in it is
// committed or rolled back and the check that all are ticked is final. A
// writer whose statement read the rotation before a switch may still append
// to the old table; that row is kept and ticked like any other.
//
// The log's readers learn what is gone from log_state.pruned_through: the
// last position of the newest tick with changes in the table (each tick
// records its tables). Ticks wholly at or before it are deleted, the newest
// never.
func (s *SequencerConn) Rotate(ctx context.Context, retention time.Duration) error {
	var current int
	var sinceSwitch float64
	if err := s.conn.QueryRow(ctx, `SELECT current, extract(epoch FROM now() - switched_at) FROM shopstream.rotation`).Scan(&current, &sinceSwitch); err != nil {
		return fmt.Errorf("reading the rotation: %w", err)
	}
	oldest := (current + 1) % 3
	table := "shopstream.changes_" + strconv.Itoa(oldest)
	var empty bool
	if err := s.conn.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM `+table+`)`).Scan(&empty); err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	if !empty {
		truncated, err := s.truncate(ctx, table, oldest, retention)
		if err != nil || !truncated {
			return err
		}
	}
	if time.Duration(sinceSwitch*float64(time.Second)) < retention/2 {
		return nil
	}
	if _, err := s.conn.Exec(ctx, `UPDATE shopstream.rotation SET current = $1, switched_at = now()`, oldest); err != nil {
		return fmt.Errorf("switching the capture table: %w", err)
	}
	return nil
}

// truncate empties table when all its changes are older than retention and
// ticked, and records what that pruned. It reports whether it did.
func (s *SequencerConn) truncate(ctx context.Context, table string, n int, retention time.Duration) (bool, error) {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("beginning the rotation: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '100ms'"); err != nil {
		return false, fmt.Errorf("rotating: %w", err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available: a writer is in it
			return false, nil
		}
		return false, fmt.Errorf("locking %s: %w", table, err)
	}
	var bound int64
	err = tx.QueryRow(ctx, rotationCheckSQL(table), retention.Seconds(), int16(1)<<n).Scan(&bound)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // not old enough, or not all ticked yet
	}
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", table, err)
	}
	b := &pgx.Batch{}
	b.Queue("TRUNCATE " + table)
	b.Queue("UPDATE shopstream.log_state SET pruned_through = greatest(pruned_through, $1)", bound)
	b.Queue(`DELETE FROM shopstream.ticks WHERE first_position + count - 1 <= $1
		AND first_position < (SELECT max(first_position) FROM shopstream.ticks)`, bound)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("truncating %s: %w", table, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("truncating %s: %w", table, err)
	}
	return true, nil
}

// rotationCheckSQL returns the last position whose changes may be in table
// when every change in it is older than $1 seconds and ticked ($2: the
// table's bit in ticks.tables), and no row otherwise; nor until the last
// tick with changes in the table is older than retention. The ticks that
// truncation prunes (all up to that one) also hold changes of the newer
// tables, committed before it was recorded: a long transaction's early
// change, ticked with fresh ones, must not prune those
// (TestTruncationKeepsNewerTablesChanges). Waiting for a later tick as well
// would never truncate once writes stop (TestRetentionPrunes); the newest
// tick, never deleted, is then wholly pruned, and a replay below it answers
// resync_required.
func rotationCheckSQL(table string) string {
	return `SELECT coalesce((SELECT max(t.first_position + t.count - 1) FROM shopstream.ticks t WHERE t.tables & $2 <> 0), 0)
		WHERE (SELECT created_at FROM ` + table + ` ORDER BY id DESC LIMIT 1) < now() - make_interval(secs => $1)
		  AND (SELECT coalesce(max(recorded_at), '-infinity') FROM shopstream.ticks t WHERE t.tables & $2 <> 0) < now() - make_interval(secs => $1)
		  AND NOT ` + untickedExistsSQL(table)
}
