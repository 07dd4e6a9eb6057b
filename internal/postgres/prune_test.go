package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/events"
)

// Truncating the oldest table prunes only what it held: a long transaction's
// change, written there long ago and ticked today with fresh changes, must
// not make the ticks of the newer tables' changes (seconds old, well within
// retention) pruned.
func TestTruncationKeepsNewerTablesChanges(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	db.UseLog(testTables(t), events.Builder{}.Build)
	seq, err := db.ConnectSequencer(ctx, testTables(t))
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close(ctx)
	if _, err := seq.BeginTerm(ctx); err != nil {
		t.Fatal(err)
	}
	const retention = time.Hour
	handed := map[string]int64{}
	run := func(sql string) {
		t.Helper()
		if _, err := writer.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	tick := func() {
		t.Helper()
		b, err := seq.Sequence(ctx, events.BatchRequest{Limit: 100, MaxBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range b.Changes {
			handed[orderNumber(t, ch.New)] = ch.Position
		}
	}
	rotate := func() {
		t.Helper()
		run(`UPDATE shopstream.rotation SET switched_at = now() - interval '1 hour'`) // half the retention has passed
		if err := seq.Rotate(ctx, retention); err != nil {
			t.Fatal(err)
		}
	}
	long, err := pgx.Connect(ctx, writer.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close(ctx)
	tx, err := long.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-LONG')`); err != nil { // table 0
		t.Fatal(err)
	}
	rotate() // current 1
	run(`INSERT INTO orders (order_number) VALUES ('ORD-R1')`)
	tick()
	rotate() // current 2
	run(`INSERT INTO orders (order_number) VALUES ('ORD-R2')`)
	tick()
	// The long transaction's change was written two hours ago.
	if _, err := tx.Exec(ctx, `UPDATE shopstream.changes_0 SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	run(`INSERT INTO orders (order_number) VALUES ('ORD-F')`)
	tick() // ORD-LONG and ORD-F
	run(`INSERT INTO orders (order_number) VALUES ('ORD-G')`)
	tick()
	// Table 0's one change is two hours old and ticked, but the tick holding
	// it is seconds old and holds ORD-F of table 2 too: no truncation yet.
	rotate()
	rows := func(table string) int {
		t.Helper()
		var n int
		if err := writer.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows("shopstream.changes_0"); n != 1 {
		t.Fatalf("table 0 holds %d rows, want its one change kept while the tick holding it is within retention", n)
	}
	recs, pruned, err := db.ReplayEvents(ctx, "order", handed["ORD-R1"]-1, handed["ORD-G"], 100)
	if err != nil {
		t.Fatal(err)
	}
	if pruned >= handed["ORD-R1"] || len(recs) != 5 {
		t.Fatalf("replaying after %d (ORD-R1, seconds old, in table 1): %d records, pruned through %d; handed %v: the changes of tables 1 and 2 are still stored and within retention", handed["ORD-R1"]-1, len(recs), pruned, handed)
	}

	// Two hours later everything is past retention: table 0 is truncated,
	// and what that prunes is all older than retention.
	run(`UPDATE shopstream.ticks SET recorded_at = recorded_at - interval '2 hours'`)
	run(`UPDATE shopstream.changes_1 SET created_at = created_at - interval '2 hours'`)
	run(`UPDATE shopstream.changes_2 SET created_at = created_at - interval '2 hours'`)
	rotate()
	if n := rows("shopstream.changes_0"); n != 0 {
		t.Fatalf("table 0 holds %d rows two hours later, want it truncated", n)
	}
	var prunedThrough int64
	if err := writer.QueryRow(ctx, "SELECT pruned_through FROM shopstream.log_state").Scan(&prunedThrough); err != nil {
		t.Fatal(err)
	}
	if prunedThrough != handed["ORD-F"] {
		t.Fatalf("pruned through %d after the truncation, want %d (the last position of the tick holding table 0's change); handed %v", prunedThrough, handed["ORD-F"], handed)
	}
}
