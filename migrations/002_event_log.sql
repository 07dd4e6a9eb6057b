-- The road of a change: a trigger appends it to the inbox in the writer's own
-- transaction (nothing else: no NOTIFY per commit, no lock shared between writers);
-- the elected sequencer moves committed inbox rows into the event log, giving them
-- gap-free positions in one transaction at a time, and rings shopstream_events.

CREATE TABLE shopstream.inbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity     text NOT NULL,
    action     text NOT NULL,
    old_row    json,
    new_row    json,
    actor      text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE shopstream.events (
    position   bigint PRIMARY KEY,
    entity     text NOT NULL,
    action     text NOT NULL,
    data       json NOT NULL,
    previous   json,
    actor      text,
    created_at timestamptz NOT NULL,
    logged_at  timestamptz NOT NULL DEFAULT now()
);
-- Readers scan by position (the primary key); pruning finds old rows through a
-- BRIN index, which costs the append next to nothing.
CREATE INDEX events_logged_at_brin ON shopstream.events USING brin (logged_at);

-- One row: the last position handed out. The sequencer locks it FOR UPDATE, so
-- only one transaction writes the log at a time and positions become visible in
-- order; a rolled-back batch gives its positions back (a sequence would not).
CREATE TABLE shopstream.log_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_position  bigint NOT NULL DEFAULT 0,
    pruned_through bigint NOT NULL DEFAULT 0
);
INSERT INTO shopstream.log_state DEFAULT VALUES;

-- The row trigger: append, and ring the sequencer's doorbell only when no other
-- writer is ringing it right now (pg_try_advisory_xact_lock never waits). A writer
-- that skips the ring is picked up by the sequencer's poll.
-- SECURITY DEFINER: the shop's writer roles need no privileges on the shopstream
-- schema; a fixed search_path keeps a writer from substituting its own functions.
CREATE FUNCTION shopstream.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := coalesce(nullif(current_setting('shopstream.actor', true), ''),
                         nullif(current_setting('application_name', true), ''));
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO shopstream.inbox (entity, action, old_row, new_row, actor)
        VALUES (TG_ARGV[0], 'updated', row_to_json(OLD), row_to_json(NEW), who);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO shopstream.inbox (entity, action, new_row, actor)
        VALUES (TG_ARGV[0], 'created', row_to_json(NEW), who);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO shopstream.inbox (entity, action, old_row, actor)
        VALUES (TG_ARGV[0], 'deleted', row_to_json(OLD), who);
    ELSE
        INSERT INTO shopstream.inbox (entity, action, actor)
        VALUES (TG_ARGV[0], 'truncated', who);
    END IF;
    IF pg_try_advisory_xact_lock(7316042871525063) THEN
        PERFORM pg_notify('shopstream_inbox', '');
    END IF;
    RETURN NULL;
END
$$;
