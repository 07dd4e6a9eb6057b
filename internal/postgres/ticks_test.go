package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// A change belongs to the first tick whose snapshot sees its transaction,
// however long that transaction stayed open, and every reader derives the
// same position for it: the sequencer's pages and a listener's reads from the
// start agree, with pages cut at any size.
func TestTicksGiveEveryReaderTheSamePositions(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	data := func(c []events.Change) []events.Record {
		recs := make([]events.Record, len(c))
		for i := range c {
			recs[i] = events.Record{Position: c[i].Position, Entity: c[i].Entity, Action: c[i].Action, Data: c[i].New, At: c[i].At}
		}
		return recs
	}
	db.UseLog(testTables(t), data)
	seq := connectSequencer(t, db, nil, true)
	var handed []string
	tickAll := func(limit int) {
		t.Helper()
		for {
			b := sequence(t, seq, limit)
			for _, r := range data(b.Changes) {
				handed = append(handed, fmt.Sprintf("%d:%s", r.Position, r.Data))
			}
			if !b.More {
				return
			}
		}
	}
	exec := func(q pgx.Tx, sql string) {
		t.Helper()
		if _, err := q.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	write := func(sql string) {
		t.Helper()
		if _, err := writer.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// A long transaction writes first (its xid and its change's id are the
	// smallest) and commits last.
	long, err := pgx.Connect(ctx, writer.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close(ctx)
	tx, err := long.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec(tx, `INSERT INTO orders (order_number) VALUES ('ORD-LONG')`)
	write(`INSERT INTO orders (order_number) SELECT 'ORD-A' || g FROM generate_series(1, 5) g`)
	tickAll(2)
	write(`INSERT INTO orders (order_number) VALUES ('ORD-B')`)
	tickAll(100)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	write(`INSERT INTO orders (order_number) VALUES ('ORD-C')`)
	tickAll(1)
	if len(handed) != 8 {
		t.Fatalf("the sequencer handed out %d changes, want 8:\n%s", len(handed), strings.Join(handed, "\n"))
	}
	// Commit order: the long transaction's change comes after ORD-B.
	order := []string{"ORD-A1", "ORD-A2", "ORD-A3", "ORD-A4", "ORD-A5", "ORD-B", "ORD-LONG", "ORD-C"}
	for i, h := range handed {
		if !strings.Contains(h, `"`+order[i]+`"`) || !strings.HasPrefix(h, fmt.Sprint(i+1)+":") {
			t.Fatalf("change %d: %s, want position %d for %s\n%s", i, h, i+1, order[i], strings.Join(handed, "\n"))
		}
	}
	for _, limit := range []int{1, 3, 1000} {
		lc, err := db.ConnectListener(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, ctx, lc, 0, limit)
		_ = lc.Close(ctx)
		if strings.Join(got, "\n") != strings.Join(handed, "\n") {
			t.Fatalf("a listener reading pages of %d got\n%s\nwant\n%s", limit, strings.Join(got, "\n"), strings.Join(handed, "\n"))
		}
	}
	// From the middle of a tick, without a page that ended there.
	lc, err := db.ConnectListener(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	if got := readAll(t, ctx, lc, 3, 2); strings.Join(got, "\n") != strings.Join(handed[3:], "\n") {
		t.Fatalf("after 3: got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(handed[3:], "\n"))
	}
}

// The trigger leaves the secret columns out of what it stores: a secret
// never outlives the writer's transaction.
func TestSecretColumnsAreNeverStored(t *testing.T) {
	ctx := context.Background()
	_, writer := openWithWriter(t)
	if _, err := writer.Exec(ctx, `INSERT INTO customers (email, name, password_hash) VALUES ('s@example.com', 'S', 'hash-SECRET')`); err != nil {
		t.Fatal(err)
	}
	var row string
	if err := writer.QueryRow(ctx, `SELECT new_row::text FROM shopstream.changes WHERE entity = 'customer'`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, "SECRET") || strings.Contains(row, "password_hash") || !strings.Contains(row, `"email":"s@example.com"`) {
		t.Fatalf("stored row %s: want it without password_hash", row)
	}
}

// Retention empties whole capture tables: the sequencer switches the table the
// triggers fill and truncates the oldest once all its changes are ticked and
// older than the retention, and records what that pruned.
func TestRotationTruncatesWholeTables(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	db.UseLog(testTables(t), events.Builder{}.Build)
	seq := connectSequencer(t, db, nil, true)
	reader := writer
	state := func() (current int, rows [3]int, pruned int64) {
		t.Helper()
		if err := reader.QueryRow(ctx, `SELECT (SELECT current FROM shopstream.rotation),
			(SELECT count(*) FROM shopstream.changes_0), (SELECT count(*) FROM shopstream.changes_1),
			(SELECT count(*) FROM shopstream.changes_2), (SELECT pruned_through FROM shopstream.log_state)`).Scan(&current, &rows[0], &rows[1], &rows[2], &pruned); err != nil {
			t.Fatal(err)
		}
		return current, rows, pruned
	}
	write := func(n int) {
		t.Helper()
		if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) SELECT 'ORD-ROT' || g FROM generate_series(1, $1) g`, n); err != nil {
			t.Fatal(err)
		}
		sequence(t, seq, 1000)
	}
	const retention = 200 * time.Millisecond
	rotate := func() {
		t.Helper()
		// The changes must be older than the retention, by the database's clock.
		waitfor.Until(t, "the changes older than the retention", func() bool {
			var old bool
			if err := reader.QueryRow(ctx, `SELECT coalesce(clock_timestamp() - max(created_at) > $1::interval, true) FROM shopstream.changes`, retention.String()).Scan(&old); err != nil {
				t.Fatal(err)
			}
			return old
		})
		// A rotation that waited for an open writer would wait here until the
		// deadline: the writer below commits only after it.
		if err := seq.Rotate(waitfor.Context(t), retention); err != nil {
			t.Fatal(err)
		}
	}
	write(3) // into table 0
	rotate() // 1 is empty: it becomes current
	if cur, rows, _ := state(); cur != 1 || rows != [3]int{3, 0, 0} {
		t.Fatalf("after the first rotation: current %d, rows %v", cur, rows)
	}
	write(2) // into table 1
	rotate() // 2 becomes current
	write(1) // into table 2
	rotate() // 0 is the oldest: truncated, then current
	cur, rows, pruned := state()
	if cur != 0 || rows != [3]int{0, 2, 1} || pruned < 3 {
		t.Fatalf("after the third rotation: current %d, rows %v, pruned through %d; want 0, [0 2 1], at least 3", cur, rows, pruned)
	}
	// An open writer in the oldest table holds it: no truncation, no wait.
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-OPEN')`); err != nil { // into table 0
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, writer.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	reader = other
	if _, err := other.Exec(ctx, `UPDATE shopstream.rotation SET current = 2`); err != nil { // as if switched meanwhile: 0 is the oldest
		t.Fatal(err)
	}
	rotate()
	if _, rows, _ := state(); rows[0] != 0 {
		t.Fatalf("the oldest table holds %d rows; the writer's is not committed yet", rows[0])
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, rows, _ := state(); rows[0] != 1 {
		t.Fatalf("the writer's change is lost: rows %v", rows)
	}
}
