package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const doorbell = 7316042871525063

// canRing reports whether a writer's trigger could ring the doorbell now.
func canRing(t *testing.T, conn *pgx.Conn) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), `SELECT pg_try_advisory_xact_lock($1)`, int64(doorbell)).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// While the sequencer works it holds the doorbell, so busy writers do not
// ring (each ring wakes every listening backend); Release hands it back and
// reports the rows committed meanwhile.
func TestSequencerSilencesTheDoorbellWhileItWorks(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	db, err := postgres.Open(ctx, url, url, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seq, err := db.ConnectSequencer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close(ctx)
	writer, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(ctx)
	write := func() {
		t.Helper()
		if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-BELL')`); err != nil {
			t.Fatal(err)
		}
	}
	var got []events.Change
	build := func(c []events.Change) ([]events.Record, error) {
		got = append(got, c...)
		return nil, nil
	}

	write()
	if !canRing(t, writer) {
		t.Fatal("doorbell held before the sequencer worked")
	}
	if n, _, err := seq.Sequence(ctx, 100, false, build); err != nil || n != 1 {
		t.Fatalf("sequence: %d rows, %v", n, err)
	}
	if canRing(t, writer) {
		t.Fatal("a writer could ring while the sequencer works")
	}
	write() // cannot ring: Release must report it
	pending, err := seq.Release(ctx)
	if err != nil || !pending {
		t.Fatalf("release: pending %v, %v; want the row written meanwhile", pending, err)
	}
	if !canRing(t, writer) {
		t.Fatal("doorbell still held after Release")
	}
	if pending, err := seq.Release(ctx); err != nil || pending {
		t.Fatalf("second release: %v %v, want a no-op", pending, err)
	}

	// A writer's transaction that holds the doorbell (a long import) never
	// makes the sequencer wait: it works without silencing it.
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(doorbell)); err != nil {
		t.Fatal(err)
	}
	if n, _, err := seq.Sequence(ctx, 100, false, build); err != nil || n != 1 {
		t.Fatalf("sequence with the doorbell held by a writer: %d rows, %v", n, err)
	}
	if pending, err := seq.Release(ctx); err != nil || pending {
		t.Fatalf("release without the lock: %v %v, want a no-op", pending, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Entity != "order" || got[0].Action != "created" {
		t.Fatalf("changes taken: %+v", got)
	}
}
