// Package events carries committed changes from the database to the hub that fans
// them out to sockets. It owns the middle of shopstream's one road:
//
//	trigger -> inbox -> sequencer -> event log -> listener -> hub -> sockets
//
// # Writers pay only for an append
//
// A capture trigger on each watched table appends the old and new row to
// shopstream.inbox in the writer's own transaction. It does not NOTIFY on every
// commit: a transaction that has NOTIFYed takes a cluster-wide lock from its
// pre-commit through its WAL flush, serialising every notifying commit in the
// cluster. The trigger rings the sequencer's doorbell only when it wins
// pg_try_advisory_xact_lock, which never waits, so at most one writer at a time
// rings; a writer that skipped the ring is found by the sequencer's poll. The
// sequencer itself holds that lock while it works (taken with a try: a writer's
// long transaction never makes it wait) and releases it, then checks the inbox
// once more, before it sleeps: every NOTIFY wakes every listening backend of the
// database, so busy writers do not ring at all.
//
// # One sequencer gives positions
//
// Every instance runs a Sequencer, but only the holder of a session advisory lock
// works; the others wait for the lock inside PostgreSQL, so when the leader's
// connection dies another instance takes over at once. The leader moves committed inbox rows
// into shopstream.events in one transaction at a time, holding the row lock of
// shopstream.log_state: positions increase, and a batch commits only after the
// previous one is visible. So a reader
// that has seen position N has seen every position below N, and WHERE position > cursor
// is a safe cursor on every instance. Within a batch changes keep inbox id order;
// two updates of one row cannot be reordered, since the second waits for the first
// to commit before its trigger runs. The sequencer also computes changed_fields,
// drops secret columns and drops updates that touched only ignored columns, off the
// writers' path. After each commit it hands the batch to its own instance's
// Listener (Offer), which publishes it at once if it follows the listener's
// cursor, and only then NOTIFYs shopstream_events once, for the other instances
// (a NOTIFY takes a database-wide lock and signals every listening backend).
//
// # One durable commit on the road
//
// The writer's COMMIT makes a change durable; the sequencer's batch is derived
// from the inbox and commits asynchronously (synchronous_commit off), which takes
// a WAL flush (1.5 ms under load on the benchmark disk) off every event's way to
// the sockets. A PostgreSQL crash may lose the last batches, their inbox rows
// come back, and they are ordered again, so a client may get an event twice but
// never misses one. Positions seen by a client are never given to another event:
// the sequencer hands out positions only up to log_state.reserved_through, which
// it raises 100,000 at a time in a batch that commits synchronously, and every
// newly elected sequencer starts after it (BeginTerm). One that stops cleanly
// gives the unused positions back (EndTerm); after a crash positions jump.
//
// # Each instance listens
//
// The Listener owns one dedicated connection. It LISTENs, reads the log from its
// cursor on every ring, on an idle timer, and after every reconnect (a NOTIFY sent
// while it was disconnected is lost, the log is not), and hands records to the Hub
// in position order.
//
// # The hub never blocks
//
// The Hub encodes each event once and offers the same bytes to every matching
// subscriber's bounded queue. A subscriber whose queue is full is closed (1013) and
// removed; no subscriber that stays open ever misses an event. Subscribing happens
// under the same lock as publishing, so the position answered in "subscribed" is
// exactly the last event the subscriber will not receive live.
//
// # Next: one write per change (designed, not built)
//
// The issue "One write per change" replaces the inbox-to-log copy with PgQ-style
// ticks; docs/performance.md ("Next: one write per change") has the design and its
// reasons. The invariants it must keep, each guarded by a test that exists today:
//
//   - a committed change belongs to exactly one tick, the first whose snapshot sees
//     its transaction; its position is the tick's first position plus its rank by
//     id in the tick, the same on every instance, whatever its configuration;
//   - ticks become visible in tick order, so WHERE position > cursor stays safe;
//   - two updates of one row keep their commit order (a later tick, or a larger id);
//   - positions a crash may lose are never handed out again (the reservation stays);
//   - batches are read in pages bounded by bytes, whatever a tick holds;
//   - secret columns are removed in the writer's transaction, never stored;
//   - retention truncates whole capture tables, never deletes a change row;
//   - idle, the service asks PostgreSQL at most once a second, and an unrung change
//     is delivered within that second.
package events
