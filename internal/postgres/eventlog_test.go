package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// While the sequencer works it holds the doorbell, so busy writers do not
// ring (each ring wakes every listening backend); Release hands it back and
// reports the rows committed meanwhile.
func TestSequencerSilencesTheDoorbellWhileItWorks(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	seq := connectSequencer(t, db, nil, false)
	write := func() {
		t.Helper()
		if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-BELL')`); err != nil {
			t.Fatal(err)
		}
	}
	var got []events.Change

	write()
	if !canRing(t, writer) {
		t.Fatal("doorbell held before the sequencer worked")
	}
	if b := sequence(t, seq, 100); len(b.Changes) != 1 {
		t.Fatalf("sequence: %d changes", len(b.Changes))
	} else {
		got = append(got, b.Changes...)
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
	if b := sequence(t, seq, 100); len(b.Changes) != 1 {
		t.Fatalf("sequence with the doorbell held by a writer: %d changes", len(b.Changes))
	} else {
		got = append(got, b.Changes...)
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

// The sequencer commits its batches asynchronously, so a PostgreSQL crash may
// lose batches whose positions clients have already seen. Those positions must
// never be given to other events: a new sequencer starts after the durable
// reservation, unless its predecessor stopped cleanly and gave it back.
func TestPositionsAreNeverHandedOutTwice(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	state := func() (last, reserved int64) {
		t.Helper()
		if err := writer.QueryRow(ctx, `SELECT greatest(last_position, (SELECT max(first_position + count - 1) FROM shopstream.ticks)), reserved_through
			FROM shopstream.log_state`).Scan(&last, &reserved); err != nil {
			t.Fatal(err)
		}
		return last, reserved
	}
	// term runs one sequencer: it writes one row and orders it.
	term := func(end bool) int64 {
		t.Helper()
		seq := connectSequencer(t, db, nil, true)
		defer seq.Close(ctx)
		if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-TERM')`); err != nil {
			t.Fatal(err)
		}
		b := sequence(t, seq, 100)
		if len(b.Changes) != 1 {
			t.Fatalf("sequence: %d changes", len(b.Changes))
		}
		last := b.Through
		if end {
			if err := seq.EndTerm(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return last
	}

	if got := term(false); got != 1 {
		t.Fatalf("first position %d, want 1", got)
	}
	last, reserved := state()
	if last != 1 || reserved != 1+100_000 {
		t.Fatalf("after the first batch: last %d, reserved %d; want 1 and a durable reservation of 100,000 ahead", last, reserved)
	}
	// What a crash that lost the batch after position 1 leaves behind: the
	// state of position 1, while clients may have seen positions up to the
	// reservation. The next sequencer must start after it.
	if got := term(true); got != reserved+1 {
		t.Fatalf("after a sequencer that did not stop cleanly: position %d, want %d", got, reserved+1)
	}
	// That one stopped cleanly: no jump for its successor.
	if last, reserved = state(); reserved != last {
		t.Fatalf("after a clean stop: last %d, reserved %d; want the reservation given back", last, reserved)
	}
	if got := term(true); got != last+1 {
		t.Fatalf("after a clean stop: position %d, want %d", got, last+1)
	}
	var n int
	if err := writer.QueryRow(ctx, `SELECT count(*) FROM shopstream.ticks WHERE max_id > 0`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d ticks in the log (%v), want 3", n, err)
	}
}

// headSink records the positions a listener reports.
type headSink struct{ pos chan int64 }

func (s headSink) Publish(recs []events.Record) {
	for _, r := range recs {
		s.pos <- r.Position
	}
}
func (s headSink) SetPosition(p int64) { s.pos <- p }

// After a crash a new sequencer's positions jump past the reservation before
// any event fills them. Listeners must follow the jump, even with no event
// after it: a client that saw a position of a lost batch resumes with it, and
// a "since" beyond the instance's position is refused as ahead of the log.
func TestListenerFollowsAPositionJump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	db, writer := openWithWriter(t)
	seq := connectSequencer(t, db, nil, true)
	if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number) VALUES ('ORD-JUMP')`); err != nil {
		t.Fatal(err)
	}
	if b := sequence(t, seq, 100); len(b.Changes) != 1 {
		t.Fatalf("sequence: %d changes", len(b.Changes))
	}
	_ = seq.Close(ctx) // no EndTerm: as if it had crashed

	sink := headSink{pos: make(chan int64, 16)}
	l := events.NewListener(func(ctx context.Context) (events.ListenConn, error) { return db.ConnectListener(ctx) },
		sink, slog.New(slog.DiscardHandler))
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-sink.pos; got != 1 {
		t.Fatalf("listener started at %d, want 1", got)
	}
	seq2 := connectSequencer(t, db, nil, false)
	jumped, err := seq2.BeginTerm(ctx)
	if err != nil || jumped != 1+100_000 {
		t.Fatalf("new term starts after %d (%v), want 100001", jumped, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Run(runCtx); close(done) }() // reads the log at once: no event, but the last position moved
	defer func() { stop(); <-done }()
	select {
	case got := <-sink.pos:
		if got != jumped {
			t.Fatalf("listener moved to %d, want %d", got, jumped)
		}
	case <-ctx.Done():
		t.Fatal("the listener did not follow the jump")
	}
}

// The sequencer accepts an inbox row only for the entity of the table that
// wrote it: a row claiming another entity (a trigger attached by someone else
// with another entity's name, or a row forged into the inbox) is refused, and
// rows from the partitions of a configured partitioned table count as its own.
func TestSequencerRefusesRowsFromAnotherEntitysTable(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	for _, sql := range []string{
		`CREATE TABLE sales (id bigint, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE sales_eu PARTITION OF sales FOR VALUES IN ('eu')`,
		`CREATE TABLE sales_us PARTITION OF sales FOR VALUES IN ('us')`,
		`CREATE TRIGGER shopstream_capture_iud AFTER INSERT OR DELETE ON sales FOR EACH ROW EXECUTE FUNCTION shopstream.capture('order')`,
		// A table of nobody's entity whose trigger says "customer".
		`CREATE TABLE imposter (id bigint PRIMARY KEY)`,
		`CREATE TRIGGER t AFTER INSERT ON imposter FOR EACH ROW EXECUTE FUNCTION shopstream.capture('customer')`,
		`INSERT INTO sales VALUES (1, 'eu'), (2, 'us')`,
		`INSERT INTO imposter VALUES (1)`,
		`INSERT INTO customers (email, name) VALUES ('real@example.com', 'Real')`,
		// A row written straight into a capture table, claiming the customers table is an order's.
		`INSERT INTO shopstream.changes_0 (entity, action, new_row, relid) VALUES ('order', 'created', '{}', 'public.customers'::regclass)`,
	} {
		if _, err := writer.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	tables := []config.Table{{Entity: "order", Name: "public.sales"}, {Entity: "customer", Name: "public.customers"}}
	seq := connectSequencer(t, db, tables, false)
	b := sequence(t, seq, 100)
	if b.Rows != 5 {
		t.Fatalf("sequence: %d rows", b.Rows)
	}
	var got []string
	for _, c := range b.Changes {
		got = append(got, fmt.Sprintf("%s refused=%v", c.Entity, c.Refused != nil))
	}
	want := []string{"order refused=false", "order refused=false", "customer refused=true", "customer refused=false", "order refused=true"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// Pages are bounded by bytes as well as rows: rows of 3 MiB go three to an
// 8 MiB page (the row that passes the bound is the last), whether the sequencer
// hands out the tick that holds them all or a listener reads it, and a cut
// page says more may follow.
func TestBatchesAndPagesBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	db, writer := openWithWriter(t)
	if _, err := writer.Exec(ctx, `ALTER TABLE orders ADD COLUMN blob text`); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `INSERT INTO orders (order_number, blob) SELECT 'ORD-BIG-' || g, repeat(md5(g::text), 3 * 1024 * 1024 / 32) FROM generate_series(1, 7) g`); err != nil {
		t.Fatal(err)
	}
	seq := connectSequencer(t, db, nil, true)
	var sizes []int
	db.UseLog(testTables(t), events.Builder{}.Build)
	for total := 0; total < 7; {
		n := len(sequence(t, seq, 1000).Changes)
		if n == 0 {
			t.Fatal("sequence: no change")
		}
		sizes, total = append(sizes, n), total+n
	}
	if fmt.Sprint(sizes) != "[3 3 1]" {
		t.Fatalf("batches of %v rows, want [3 3 1]", sizes)
	}
	lc, err := db.ConnectListener(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	var pages []int
	for after := int64(0); ; {
		recs, last, more, err := lc.ReadEvents(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(recs))
		if !more {
			if last != 7 {
				t.Fatalf("log ends at %d, want 7", last)
			}
			break
		}
		after = last
	}
	// 8 MiB pages: three events of 3 MiB each fit before the bound is passed.
	if fmt.Sprint(pages) != "[3 3 1]" {
		t.Fatalf("pages of %v events, want [3 3 1]", pages)
	}
}
