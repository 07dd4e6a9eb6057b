package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
)

// tick is a row of shopstream.ticks: the changes of the transactions that
// snap sees and prev does not, with ids in [minID, maxID], take the positions
// first .. first+count-1 in id order (migrations/007_ticks.sql).
type tick struct {
	first, count int64
	snap, prev   string
	minID, maxID int64
}

func (t tick) end() int64 { return t.first + t.count - 1 }

// changeSize is a captured row's size in SQL: the uncompressed lengths, read
// from the values' headers (octet_length of a json value, which is text,
// does not detoast it).
const changeSize = `(coalesce(octet_length(c.old_row::text), 0) + coalesce(octet_length(c.new_row::text), 0) + coalesce(octet_length(c.actor), 0))`

// changeCols are the columns of a captured row a page returns, then its rank
// n in the page and the bytes of the rows before it.
const changeCols = `id, txid::text AS txid, entity, action, old_row, new_row, coalesce(actor, '') AS actor, created_at, relid`

// untickedSQL is true for a captured change that no tick holds yet: its
// transaction began after the last tick's snapshot was taken (txid at or
// past that snapshot's xmax: untickedRangeSQL), or was in progress then (in
// its xip: untickedXipSQL). Both must be index conditions on txid, or every
// tick and every doorbell release reads the whole capture table, which
// holds up to a retention's worth of changes (a day of a busy shop: millions
// of rows). The planner cannot see the previous xmax when it plans (a
// subquery) and prices an open `txid >= x` at a third of the table, so it
// reads the table whole; the upper bound, this statement's own xmax, makes
// it a range that it prices as a few rows (changes at or past it are not
// visible here anyway). A long open transaction elsewhere does not widen
// the range: it only stays in xip. (Committed or not: a query sees only the
// committed ones.) TestUntickedLookupsUseTheTxidIndex checks the plans;
// docs/performance.md has what the full scans cost.
const (
	untickedRangeSQL = `c.txid >= (SELECT pg_snapshot_xmax(t.snap) FROM shopstream.ticks t ORDER BY t.first_position DESC LIMIT 1)
		AND c.txid < pg_snapshot_xmax(pg_current_snapshot())`
	untickedXipSQL = `c.txid = ANY (ARRAY(SELECT pg_snapshot_xip(t.snap) FROM (SELECT snap FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1) t))`
	untickedSQL    = `((` + untickedRangeSQL + `) OR ` + untickedXipSQL + `)`
)

// untickedExistsSQL is true when a change in from (aliased c) waits for a
// tick. It asks the two halves of untickedSQL apart, and the xip half one
// transaction at a time: planned for a first row, an EXISTS over their OR,
// or over `= ANY` of an array it cannot see, reads the table whole instead.
func untickedExistsSQL(from string) string {
	return `(EXISTS (SELECT 1 FROM ` + from + ` c WHERE ` + untickedRangeSQL + `)
	OR EXISTS (SELECT 1 FROM (SELECT pg_snapshot_xip(t.snap) AS xid FROM (SELECT snap FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1) t) x
		WHERE EXISTS (SELECT 1 FROM ` + from + ` c WHERE c.txid = x.xid)))`
}

// pendingSQL says whether committed changes wait for a tick.
var pendingSQL = untickedExistsSQL("shopstream.changes")

