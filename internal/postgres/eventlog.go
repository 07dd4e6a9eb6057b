package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
)

// Notification channels.
const (
	inboxChannel    = "shopstream_inbox"    // writers ring the sequencer
	eventsChannel   = "shopstream_events"   // the sequencer rings every instance
	sessionsChannel = "shopstream_sessions" // a session row was deleted
)

// sequencerLockKey is the session advisory lock that elects the sequencer.
const sequencerLockKey = 7316042871525064

// doorbellLockKey is the advisory lock a writer's trigger must get to ring the
// sequencer (migrations/002_event_log.sql). The sequencer holds it while it
// works, so that writers ring only when it may be asleep.
const doorbellLockKey = 7316042871525063

// SequencerConn is the sequencer's dedicated connection: it holds the election
// lock for as long as it lives and listens for the writers' doorbell.
type SequencerConn struct {
	conn     *pgx.Conn
	holding  bool  // the doorbell lock, at session level
	reserved int64 // log_state.reserved_through, as of the current batch
	tables   *tableCheck
}

// reserveAhead is how many positions one durable reservation covers: after a
// crash of PostgreSQL or of the sequencer, positions jump by at most this much.
const reserveAhead = 100_000

// ConnectSequencer opens the sequencer's dedicated connection. tables are the
// configured tables (TABLES): a change is accepted only from its entity's.
func (db *DB) ConnectSequencer(ctx context.Context, tables []config.Table) (*SequencerConn, error) {
	conn, err := db.connectDedicated(ctx)
	if err != nil {
		return nil, err
	}
	return &SequencerConn{conn: conn, tables: newTableCheck(tables)}, nil
}

// Lead waits for the election lock, then listens for the writers' doorbell (a
// follower does not listen: it would only pile up rings it never reads). The
// wait is one statement that PostgreSQL answers when the lock is granted, i.e.
// as soon as the leader's session ends; the role's timeouts must not end it.
// The lock is held until the connection closes. client_connection_check_interval
// lets a waiting backend whose client went away (shutdown, a dropped link) leave
// the lock queue at once rather than take the lock, find the socket closed and
// only then release it.
func (s *SequencerConn) Lead(ctx context.Context) error {
	if _, err := s.conn.Exec(ctx, "SET statement_timeout = 0; SET lock_timeout = 0; SET client_connection_check_interval = '1s'"); err != nil {
		return fmt.Errorf("preparing to wait for the sequencer lock: %w", err)
	}
	if _, err := s.conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(sequencerLockKey)); err != nil {
		return fmt.Errorf("waiting for the sequencer lock: %w", err)
	}
	if _, err := s.conn.Exec(ctx, "LISTEN "+pgx.Identifier{inboxChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listening for the inbox: %w", err)
	}
	return nil
}

// BeginTerm starts the work of a newly elected sequencer: positions go on after
// the last reservation, since its predecessor may have handed out positions in
// batches that a crash then lost.
// It returns the position the term starts after.
func (s *SequencerConn) BeginTerm(ctx context.Context) (int64, error) {
	var last int64
	if err := s.conn.QueryRow(ctx, `UPDATE shopstream.log_state
		SET last_position = greatest(last_position, reserved_through), reserved_through = greatest(last_position, reserved_through)
		RETURNING last_position`).Scan(&last); err != nil {
		return 0, fmt.Errorf("starting a sequencer term: %w", err)
	}
	return last, nil
}

// EndTerm gives the unused reserved positions back as a sequencer stops
// cleanly, so that its successor goes on without a jump. Its synchronous commit
// also makes every earlier batch durable. A connection left inside a batch's
// transaction (its context ended between the two round trips) gives nothing
// back: the successor then skips the reservation.
func (s *SequencerConn) EndTerm(ctx context.Context) error {
	if st := s.conn.PgConn().TxStatus(); st != 'I' {
		return fmt.Errorf("ending the sequencer term: connection is in a transaction (status %c)", st)
	}
	if _, err := s.conn.Exec(ctx, "UPDATE shopstream.log_state SET reserved_through = last_position"); err != nil {
		return fmt.Errorf("ending the sequencer term: %w", err)
	}
	return nil
}

// Wait waits up to timeout for the doorbell. It reports whether it rang, and an
// error only when the connection broke.
func (s *SequencerConn) Wait(ctx context.Context, timeout time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := s.conn.WaitForNotification(wctx)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("waiting for the doorbell: %w", err)
	}
	return true, nil
}

