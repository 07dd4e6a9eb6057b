-- One write per change (internal/events/doc.go, docs/performance.md "One
-- write per change"). The trigger appends a change once, to one of three
-- rotating capture tables; the elected ticker records only where batches end:
-- a tick holds a transaction snapshot, and the changes of the transactions
-- visible in it and not in the previous tick's snapshot take the positions
-- first_position .. first_position + count - 1 in the order of their id. No
-- change row is copied, updated or deleted; retention truncates whole tables.

-- Ids are shared by the three tables and follow the order in which triggers
-- ran (CACHE 1: a session-local cache would break that order).
CREATE SEQUENCE shopstream.change_id AS bigint CACHE 1;

CREATE TABLE shopstream.changes_0 (
    id         bigint NOT NULL DEFAULT nextval('shopstream.change_id'),
    txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    entity     text NOT NULL,
    action     text NOT NULL,
    old_row    json,
    new_row    json,
    actor      text,
    relid      oid,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- txid finds a tick's transactions (those after the previous snapshot's xmax,
-- and those it saw in progress); id pages through a large tick in order.
CREATE INDEX changes_0_txid ON shopstream.changes_0 (txid);
CREATE INDEX changes_0_id ON shopstream.changes_0 (id);
CREATE TABLE shopstream.changes_1 (LIKE shopstream.changes_0 INCLUDING DEFAULTS);
CREATE INDEX changes_1_txid ON shopstream.changes_1 (txid);
CREATE INDEX changes_1_id ON shopstream.changes_1 (id);
CREATE TABLE shopstream.changes_2 (LIKE shopstream.changes_0 INCLUDING DEFAULTS);
CREATE INDEX changes_2_txid ON shopstream.changes_2 (txid);
CREATE INDEX changes_2_id ON shopstream.changes_2 (id);
-- Insert-only, truncated whole: nothing for autovacuum to clean.
ALTER TABLE shopstream.changes_0 SET (autovacuum_enabled = false);
ALTER TABLE shopstream.changes_1 SET (autovacuum_enabled = false);
ALTER TABLE shopstream.changes_2 SET (autovacuum_enabled = false);

-- tab names the table a change is in (a tick records which tables its
-- changes are in: what truncating one prunes).
CREATE VIEW shopstream.changes AS
    SELECT 0::smallint AS tab, * FROM shopstream.changes_0
    UNION ALL SELECT 1::smallint, * FROM shopstream.changes_1
    UNION ALL SELECT 2::smallint, * FROM shopstream.changes_2;

-- Which table the triggers fill now. The ticker switches it, and truncates
-- the oldest table once all its changes are ticked and past retention.
CREATE TABLE shopstream.rotation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    current     smallint NOT NULL DEFAULT 0 CHECK (current BETWEEN 0 AND 2),
    switched_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO shopstream.rotation DEFAULT VALUES;

-- A tick: the batch of the changes whose transactions snap sees and prev does
-- not, positioned from first_position by id. min_id and max_id bound the
-- batch's ids (a page of a large tick scans that range of the id index);
-- tables has bit 1 << n set when changes_n holds some of them.
-- Only ticks with changes are written; first_position increases with every
-- tick, and jumps past the reservation when a new ticker is elected.
CREATE TABLE shopstream.ticks (
    first_position bigint PRIMARY KEY,
    count          integer NOT NULL CHECK (count > 0),
    snap           pg_snapshot NOT NULL,
    prev           pg_snapshot NOT NULL,
    min_id         bigint NOT NULL,
    max_id         bigint NOT NULL,
    tables         smallint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The tick every later one follows: its snapshot sees no transaction, so the
-- first tick takes every change written from now on (and the inbox's leftovers
-- copied below). Its count is 1 for the CHECK; it names the last position the
-- old log handed out and is never read as a batch (no change has an id in it).
INSERT INTO shopstream.ticks (first_position, count, snap, prev, min_id, max_id)
SELECT greatest(last_position, reserved_through), 1, '1:1:', '1:1:', 0, 0 FROM shopstream.log_state;

-- The old log's events are gone with it: a client resuming before this point
-- gets resync_required.
UPDATE shopstream.log_state SET pruned_through = greatest(last_position, reserved_through),
    last_position = greatest(last_position, reserved_through);

-- Changes the old sequencer had not ordered yet move to the first table.
INSERT INTO shopstream.changes_0 (txid, entity, action, old_row, new_row, actor, relid, created_at)
SELECT coalesce(txid, pg_current_xact_id()), entity, action, old_row, new_row, actor, relid, created_at
FROM shopstream.inbox ORDER BY id;

-- The row as JSON without the named columns (matched case-insensitively): a
-- secret column's value never leaves the writer's transaction. Owned by the
-- empty role, like row_json (migration 4), with the same pinned settings.
CREATE FUNCTION shopstream.row_json(r anyelement, hide text[]) RETURNS json
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
SET IntervalStyle = 'iso_8601'
SET extra_float_digits = 1
SET bytea_output = 'hex'
AS $$SELECT coalesce('{' OPERATOR(pg_catalog.||) pg_catalog.string_agg(
        pg_catalog.to_json(e.key)::text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) e.value::text, ',' ORDER BY e.i)
        OPERATOR(pg_catalog.||) '}', '{}')::json
    FROM pg_catalog.json_each(pg_catalog.row_to_json(r)) WITH ORDINALITY e(key, value, i)
    WHERE NOT pg_catalog.lower(e.key) OPERATOR(pg_catalog.=) ANY (hide)$$;

-- The trigger: append once, to the current capture table, and ring the
-- ticker's doorbell as before (migration 4). Its arguments are the entity and
-- then the table's secret columns, in lower case (shopstream migrate and serve
-- re-create the triggers when SECRET_COLUMNS change).
CREATE OR REPLACE FUNCTION shopstream.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := left(coalesce(nullif(current_setting('shopstream.actor', true), ''),
                              nullif(current_setting('application_name', true), '')), 256);
    bell text := coalesce(nullif(current_setting('shopstream.doorbell', true), ''), 'auto');
    act text;
    o json;
    n json;
    tab smallint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        act := 'updated';
    ELSIF TG_OP = 'INSERT' THEN
        act := 'created';
    ELSIF TG_OP = 'DELETE' THEN
        act := 'deleted';
    ELSE
        act := 'truncated';
    END IF;
    IF TG_LEVEL = 'ROW' THEN
        IF TG_NARGS > 1 THEN
            IF TG_OP <> 'INSERT' THEN o := shopstream.row_json(OLD, TG_ARGV[1:]); END IF;
            IF TG_OP <> 'DELETE' THEN n := shopstream.row_json(NEW, TG_ARGV[1:]); END IF;
        ELSE
            IF TG_OP <> 'INSERT' THEN o := shopstream.row_json(OLD); END IF;
            IF TG_OP <> 'DELETE' THEN n := shopstream.row_json(NEW); END IF;
        END IF;
    END IF;
    SELECT current INTO tab FROM shopstream.rotation;
    IF tab = 1 THEN
        INSERT INTO shopstream.changes_1 (entity, action, old_row, new_row, actor, relid)
        VALUES (TG_ARGV[0], act, o, n, who, TG_RELID);
    ELSIF tab = 2 THEN
        INSERT INTO shopstream.changes_2 (entity, action, old_row, new_row, actor, relid)
        VALUES (TG_ARGV[0], act, o, n, who, TG_RELID);
    ELSE
        INSERT INTO shopstream.changes_0 (entity, action, old_row, new_row, actor, relid)
        VALUES (TG_ARGV[0], act, o, n, who, TG_RELID);
    END IF;
    IF (bell = 'on' OR (bell = 'auto' AND current_setting('max_prepared_transactions') = '0'))
       AND pg_try_advisory_xact_lock(7316042871525063) THEN
        PERFORM pg_notify('shopstream_inbox', '');
    END IF;
    RETURN NULL;
END
$$;

GRANT CREATE ON SCHEMA shopstream TO shopstream_nobody;
ALTER FUNCTION shopstream.row_json(anyelement, text[]) OWNER TO shopstream_nobody;
REVOKE CREATE ON SCHEMA shopstream FROM shopstream_nobody;
REVOKE ALL ON FUNCTION shopstream.row_json(anyelement, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shopstream.row_json(anyelement, text[]) TO shopstream_capture;

GRANT INSERT ON shopstream.changes_0, shopstream.changes_1, shopstream.changes_2 TO shopstream_capture;
GRANT SELECT ON shopstream.rotation TO shopstream_capture;
GRANT USAGE ON SEQUENCE shopstream.change_id TO shopstream_capture;

DROP TABLE shopstream.inbox;
DROP TABLE shopstream.events;