// tickSQL records a tick and returns the first page of its changes, in one
// statement (one round trip from the doorbell to the hub): the changes no
// tick holds (committed ones: this statement's snapshot is the tick's), the
// tick with their count, first position after the previous tick's last, or
// after the term's floor ($1), and, when that passes the reservation, a new
// reservation $4 ahead whose commit is synchronous. The page: up to $2
// changes by id, fewer when they pass $3 bytes (the change that passes it is
// the last); one more row is returned for the caller's cut (cutPage).
// Nothing is written when no change waits.
const tickSQL = `WITH prev AS MATERIALIZED (
		SELECT first_position + count AS next, snap FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1),
	batch AS MATERIALIZED (
		SELECT ` + changeCols + `, ` + changeSize + ` AS size, c.tab FROM shopstream.changes c WHERE ` + untickedSQL + `),
	agg AS (SELECT count(*) AS n, min(id) AS lo, max(id) AS hi, coalesce(bit_or(1 << tab), 0)::smallint AS tables FROM batch),
	tick AS (
		INSERT INTO shopstream.ticks (first_position, count, snap, prev, min_id, max_id, tables)
		SELECT greatest(prev.next, $1), agg.n, pg_current_snapshot(), prev.snap, agg.lo, agg.hi, agg.tables FROM prev, agg WHERE agg.n > 0
		RETURNING first_position, count, snap::text AS snap, prev::text AS prev, min_id, max_id),
	reserve AS (
		UPDATE shopstream.log_state l SET reserved_through = t.first_position + t.count - 1 + $4
		FROM tick t WHERE t.first_position + t.count - 1 > l.reserved_through
		RETURNING set_config('synchronous_commit', 'on', true) AS durable),
	page AS (
		SELECT * FROM (
			SELECT b.*, row_number() OVER w AS n, sum(b.size) OVER w - b.size AS before,
			       sum(b.size) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 2 PRECEDING) AS before_prev
			FROM batch b WINDOW w AS (ORDER BY b.id)) r
		WHERE r.n <= $2 + 1 AND (r.n <= 2 OR r.before_prev < $3))
	SELECT t.first_position, t.count, t.snap, t.prev, t.min_id, t.max_id, (SELECT count(*) FROM reserve),
		p.id, p.txid, p.entity, p.action, p.old_row, p.new_row, p.actor, p.created_at, p.relid, p.n, p.before
	FROM tick t LEFT JOIN page p ON true ORDER BY p.id`

// pageSQL reads a page of one tick's changes: ids after $3 up to $4 that
// belong to the tick (visible in its snapshot $1, not in the one before, $2),
// after skipping $7 of them, cut as tickSQL's page ($5 changes, $6 bytes).
const pageSQL = `SELECT ` + changeCols + `, n, before FROM (
		SELECT s.*, row_number() OVER w AS n, sum(s.size) OVER w - s.size AS before,
		       sum(s.size) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 2 PRECEDING) AS before_prev
		FROM (SELECT ` + changeCols + `, ` + changeSize + ` AS size FROM shopstream.changes c
			WHERE c.id > $3 AND c.id <= $4 AND pg_visible_in_snapshot(c.txid, $1::pg_snapshot)
			  AND NOT pg_visible_in_snapshot(c.txid, $2::pg_snapshot)
			ORDER BY c.id OFFSET $7 LIMIT $5 + 1) s WINDOW w AS (ORDER BY s.id)) r
	WHERE r.n <= 2 OR r.before_prev < $6
	ORDER BY id`

// pageRow is a captured change as a page returns it, with its rank in the
// page and the bytes of the page's rows before it.
type pageRow struct {
	row    capturedRow
	n      int64
	before int64
}

func scanChange(r *capturedRow, dest ...any) []any {
	c := &r.change
	return append(dest, &c.ID, &r.txid, &c.Entity, &c.Action, &c.Old, &c.New, &c.Actor, &c.At, &r.relid)
}

// cutPage keeps the rows of a page within limit and maxBytes (at least one),
// and one more when the last kept is a DELETE that its transaction's INSERT
// follows: an UPDATE that moved a row between partitions, which tableCheck
// pairs and a page must not split.
func cutPage(rows []pageRow, limit, maxBytes int) []capturedRow {
	k := 0
	for k < len(rows) && rows[k].n <= int64(limit) && (k == 0 || rows[k].before < int64(maxBytes)) {
		k++
	}
	if k < len(rows) && k > 0 {
		last, next := rows[k-1].row, rows[k].row
		if last.change.Action == "deleted" && next.change.Action == "created" && last.txid == next.txid {
			k++
		}
	}
	out := make([]capturedRow, k)
	for i := range k {
		out[i] = rows[i].row
	}
	return out
}