// Sequence moves up to limit committed inbox rows into the event log in one
// transaction: it locks the log state (one log writer at a time, so positions
// become visible in order), takes the inbox rows in id order, lets build turn the
// changes into records and writes them with consecutive positions (Announce
// rings shopstream_events). The transaction is two pipelined round trips. With peek set
// it first checks cheaply that the inbox has rows, so an idle poll writes
// nothing. It returns how many inbox rows it consumed and the last position.
// After an error the connection must be closed.
func (s *SequencerConn) Sequence(ctx context.Context, limit, maxBytes int, peek bool, build func([]events.Change) ([]events.Record, error)) (consumed int, last int64, err error) {
	if peek {
		var pending bool
		if err := s.conn.QueryRow(ctx, "SELECT "+inboxPending).Scan(&pending); err != nil {
			return 0, 0, fmt.Errorf("peeking at inbox: %w", err)
		}
		if !pending {
			return 0, 0, nil
		}
	}
	changes, last, err := s.takeInbox(ctx, limit, maxBytes)
	if err != nil {
		return 0, 0, err
	}
	if len(changes) == 0 {
		if _, err := s.conn.Exec(ctx, "ROLLBACK"); err != nil {
			return 0, 0, fmt.Errorf("ending empty batch: %w", err)
		}
		return 0, last, nil
	}
	recs, err := build(changes)
	if err != nil {
		return 0, 0, fmt.Errorf("building events: %w", err)
	}
	if last, err = s.writeLog(ctx, recs, last); err != nil {
		return 0, 0, err
	}
	return len(changes), last, nil
}

const inboxPending = "EXISTS (SELECT 1 FROM shopstream.inbox ORDER BY id LIMIT 1)"

// Release lets writers ring again, as the sequencer is about to sleep, and
// reports whether the inbox has rows (a writer that could not ring while the
// lock was held may have committed since the last batch). Without the lock it
// does nothing: writers could ring all along.
func (s *SequencerConn) Release(ctx context.Context) (pending bool, err error) {
	if !s.holding {
		return false, nil
	}
	var ok bool
	s.holding = false
	if err := s.conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1), "+inboxPending, int64(doorbellLockKey)).Scan(&ok, &pending); err != nil {
		return false, fmt.Errorf("releasing the doorbell: %w", err)
	}
	return pending, nil
}

// takeInbox begins the transaction, locks the log state and deletes (returning)
// the oldest inbox rows, in one round trip. Unless it holds it already, it
// also tries to take the doorbell lock (never waiting: a writer's transaction,
// however long, may hold it), so that busy writers stop ringing.
func (s *SequencerConn) takeInbox(ctx context.Context, limit, maxBytes int) ([]events.Change, int64, error) {
	b := &pgx.Batch{}
	if !s.holding {
		b.Queue("SELECT pg_try_advisory_lock($1)", int64(doorbellLockKey))
	}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off") // see migrations/003_position_reservation.sql
	// With the log state, the configured tables as they are named now: a
	// table renamed away or in shows at once (tableCheck.observe).
	b.Queue(`SELECT last_position, reserved_through,
		ARRAY(SELECT coalesce(to_regclass(n)::oid, 0) FROM unnest($1::text[]) WITH ORDINALITY u(n, i) ORDER BY i)
		FROM shopstream.log_state FOR UPDATE`, s.tables.names)
	b.Queue(takeInboxSQL, limit, maxBytes)
	br := s.conn.SendBatch(ctx, b)
	defer br.Close()
	var last int64
	if !s.holding {
		if err := br.QueryRow().Scan(&s.holding); err != nil {
			return nil, 0, fmt.Errorf("taking the doorbell lock: %w", err)
		}
	}
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return nil, 0, fmt.Errorf("beginning batch: %w", err)
		}
	}
	var named []uint32
	if err := br.QueryRow().Scan(&last, &s.reserved, &named); err != nil {
		return nil, 0, fmt.Errorf("locking log state: %w", err)
	}
	s.tables.observe(named)
	rows, err := br.Query()
	if err != nil {
		return nil, 0, fmt.Errorf("taking inbox rows: %w", err)
	}
	var taken []inboxRow
	for rows.Next() {
		var r inboxRow
		c := &r.change
		if err := rows.Scan(&c.ID, &c.Entity, &c.Action, &c.Old, &c.New, &c.Actor, &c.At, &r.relid, &r.txid); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("taking inbox rows: %w", err)
		}
		taken = append(taken, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("taking inbox rows: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, 0, fmt.Errorf("taking inbox rows: %w", err)
	}
	changes, err := s.tables.prepare(ctx, s.conn, taken)
	if err != nil {
		return nil, 0, err
	}
	return changes, last, nil
}

