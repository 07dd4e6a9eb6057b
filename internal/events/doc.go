// Package events carries committed changes from the database to the hub that fans
// them out to sockets. It owns the middle of shopstream's one road:
//
//	trigger -> capture table -> sequencer -> (ticks) -> listener -> hub -> sockets
//
// # The change is written once
//
// A capture trigger on each watched table appends the old and new row, without
// the table's secret columns, to the current one of three capture tables
// (shopstream.changes_0, _1, _2; shopstream.rotation names it), in the writer's
// own transaction. Nothing else writes, copies, updates or deletes a change row:
// the ordering step records only where batches end, as PgQ (Skytools) does with
// its ticks. The trigger does not NOTIFY on every commit: a transaction that has
// NOTIFYed takes a cluster-wide lock from its pre-commit through its WAL flush,
// serialising every notifying commit in the cluster. It rings the sequencer's
// doorbell only when it wins pg_try_advisory_xact_lock, which never waits, so
// at most one writer at a time rings; a writer that skipped the ring is found by
// the sequencer's poll. The sequencer itself holds that lock while it works (taken
// with a try: a writer's long transaction never makes it wait) and releases it,
// then checks once more for changes, before it sleeps.
//
// # Ticks give positions
//
// Every instance runs a Sequencer, but only the holder of an advisory lock
// (session-level: held for as long as its connection lives) works; the others
// wait for the lock inside PostgreSQL, so when the leader's connection dies
// another instance takes over at once. One leadership on one connection is a
// term: it begins with BeginTerm and ends with the connection (EndTerm when
// it stops cleanly). ("Session" is kept for the login sessions of
// internal/auth.) On a
// doorbell or a poll the sequencer runs one statement: it takes
// pg_current_snapshot(), selects the committed changes of the transactions that
// snapshot sees and the previous tick's did not (txid at or above the previous
// xmax, or in its in-progress list: index lookups, so a long open transaction
// elsewhere costs nothing), writes one row into shopstream.ticks (the snapshot,
// the previous one, the first position and the count) when there are any, and
// returns the first page of them with their positions. A change's position is
// the tick's first position plus its rank by id in the tick. The invariants:
//
//   - A committed change belongs to exactly one tick, the first whose snapshot
//     sees its transaction: consecutive snapshots only grow, so the ticks
//     partition the committed changes. Its position is a pure function of the
//     tick row and of rows that never change once committed, so every instance
//     derives the same position for it, whatever its configuration.
//   - Ticks become visible in order (one sequencer, one statement per tick, each
//     after the previous one committed), so WHERE position > cursor is a safe
//     cursor on every instance.
//   - Two updates of one row keep their commit order: the second transaction
//     waits for the first's row lock, so it commits later, and it is in a later
//     tick or in the same tick with a larger id (its trigger ran after the first
//     committed; ids come from one sequence without a session cache).
//   - What a reader drops (an update of ignored columns only, a refused row, an
//     unreadable one, the second half of a moved row, a repeated truncation)
//     keeps its position unused: a client may see an id skipped.
//   - Pages are bounded by bytes (8 MiB) as well as changes, whatever a tick
//     holds: a 100,000-row UPDATE is one tick, handed out and read page by page
//     along the id index.
//   - Secret columns are removed in the writer's transaction (the trigger's
//     arguments name those the table has); the readers hide them too.
//   - Retention truncates whole capture tables, never deletes a change row.
//
// The sequencer hands each page to its own instance's Listener (Offer) right after
// the tick commits, so the leader's hub gets a change one round trip after the
// doorbell, and only then NOTIFYs shopstream_events once, for the other
// instances. It also computes changed_fields and drops hidden and ignored
// columns (Builder), off the writers' path; every reader of the log does the
// same with its own Builder.
//
// # One durable commit on the road
//
// The writer's COMMIT makes a change durable; a tick commits asynchronously
// (synchronous_commit off), which takes a WAL flush off every event's way to
// the sockets. A PostgreSQL crash may lose the last ticks; their changes are
// ticked again, with later ones, so ranks would shift: positions seen by a
// client must never be given to another change. The sequencer hands out positions
// only up to log_state.reserved_through, which a tick that passes it raises
// 100,000 ahead and commits synchronously, and every newly elected sequencer starts
// after it (BeginTerm). One that stops cleanly gives the unused positions back
// (EndTerm); after a crash positions jump, and a client may get a change twice,
// never zero times.
//
// # Retention by rotation
//
// The sequencer switches the capture table the triggers fill once the current one
// has been filled for half the retention, and truncates the next one in turn
// (the oldest) once every change in it is ticked and older than the retention and
// the last tick holding one was recorded longer than the retention ago (the ticks
// that truncation prunes also hold the newer tables' changes committed
// before it: a long transaction's early change must not prune fresh ones).
// TRUNCATE waits at most 100 ms for the table's lock: holding it proves no open
// transaction has written there. log_state.pruned_through records what a
// truncation may have removed; a "since" below it answers resync_required.
//
// # Each instance listens
//
// The Listener owns one dedicated connection. It LISTENs, reads the log from its
// cursor on every ring, on an idle timer, and after every reconnect (a NOTIFY sent
// while it was disconnected is lost, the log is not), and hands records to the Hub
// in position order. One read covers up to 256 whole ticks in one round trip,
// cut to one page; a read that ended inside a tick goes on by id from there.
//
// # The hub never blocks
//
// The Hub encodes each event once and offers the same bytes to every matching
// subscriber's bounded queue. A subscriber whose queue is full is closed (1013) and
// removed; no subscriber that stays open ever misses an event. Subscribing is
// ordered with publishing (the hub's order lock), so the position answered in
// "subscribed" is exactly the last event the subscriber will not receive live.
// The hub never calls a subscriber while it holds its state lock, so a
// subscriber may call back into it (the Hub type documents which calls).
//
// # Quiet when idle
//
// Idle, the service asks PostgreSQL at most about once a second: the sequencer
// polls every 20 ms while changes flow and every IDLE_POLL (2 s) after 10 s
// without one, which bounds the delay of a change whose writer did not ring.
package events
