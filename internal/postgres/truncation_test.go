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

// A tick may hold changes of two capture tables: a long transaction wrote
// one into the table that has since become the oldest, and it commits with
// fresh changes in the current one. Truncating the oldest table must not
// leave that tick readable with part of its changes gone: a reader would
// rank the rest from the tick's first position and give them other
// positions than the ticker handed out.
func TestTruncationNeverRenumbersATick(t *testing.T) {
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
	seq, err := db.ConnectSequencer(ctx, testTables(t))
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close(ctx)
	if _, err := seq.BeginTerm(ctx); err != nil {
		t.Fatal(err)
	}
	handed := map[string]int64{} // order number -> position the ticker gave it
	tickAll := func() {
		t.Helper()
		for {
			b, err := seq.Sequence(ctx, events.BatchRequest{Limit: 100, MaxBytes: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range b.Changes {
				handed[orderNumber(t, ch.New)] = ch.Position
			}
			if !b.More {
				return
			}
		}
	}
	const retention = 200 * time.Millisecond
	older := func(sql string, q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) {
		t.Helper()
		waitfor.Until(t, sql, func() bool {
			var ok bool
			if err := q.QueryRow(ctx, `SELECT coalesce(clock_timestamp() - (`+sql+`) > $1::interval, true)`, retention.String()).Scan(&ok); err != nil {
				t.Fatal(err)
			}
			return ok
		})
	}
	rotate := func() {
		t.Helper()
		older(`SELECT switched_at FROM shopstream.rotation`, writer)
		if err := seq.Rotate(waitfor.Context(t), retention); err != nil {
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
	if _, err := tx.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-LONG')`); err != nil { // into table 0
		t.Fatal(err)
	}
	rotate() // 1 becomes current
	rotate() // 2 becomes current: 0, held by the open writer, is the oldest
	var cur int
	if err := writer.QueryRow(ctx, `SELECT current FROM shopstream.rotation`).Scan(&cur); err != nil || cur != 2 {
		t.Fatalf("current table %d (%v), want 2", cur, err)
	}
	older(`SELECT max(created_at) FROM shopstream.changes_0`, tx)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-F1'), ('ORD-F2')`); err != nil { // into table 2
		t.Fatal(err)
	}
	tickAll() // one tick: ORD-LONG from table 0, ORD-F1 and ORD-F2 from table 2
	if len(handed) != 3 {
		t.Fatalf("handed out %v, want 3 changes", handed)
	}
	if err := seq.Rotate(ctx, retention); err != nil { // 0: every change ticked and past retention
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-G')`); err != nil {
		t.Fatal(err)
	}
	tickAll()
	// and once the tick holding table 0's change is past retention too
	// (TestTruncationKeepsNewerTablesChanges).
	if _, err := writer.Exec(ctx, `UPDATE shopstream.ticks SET recorded_at = now() - make_interval(secs => $1) WHERE tables & 1 <> 0`, 2*retention.Seconds()); err != nil {
		t.Fatal(err)
	}
	if err := seq.Rotate(ctx, retention); err != nil {
		t.Fatal(err)
	}
	var rows0 int
	var pruned int64
	if err := writer.QueryRow(ctx, `SELECT (SELECT count(*) FROM shopstream.changes_0), pruned_through FROM shopstream.log_state`).Scan(&rows0, &pruned); err != nil {
		t.Fatal(err)
	}
	if rows0 != 0 || pruned < handed["ORD-F2"] {
		t.Fatalf("table 0 holds %d rows, pruned through %d: want it truncated once a later tick exists, through %d", rows0, pruned, handed["ORD-F2"])
	}
	// Every reader, from any point, gives each change the ticker's position.
	for _, after := range []int64{0, handed["ORD-LONG"] - 1, handed["ORD-F1"]} {
		lc, err := db.ConnectListener(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, ctx, lc, after, 100)
		_ = lc.Close(ctx)
		for _, g := range got {
			pos, rec, _ := strings.Cut(g, ":")
			num := orderNumber(t, []byte(rec))
			if want := fmt.Sprint(handed[num]); pos != want {
				t.Errorf("after %d a listener read %s at position %s; the ticker handed it out at %s (handed %v)", after, num, pos, want, handed)
			}
		}
	}
}

// orderNumber returns the order_number in a captured orders row.
func orderNumber(t *testing.T, row []byte) string {
	t.Helper()
	s := string(row)
	i := strings.Index(s, `"order_number":"`)
	if i < 0 {
		t.Fatalf("no order_number in %s", s)
	}
	s = s[i+len(`"order_number":"`):]
	return s[:strings.IndexByte(s, '"')]
}