// takeInboxSQL deletes (returning) the oldest inbox rows: $1 at most, fewer
// when their sizes pass $2 bytes together (the row that passes it is the last
// taken, so a batch has at least one), and one more when the last of them is
// a DELETE whose transaction's INSERT comes next: an UPDATE that moved a row
// between partitions, which the sequencer pairs (see tableCheck.merge) and
// must not split across batches. Sizes are the rows' uncompressed lengths,
// read from their headers (octet_length of a json value, which is text, does
// not detoast it). The rows are deleted by = ANY of an array, never by a join
// with take: a join planned on stale estimates (a nested loop over a
// sequential scan) took 57 s for one batch of 2,000 rows behind 100,000 deleted
// ones; an array lookup costs at worst one scan.
const takeInboxSQL = `WITH head AS (
		SELECT id, action, txid, row_number() OVER (ORDER BY id) AS n,
		       sum(coalesce(octet_length(old_row::text), 0) + coalesce(octet_length(new_row::text), 0) + coalesce(octet_length(actor), 0))
		           OVER (ORDER BY id) - coalesce(octet_length(old_row::text), 0) - coalesce(octet_length(new_row::text), 0) - coalesce(octet_length(actor), 0) AS before
		FROM (SELECT id, action, txid, old_row, new_row, actor FROM shopstream.inbox ORDER BY id LIMIT $1 + 1) s),
	cut AS (SELECT coalesce(max(n), 1) AS n FROM head WHERE n <= $1 AND before < $2),
	take AS (
		SELECT h.id FROM head h, cut WHERE h.n <= cut.n
		UNION ALL
		SELECT h.id FROM head h JOIN cut ON h.n = cut.n + 1 JOIN head p ON p.n = cut.n
		WHERE h.action = 'created' AND p.action = 'deleted' AND p.txid = h.txid)
	DELETE FROM shopstream.inbox WHERE id = ANY (ARRAY(SELECT id FROM take))
	RETURNING id, entity, action, old_row, new_row, coalesce(actor, ''), created_at, relid, coalesce(txid::text, '')`

