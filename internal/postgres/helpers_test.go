package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/postgres"
)

// The setup the event log's tests (eventlog_test.go, ticks_test.go) share:
// a fresh database with a writer, a sequencer whose term has begun, one
// Sequence call, the whole log read back.

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// doorbell is the advisory lock a writer's trigger takes to ring.
const doorbell = 7316042871525063

// openWithWriter opens a fresh migrated database and a plain connection to it,
// as a shop's app would write with.
func openWithWriter(t *testing.T) (*postgres.DB, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	db, err := postgres.Open(ctx, url, url, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	writer, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = writer.Close(context.Background()) })
	return db, writer
}

// testTables is the default configuration's TABLES.
func testTables(t *testing.T) []config.Table {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Tables
}

// connectSequencer opens a sequencer connection for tables (the default
// configuration's when nil), closed at the test's end, and begins its term
// when begin is set.
func connectSequencer(t *testing.T, db *postgres.DB, tables []config.Table, begin bool) *postgres.SequencerConn {
	t.Helper()
	ctx := context.Background()
	if tables == nil {
		tables = testTables(t)
	}
	seq, err := db.ConnectSequencer(ctx, tables)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = seq.Close(context.Background()) })
	if begin {
		if _, err := seq.BeginTerm(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return seq
}

// sequence runs one Sequence call for up to limit changes (8 MiB).
func sequence(t *testing.T, seq *postgres.SequencerConn, limit int) events.Batch {
	t.Helper()
	b, err := seq.Sequence(context.Background(), events.BatchRequest{Limit: limit, MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canRing reports whether a writer's trigger could ring the doorbell now.
func canRing(t *testing.T, conn *pgx.Conn) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), `SELECT pg_try_advisory_xact_lock($1)`, int64(doorbell)).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// readAll reads the whole log after position after with lc, limit changes a
// read, and returns "position:data" for each record.
func readAll(t *testing.T, ctx context.Context, lc interface {
	ReadEvents(context.Context, int64, int) ([]events.Record, int64, bool, error)
}, after int64, limit int) []string {
	t.Helper()
	var out []string
	for {
		recs, through, more, err := lc.ReadEvents(ctx, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out = append(out, fmt.Sprintf("%d:%s", r.Position, r.Data))
		}
		if through <= after && more {
			t.Fatalf("a read after %d made no progress", after)
		}
		after = through
		if !more {
			return out
		}
	}
}
