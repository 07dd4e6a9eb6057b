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

// sequencerLockKey is the advisory lock that elects the sequencer, held at
// session level: for as long as the connection lives (one term).
const sequencerLockKey = 7316042871525064

// doorbellLockKey is the advisory lock a writer's trigger must get to ring the
// sequencer (migrations/007_ticks.sql). The sequencer holds it while it works, so
// that writers ring only when it may be asleep.
const doorbellLockKey = 7316042871525063

// SequencerConn is the sequencer's dedicated connection: it holds the election
// lock for as long as it lives and listens for the writers' doorbell.
type SequencerConn struct {
	conn    *pgx.Conn
	holding bool  // the doorbell lock, at session level
	floor   int64 // the first position this term may hand out (BeginTerm)
	tables  *tableCheck
	// open is the last tick while its changes have not all been handed out
	// (its first page was cut by rows or bytes).
	open *openTick
}

type openTick struct {
	tick
	consumed int64 // ranks handed out
	lastID   int64 // the id of the last of them
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
// as soon as the leader's connection closes; the role's timeouts must not end it.
// The lock is held until the connection closes. client_connection_check_interval
// lets a waiting backend whose client went away (shutdown, a dropped link) leave
// the lock queue at once rather than take the lock, find the socket closed and
// only then release it. Ticks commit asynchronously (see the package
// documentation of events), except those that raise the reservation.
func (s *SequencerConn) Lead(ctx context.Context) error {
	if _, err := s.conn.Exec(ctx, "SET statement_timeout = 0; SET lock_timeout = 0; SET client_connection_check_interval = '1s'"); err != nil {
		return fmt.Errorf("preparing to wait for the sequencer lock: %w", err)
	}
	if _, err := s.conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(sequencerLockKey)); err != nil {
		return fmt.Errorf("waiting for the sequencer lock: %w", err)
	}
	if _, err := s.conn.Exec(ctx, "SET synchronous_commit = off; LISTEN "+pgx.Identifier{inboxChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listening for the doorbell: %w", err)
	}
	return nil
}

// BeginTerm starts the term of a newly elected sequencer: positions go on after
// the last reservation, since its predecessor may have handed out positions in
// ticks that a crash then lost. It returns the position the term starts after.
func (s *SequencerConn) BeginTerm(ctx context.Context) (int64, error) {
	var last int64
	if err := s.conn.QueryRow(ctx, `UPDATE shopstream.log_state
		SET last_position = h.head, reserved_through = h.head
		FROM (SELECT greatest(last_position, reserved_through,
			(SELECT first_position + count - 1 FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1)) AS head
			FROM shopstream.log_state) h
		RETURNING last_position`).Scan(&last); err != nil {
		return 0, fmt.Errorf("starting a sequencer term: %w", err)
	}
	s.floor, s.open = last+1, nil
	return last, nil
}

// EndTerm gives the unused reserved positions back as a sequencer stops
// cleanly, so that its successor goes on without a jump. Its synchronous
// commit also makes every earlier tick durable.
func (s *SequencerConn) EndTerm(ctx context.Context) error {
	if st := s.conn.PgConn().TxStatus(); st != 'I' {
		return fmt.Errorf("ending the sequencer term: connection is in a transaction (status %c)", st)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = on")
	b.Queue("UPDATE shopstream.log_state SET reserved_through = " + headSQL)
	b.Queue("COMMIT")
	if err := s.conn.SendBatch(ctx, b).Close(); err != nil {
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

// Sequence records a tick and returns its first page, positioned and
// checked against the configured tables (see events.SequencerConn); while the
// last tick has changes not handed out, it returns the next page of it
// instead. With req.Peek set it first checks cheaply that changes wait, so an
// idle poll writes nothing. A tick is one round trip: the statement that
// records it (and commits it) returns its first page. After an error the
// connection must be closed.
func (s *SequencerConn) Sequence(ctx context.Context, req events.BatchRequest) (events.Batch, error) {
	if s.open != nil {
		return s.nextPage(ctx, req)
	}
	if req.Peek {
		var pending bool
		if err := s.conn.QueryRow(ctx, "SELECT "+pendingSQL).Scan(&pending); err != nil {
			return events.Batch{}, fmt.Errorf("peeking at the capture tables: %w", err)
		}
		if !pending {
			return events.Batch{}, nil
		}
	}
	t, rows, err := s.tick(ctx, req.Limit, req.MaxBytes)
	if err != nil || t == nil {
		return events.Batch{}, err
	}
	position(rows, t.first)
	changes, err := s.tables.prepare(ctx, s.conn, rows)
	if err != nil {
		return events.Batch{}, err
	}
	b := events.Batch{Changes: changes, Rows: len(rows), After: t.first - 1, Through: t.end()}
	if n := int64(len(rows)); n < t.count {
		s.open = &openTick{tick: *t, consumed: n, lastID: rows[n-1].change.ID}
		b.Through, b.More = t.first+n-1, true
	}
	return b, nil
}

// tick runs tickSQL, in one round trip with taking the doorbell lock (unless
// held: never waiting, a writer's transaction may hold it, so that busy
// writers stop ringing) and resolving the configured table names (a table
// renamed away or in shows at once: tableCheck.observe). It returns nil when
// no change waited.
func (s *SequencerConn) tick(ctx context.Context, limit, maxBytes int) (*tick, []capturedRow, error) {
	b := &pgx.Batch{}
	if !s.holding {
		b.Queue("SELECT pg_try_advisory_lock($1)", int64(doorbellLockKey))
	}
	b.Queue(`SELECT ARRAY(SELECT coalesce(to_regclass(n)::oid, 0) FROM unnest($1::text[]) WITH ORDINALITY u(n, i) ORDER BY i)`, s.tables.names)
	b.Queue(tickSQL, s.floor, limit, maxBytes, int64(reserveAhead))
	br := s.conn.SendBatch(ctx, b)
	defer br.Close()
	if !s.holding {
		if err := br.QueryRow().Scan(&s.holding); err != nil {
			return nil, nil, fmt.Errorf("taking the doorbell lock: %w", err)
		}
	}
	var named []uint32
	if err := br.QueryRow().Scan(&named); err != nil {
		return nil, nil, fmt.Errorf("resolving the configured tables: %w", err)
	}
	s.tables.observe(named)
	res, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("recording a tick: %w", err)
	}
	var t *tick
	var got []pageRow
	for res.Next() {
		var h tick
		var raised int64
		var p pageRow
		var id *int64
		var n, before *int64
		c := &p.row.change
		if err := res.Scan(&h.first, &h.count, &h.snap, &h.prev, &h.minID, &h.maxID, &raised,
			&id, &p.row.txid, &c.Entity, &c.Action, &c.Old, &c.New, &c.Actor, &c.At, &p.row.relid, &n, &before); err != nil {
			res.Close()
			return nil, nil, fmt.Errorf("recording a tick: %w", err)
		}
		t = &h
		if id != nil {
			c.ID, p.n, p.before = *id, *n, *before
			got = append(got, p)
		}
	}
	if err := res.Err(); err != nil {
		return nil, nil, fmt.Errorf("recording a tick: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("recording a tick: %w", err)
	}
	return t, cutPage(got, limit, maxBytes), nil
}

// nextPage returns the next page of the open tick.
func (s *SequencerConn) nextPage(ctx context.Context, req events.BatchRequest) (events.Batch, error) {
	o := s.open
	rows, err := readPage(ctx, s.conn, o.tick, o.lastID, 0, req.Limit, req.MaxBytes)
	if err != nil {
		return events.Batch{}, err
	}
	position(rows, o.first+o.consumed)
	changes, err := s.tables.prepare(ctx, s.conn, rows)
	if err != nil {
		return events.Batch{}, err
	}
	n := int64(len(rows))
	b := events.Batch{Changes: changes, Rows: len(rows), After: o.first + o.consumed - 1, Through: o.end()}
	if n == 0 || o.consumed+n >= o.count { // the tick's last page (or its changes were truncated)
		s.open = nil
		return b, nil
	}
	o.consumed += n
	o.lastID = rows[n-1].change.ID
	b.Through, b.More = o.first+o.consumed-1, true
	return b, nil
}

// Release lets writers ring again, as the sequencer is about to sleep, and
// reports whether changes wait (a writer that could not ring while the lock
// was held may have committed since the last tick). Without the lock it does
// nothing: writers could ring all along.
func (s *SequencerConn) Release(ctx context.Context) (pending bool, err error) {
	if !s.holding {
		return false, nil
	}
	var ok bool
	s.holding = false
	if err := s.conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1), "+pendingSQL, int64(doorbellLockKey)).Scan(&ok, &pending); err != nil {
		return false, fmt.Errorf("releasing the doorbell: %w", err)
	}
	return pending, nil
}

// Announce rings every instance's listener: the log has grown to position last.
// The sequencer rings after its commit and after its own instance has
// published the page: a NOTIFY takes a database-wide lock and signals every
// listening backend, so it stays off the way to the local sockets (its cost:
// docs/performance.md, "Commit-to-receive latency").
func (s *SequencerConn) Announce(ctx context.Context, last int64) error {
	if _, err := s.conn.Exec(ctx, "SELECT pg_notify($1, $2)", eventsChannel, strconv.FormatInt(last, 10)); err != nil {
		return fmt.Errorf("announcing position %d: %w", last, err)
	}
	return nil
}

// Close closes the connection, releasing the election lock.
func (s *SequencerConn) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// ListenConn is an instance's dedicated listener connection: it LISTENs for new
// log positions and ended sessions and reads the log by position.
type ListenConn struct {
	conn   *pgx.Conn
	reader *logReader
}

// ConnectListener opens the dedicated listener connection and LISTENs. It
// checks and builds changes as UseLog set.
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
	db.logMu.Lock()
	reader := newLogReader(db.logTables, db.logBuild)
	db.logMu.Unlock()
	return &ListenConn{conn: conn, reader: reader}, nil
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
	if err := l.conn.QueryRow(ctx, "SELECT "+headSQL).Scan(&last); err != nil {
		return 0, fmt.Errorf("reading last position: %w", err)
	}
	return last, nil
}

// pageBytes bounds a page of the log read by a listener or for a replay: at
// most this many bytes of changes, but at least one change.
const pageBytes = 8 << 20

// ReadEvents returns the records of up to limit changes after position after,
// of one tick (fewer when they pass pageBytes together), the position through
// which the read is complete, and whether more may follow (see
// events.ListenConn).
func (l *ListenConn) ReadEvents(ctx context.Context, after int64, limit int) ([]events.Record, int64, bool, error) {
	return l.reader.read(ctx, l.conn, after, limit, pageBytes)
}

// Close closes the connection.
func (l *ListenConn) Close(ctx context.Context) error { return l.conn.Close(ctx) }

// ReplayEvents returns the records of one entity with after < position <= upto, in
// order, at most limit of them (fewer when the changes read pass pageBytes
// together, but at least one when there is one), and the highest position
// pruned from the log.
func (db *DB) ReplayEvents(ctx context.Context, entity string, after, upto int64, limit int) ([]events.Record, int64, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	db.logMu.Lock()
	lr := newLogReader(db.logTables, db.logBuild) // its own: replays run side by side
	db.logMu.Unlock()
	var out []events.Record
	size := 0
	for cursor := after; cursor < upto && len(out) < limit && size < pageBytes; {
		recs, through, more, err := lr.read(ctx, conn.Conn(), cursor, limit, pageBytes-size)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range recs {
			if r.Entity == entity && r.Position > after && r.Position <= upto {
				out = append(out, r)
				size += len(r.Data) + len(r.Previous) + len(r.Changed)
			}
		}
		if through <= cursor || !more {
			break
		}
		cursor = through
	}
	// Read after the events: a rotation that ran in between shows here, so
	// the caller never mistakes a pruned gap for a complete replay.
	var pruned int64
	if err := conn.QueryRow(ctx, "SELECT pruned_through FROM shopstream.log_state").Scan(&pruned); err != nil {
		return nil, 0, fmt.Errorf("reading log state: %w", err)
	}
	return out, pruned, nil
}

// HandedOut returns the highest position a sequencer may have given an event:
// the last position, or the reservation above it (a crash may have lost
// ticks whose positions clients saw).
func (db *DB) HandedOut(ctx context.Context) (int64, error) {
	var pos int64
	if err := db.Pool.QueryRow(ctx, "SELECT greatest("+headSQL+", (SELECT reserved_through FROM shopstream.log_state))").Scan(&pos); err != nil {
		return 0, fmt.Errorf("reading log state: %w", err)
	}
	return pos, nil
}

// backlogSQL counts the committed changes no tick holds yet (at most
// 1,000,000) and the age of the oldest.
const backlogSQL = `SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)
	FROM (SELECT c.created_at FROM shopstream.changes c WHERE ` + untickedSQL + ` LIMIT 1000000) b`

// InboxBacklog returns how many changes wait for a tick (counting at most
// 1,000,000) and the age of the oldest.
func (db *DB) InboxBacklog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var age float64
	if err := db.Pool.QueryRow(ctx, backlogSQL).Scan(&n, &age); err != nil {
		return 0, 0, fmt.Errorf("reading the changes backlog: %w", err)
	}
	return n, time.Duration(age * float64(time.Second)), nil
}

// Gauges reads, in one query, what InboxBacklog and NotifyQueueUsage read (the
// metrics' timer runs it: one query where there were two).
func (db *DB) Gauges(ctx context.Context) (backlog int64, oldest time.Duration, notify float64, err error) {
	var age float64
	err = db.Pool.QueryRow(ctx, `SELECT b.*, pg_notification_queue_usage() FROM (`+backlogSQL+`) b`).Scan(&backlog, &age, &notify)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("reading the changes backlog and notification queue usage: %w", err)
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