// writeLog appends the records after position last, advances the log state
// and commits, in one round trip.
func (s *SequencerConn) writeLog(ctx context.Context, recs []events.Record, last int64) (int64, error) {
	n := len(recs)
	pos, entity, action, data := make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
	prev, changed, actor, at := make([]*string, n), make([]*string, n), make([]*string, n), make([]time.Time, n)
	tooLarge := make([]*string, n)
	for i := range recs {
		last++
		r := &recs[i]
		r.Position = last
		pos[i], entity[i], action[i], data[i], at[i] = last, r.Entity, r.Action, string(r.Data), r.At
		if r.Previous != nil {
			p := string(r.Previous)
			prev[i] = &p
		}
		if r.Changed != nil {
			c := string(r.Changed)
			changed[i] = &c
		}
		if r.TooLarge != nil {
			tl := string(r.TooLarge)
			tooLarge[i] = &tl
		}
		if r.Actor != "" {
			actor[i] = &r.Actor
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO shopstream.events (position, entity, action, data, previous, actor, created_at, changed_fields, too_large)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::json[], $5::json[], $6::text[], $7::timestamptz[], $8::json[], $9::json[])`,
		pos, entity, action, data, prev, actor, at, changed, tooLarge)
	if last > s.reserved {
		// Out of reserved positions: this batch raises the reservation and
		// commits durably, so that a crash can never hand its positions out again.
		s.reserved = last + reserveAhead
		b.Queue("SET LOCAL synchronous_commit = on")
	}
	b.Queue("UPDATE shopstream.log_state SET last_position = $1, reserved_through = $2", last, s.reserved)
	b.Queue("COMMIT")
	if err := s.conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("writing events: %w", err)
	}
	return last, nil
}

// Announce rings every instance's listener: the log has grown to position last.
// The sequencer rings after its commit and after its own instance has
// published the batch: a NOTIFY takes a database-wide lock and signals every
// listening backend, which cost 0.15 ms on the way to the local sockets.
func (s *SequencerConn) Announce(ctx context.Context, last int64) error {
	if _, err := s.conn.Exec(ctx, "SELECT pg_notify($1, $2)", eventsChannel, strconv.FormatInt(last, 10)); err != nil {
		return fmt.Errorf("announcing position %d: %w", last, err)
	}
	return nil
}

// Prune deletes up to limit events logged before cutoff and records the highest
// pruned position. It returns how many it deleted.
func (s *SequencerConn) Prune(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	tag, err := s.conn.Exec(ctx, `WITH gone AS (
			DELETE FROM shopstream.events WHERE position IN (
				SELECT position FROM shopstream.events WHERE logged_at < $1 ORDER BY position LIMIT $2)
			RETURNING position)
		UPDATE shopstream.log_state SET pruned_through = greatest(pruned_through, (SELECT max(position) FROM gone))
		WHERE EXISTS (SELECT 1 FROM gone)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// VacuumInbox vacuums the inbox, so that the sequencer's scans from its oldest
// row do not walk the index entries of rows it already moved. It never
// truncates the table (that would take a lock the writers' inserts wait for).
func (s *SequencerConn) VacuumInbox(ctx context.Context) error {
	if _, err := s.conn.Exec(ctx, "VACUUM (TRUNCATE false) shopstream.inbox"); err != nil {
		return fmt.Errorf("vacuuming inbox: %w", err)
	}
	return nil
}

// Close closes the connection, releasing the election lock.
func (s *SequencerConn) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// ListenConn is an instance's dedicated listener connection: it LISTENs for new
// log positions and ended sessions and reads the log by position.
type ListenConn struct {
	conn *pgx.Conn
}

// ConnectListener opens the dedicated listener connection and LISTENs.
func (db *DB) ConnectListener(ctx context.Context) (*ListenConn, error) {
	conn, err := db.connectDedicated(ctx)
	if err != nil {
		return nil, err
	}
	for _, ch := range []string{eventsChannel, sessionsChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			_ = conn.Close(ctx)
			return nil, fmt.Errorf("listening on %s: %w", ch, err)
		}
	}
	return &ListenConn{conn: conn}, nil
}

// Wait waits up to timeout for a notification. ok is false on the timeout.
func (l *ListenConn) Wait(ctx context.Context, timeout time.Duration) (n events.Notification, ok bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got, err := l.conn.WaitForNotification(wctx)
	if err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return n, false, nil
		}
		return n, false, fmt.Errorf("waiting for notification: %w", err)
	}
	n.Payload = got.Payload
	switch got.Channel {
	case eventsChannel:
		n.Kind = events.NotifyEvents
	case sessionsChannel:
		n.Kind = events.NotifySessionEnded
	}
	return n, true, nil
}

// LastPosition returns the newest log position.
func (l *ListenConn) LastPosition(ctx context.Context) (int64, error) {
	var last int64
	err := l.conn.QueryRow(ctx, "SELECT last_position FROM shopstream.log_state").Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("reading last position: %w", err)
	}
	return last, nil
}

// pageBytes bounds a page of the log read by a listener or for a replay: at
// most this many bytes of events, but at least one event.
const pageBytes = 8 << 20

// eventSize is an event row's size in SQL (uncompressed lengths, read from
// the values' headers).
const eventSize = `(octet_length(data::text) + coalesce(octet_length(previous::text), 0) +
	coalesce(octet_length(changed_fields::text), 0) + coalesce(octet_length(actor), 0))`

// ReadEvents returns up to limit log records after position, in order (fewer
// when they pass pageBytes together), the log's last position in the same
// snapshot, and whether more records may follow the page. When none may, no
// record lies between the last of them and that position (positions jump
// when a sequencer takes over after a crash).
func (l *ListenConn) ReadEvents(ctx context.Context, after int64, limit int) ([]events.Record, int64, bool, error) {
	rows, err := l.conn.Query(ctx, `SELECT s.last_position, e.position, e.entity, e.action, e.data, e.previous,
			coalesce(e.actor, ''), e.created_at, e.changed_fields, e.too_large, coalesce(e.fetched, 0)
		FROM shopstream.log_state s LEFT JOIN LATERAL (
			SELECT w.*, count(*) OVER () AS fetched FROM (
				SELECT p.*, sum(p.size) OVER (ORDER BY p.position) - p.size AS before FROM (
					SELECT *, `+eventSize+` AS size FROM shopstream.events WHERE position > $1 ORDER BY position LIMIT $2) p) w
			) e ON true
		WHERE e.position IS NULL OR e.before < $3
		ORDER BY e.position`, after, limit, pageBytes)
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading events: %w", err)
	}
	var head int64
	var recs []events.Record
	fetched := 0
	for rows.Next() {
		var pos *int64
		var rec events.Record
		var entity, action, actor *string
		var at *time.Time
		if err := rows.Scan(&head, &pos, &entity, &action, &rec.Data, &rec.Previous, &actor, &at, &rec.Changed, &rec.TooLarge, &fetched); err != nil {
			rows.Close()
			return nil, 0, false, fmt.Errorf("reading events: %w", err)
		}
		if pos == nil { // no record after the cursor
			continue
		}
		rec.Position, rec.Entity, rec.Action, rec.Actor, rec.At = *pos, *entity, *action, *actor, *at
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("reading events: %w", err)
	}
	return recs, head, fetched >= limit || len(recs) < fetched, nil
}