// readPage reads the changes of t after id lo, skipping skip of them, cut to
// limit and maxBytes.
func readPage(ctx context.Context, conn *pgx.Conn, t tick, lo, skip int64, limit, maxBytes int) ([]capturedRow, error) {
	rows, err := conn.Query(ctx, pageSQL, t.snap, t.prev, lo, t.maxID, limit, maxBytes, skip)
	if err != nil {
		return nil, fmt.Errorf("reading a page of the tick at %d: %w", t.first, err)
	}
	var got []pageRow
	for rows.Next() {
		var p pageRow
		if err := rows.Scan(append(scanChange(&p.row), &p.n, &p.before)...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading a page of the tick at %d: %w", t.first, err)
		}
		got = append(got, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading a page of the tick at %d: %w", t.first, err)
	}
	return cutPage(got, limit, maxBytes), nil
}

// position numbers rows from position from, in order.
func position(rows []capturedRow, from int64) {
	for i := range rows {
		rows[i].change.Position = from + int64(i)
	}
}

// headSQL is the log's last position: that of the last tick, or where the
// current term starts when it has no tick yet (BeginTerm).
const headSQL = `greatest((SELECT last_position FROM shopstream.log_state),
	(SELECT first_position + count - 1 FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1))`

// findTickSQL returns the log's head and the first tick with positions after
// $1 (none when no tick has), and what the configured names ($2) resolve to.
const findTickSQL = `SELECT ` + headSQL + `, t.first_position, t.count, t.snap::text, t.prev::text, t.min_id, t.max_id,
		ARRAY(SELECT coalesce(to_regclass(n)::oid, 0) FROM unnest($2::text[]) WITH ORDINALITY u(n, i) ORDER BY i)
	FROM (SELECT 1) one LEFT JOIN LATERAL (
		SELECT * FROM (
			(SELECT * FROM shopstream.ticks WHERE first_position <= $1 + 1 ORDER BY first_position DESC LIMIT 1)
			UNION ALL
			(SELECT * FROM shopstream.ticks WHERE first_position > $1 + 1 ORDER BY first_position LIMIT 1)) x
		WHERE x.first_position + x.count - 1 > $1 ORDER BY x.first_position LIMIT 1) t ON true`

// logReader reads the log after a position, page by page: the ticks, their
// changes, and the records built from them. It remembers where its last
// page ended, so that reading on from there pages by id instead of skipping.
type logReader struct {
	tables *tableCheck
	build  func([]events.Change) []events.Record
	// the last page ended at position lastPos, change lastID, in the tick at lastTick
	lastPos, lastID, lastTick int64
}

func newLogReader(tables []config.Table, build func([]events.Change) []events.Record) *logReader {
	if build == nil {
		build = events.Builder{}.Build
	}
	return &logReader{tables: newTableCheck(tables), build: build}
}

// read returns the records of up to limit changes after position after (fewer
// when they pass maxBytes), the position through which the read is complete,
// and whether changes may follow it.
func (lr *logReader) read(ctx context.Context, conn *pgx.Conn, after int64, limit, maxBytes int) ([]events.Record, int64, bool, error) {
	var head int64
	var first, count, minID, maxID *int64
	var snap, prev *string
	var named []uint32
	if err := conn.QueryRow(ctx, findTickSQL, after, lr.tables.names).Scan(&head, &first, &count, &snap, &prev, &minID, &maxID, &named); err != nil {
		return nil, 0, false, fmt.Errorf("reading the ticks: %w", err)
	}
	lr.tables.observe(named)
	if first == nil {
		return nil, max(head, after), false, nil
	}
	t := tick{first: *first, count: *count, snap: *snap, prev: *prev, minID: *minID, maxID: *maxID}
	consumed := max(after-t.first+1, 0) // ranks of the tick at or before after
	if consumed == 0 {
		rows, through, err := readTicks(ctx, conn, after, limit, maxBytes, lr)
		if err != nil {
			return nil, 0, false, err
		}
		changes, err := lr.tables.prepare(ctx, conn, rows)
		if err != nil {
			return nil, 0, false, err
		}
		return lr.build(changes), through, through < head, nil
	}
	lo, skip := t.minID-1, consumed
	if consumed > 0 && lr.lastTick == t.first && lr.lastPos == after {
		lo, skip = lr.lastID, 0
	}
	rows, err := readPage(ctx, conn, t, lo, skip, limit, maxBytes)
	if err != nil {
		return nil, 0, false, err
	}
	position(rows, t.first+consumed)
	through := t.end()
	if len(rows) > 0 && consumed+int64(len(rows)) < t.count {
		through = t.first + consumed + int64(len(rows)) - 1
		lr.lastPos, lr.lastID, lr.lastTick = through, rows[len(rows)-1].change.ID, t.first
	}
	changes, err := lr.tables.prepare(ctx, conn, rows)
	if err != nil {
		return nil, 0, false, err
	}
	return lr.build(changes), through, through < head, nil
}

// UseLog sets what the log's readers (listeners, replays) check and build
// changes with: the configured tables and the event builder. Call it before
// ConnectListener and ReplayEvents; without it, no change is accepted.
func (db *DB) UseLog(tables []config.Table, build func([]events.Change) []events.Record) {
	db.logMu.Lock()
	defer db.logMu.Unlock()
	db.logTables, db.logBuild = tables, build
}

// ticksPerRead bounds how many whole ticks one read covers.
const ticksPerRead = 256

// ticksSQL reads the changes of the ticks after position $1 (at most $4
// ticks), each numbered by id within its tick, cut as a page across them ($2
// changes, $3 bytes, plus one row for cutTicks). A tick whose changes are
// gone (truncated) comes as one row without a change.
const ticksSQL = `SELECT first_position, count, id, txid, entity, action, old_row, new_row, actor, created_at, relid, n, before FROM (
		SELECT t.first_position, t.count, c.*,
			coalesce(sum(c.size) OVER w, 0) - coalesce(c.size, 0) AS before,
			coalesce(sum(c.size) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 2 PRECEDING), 0) AS before_prev,
			count(c.id) OVER w AS g
		FROM (SELECT * FROM shopstream.ticks WHERE first_position > $1 ORDER BY first_position LIMIT $4) t
		LEFT JOIN LATERAL (
			SELECT s.*, row_number() OVER (ORDER BY s.id) AS n FROM (
				SELECT ` + changeCols + `, ` + changeSize + ` AS size FROM shopstream.changes c
				WHERE c.id >= t.min_id AND c.id <= t.max_id AND pg_visible_in_snapshot(c.txid, t.snap)
				  AND NOT pg_visible_in_snapshot(c.txid, t.prev)
				ORDER BY c.id LIMIT $2 + 1) s) c ON true
		WINDOW w AS (ORDER BY t.first_position, c.id)) r
	WHERE r.g <= $2 + 1 AND (r.g <= 2 OR r.before_prev < $3)
	ORDER BY first_position, id`

// readTicks reads the changes of the ticks after position after in one
// round trip, positioned, up to limit changes (fewer when they pass maxBytes
// together, at least one), and returns the position through which the read
// is complete. A read that ends inside a tick leaves lr where to go on.
func readTicks(ctx context.Context, conn *pgx.Conn, after int64, limit, maxBytes int, lr *logReader) ([]capturedRow, int64, error) {
	res, err := conn.Query(ctx, ticksSQL, after, limit, maxBytes, ticksPerRead)
	if err != nil {
		return nil, 0, fmt.Errorf("reading ticks: %w", err)
	}
	defer res.Close()
	var out []capturedRow
	through := after
	var cur struct{ first, count, n int64 }
	var last capturedRow
	stopped := false
	for res.Next() {
		var first, count int64
		var id, n, before *int64
		var r capturedRow
		c := &r.change
		var txid, entity, action, actor *string
		var at *time.Time
		if err := res.Scan(&first, &count, &id, &txid, &entity, &action, &c.Old, &c.New, &actor, &at, &r.relid, &n, &before); err != nil {
			return nil, 0, fmt.Errorf("reading ticks: %w", err)
		}
		if id == nil { // a tick without its changes
			through = first + count - 1
			continue
		}
		c.ID, r.txid, c.Entity, c.Action, c.Actor, c.At = *id, *txid, *entity, *action, *actor, *at
		if len(out) >= limit || len(out) > 0 && *before >= int64(maxBytes) {
			// The cut: one more when it would split a moved row's DELETE
			// from its INSERT (see cutPage).
			if last.change.Action == "deleted" && c.Action == "created" && last.txid == r.txid && first == cur.first {
				c.Position = first + *n - 1
				out = append(out, r)
				cur.n = *n
			}
			stopped = true
			break
		}
		if first != cur.first {
			cur.first, cur.count = first, count
		}
		c.Position = first + *n - 1
		cur.n = *n
		out = append(out, r)
		last = r
		through = c.Position
		if *n == count {
			through = first + count - 1
		}
	}
	if err := res.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading ticks: %w", err)
	}
	switch {
	case stopped && cur.n < cur.count: // inside a tick: the next read goes on by id
		through = cur.first + cur.n - 1
		lr.lastPos, lr.lastID, lr.lastTick = through, out[len(out)-1].change.ID, cur.first
	case stopped:
		through = cur.first + cur.count - 1
	case len(out) > 0: // every change returned: the last tick is complete (or its other changes are gone)
		through = max(through, cur.first+cur.count-1)
	}
	return out, through, nil
}