// Close closes the connection.
func (l *ListenConn) Close(ctx context.Context) error { return l.conn.Close(ctx) }

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readEvents(ctx context.Context, q querier, sql string, args ...any) ([]events.Record, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.Record, error) {
		var rec events.Record
		err := r.Scan(&rec.Position, &rec.Entity, &rec.Action, &rec.Data, &rec.Previous, &rec.Actor, &rec.At, &rec.Changed, &rec.TooLarge)
		return rec, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return recs, nil
}

// ReplayEvents returns the records of one entity with after < position <= upto, in
// order, at most limit of them (fewer when they pass pageBytes together, but
// at least one), and the highest position pruned from the log.
func (db *DB) ReplayEvents(ctx context.Context, entity string, after, upto int64, limit int) ([]events.Record, int64, error) {
	recs, err := readEvents(ctx, db.Pool, `SELECT position, entity, action, data, previous, coalesce(actor, ''), created_at, changed_fields, too_large
		FROM (SELECT p.*, sum(p.size) OVER (ORDER BY p.position) - p.size AS before FROM (
			SELECT *, `+eventSize+` AS size FROM shopstream.events
			WHERE position > $2 AND position <= $3 AND entity = $1 ORDER BY position LIMIT $4) p) w
		WHERE before < $5 ORDER BY position`,
		entity, after, upto, limit, pageBytes)
	if err != nil {
		return nil, 0, err
	}
	// Read after the events: a prune that ran in between shows here, so the
	// caller never mistakes a pruned gap for a complete replay.
	var pruned int64
	if err := db.Pool.QueryRow(ctx, "SELECT pruned_through FROM shopstream.log_state").Scan(&pruned); err != nil {
		return nil, 0, fmt.Errorf("reading log state: %w", err)
	}
	return recs, pruned, nil
}

// HandedOut returns the highest position a sequencer may have given an event:
// the last position, or the reservation above it (a crash may have lost
// batches whose positions clients saw).
func (db *DB) HandedOut(ctx context.Context) (int64, error) {
	var pos int64
	if err := db.Pool.QueryRow(ctx, "SELECT greatest(last_position, reserved_through) FROM shopstream.log_state").Scan(&pos); err != nil {
		return 0, fmt.Errorf("reading log state: %w", err)
	}
	return pos, nil
}

// InboxBacklog returns how many changes wait to be ordered (counting at most
// 1,000,000) and the age of the oldest.
func (db *DB) InboxBacklog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var age float64
	err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)
		FROM (SELECT created_at FROM shopstream.inbox ORDER BY id LIMIT 1000000) b`).Scan(&n, &age)
	if err != nil {
		return 0, 0, fmt.Errorf("reading inbox backlog: %w", err)
	}
	return n, time.Duration(age * float64(time.Second)), nil
}

// Gauges reads, in one query, what InboxBacklog and NotifyQueueUsage read (the
// metrics' timer runs it: one query where there were two).
func (db *DB) Gauges(ctx context.Context) (backlog int64, oldest time.Duration, notify float64, err error) {
	var age float64
	err = db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0), pg_notification_queue_usage()
		FROM (SELECT created_at FROM shopstream.inbox ORDER BY id LIMIT 1000000) b`).Scan(&backlog, &age, &notify)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("reading inbox backlog and notification queue usage: %w", err)
	}
	return backlog, time.Duration(age * float64(time.Second)), notify, nil
}

// NotifyQueueUsage returns pg_notification_queue_usage().
func (db *DB) NotifyQueueUsage(ctx context.Context) (float64, error) {
	var u float64
	if err := db.Pool.QueryRow(ctx, "SELECT pg_notification_queue_usage()").Scan(&u); err != nil {
		return 0, fmt.Errorf("reading notification queue usage: %w", err)
	}
	return u, nil
}
