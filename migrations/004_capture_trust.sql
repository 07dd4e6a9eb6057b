-- What runs inside a writer's transaction runs with as little as possible.
--
-- row_to_json renders a column of a user-defined type through a cast to json
-- when one exists, and casts are found by type, not through search_path: the
-- owner of a watched table can make capture() call a function of its own.
-- So the capture path is split over two roles that can do nothing else:
--
--   shopstream_capture  owns capture(); may only USAGE the schema and INSERT
--                       into shopstream.inbox (no sessions, users, roles, log);
--   shopstream_nobody   owns row_json(), which serialises the row: a cast
--                       function runs as this role, which holds no privilege.
--
-- Both roles are NOLOGIN. Roles are per cluster: several databases share them,
-- each granting its own objects. Creating them needs CREATEROLE (or a
-- superuser) once; see docs/operations.md, Privileges.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['shopstream_capture', 'shopstream_nobody'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another migration created it meanwhile
            END;
        END IF;
        -- Ownership can be given only to a role one is a member of.
        IF NOT pg_catalog.pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
    END LOOP;
END
$$;

-- The table whose trigger wrote the row: the sequencer accepts a row only for
-- the entity configured for that table (or for the root of its partitions).
-- Rows from before this migration have none and are accepted as they are.
-- And the writer's transaction: an UPDATE that moves a row to another
-- partition reaches the triggers as a DELETE and an INSERT, which the
-- sequencer pairs into one update; a TRUNCATE of a partitioned table fires on
-- the parent and on every partition, which it counts once.
ALTER TABLE shopstream.inbox ADD COLUMN relid oid, ADD COLUMN txid xid8;

-- An update of a row that has a column named changed_fields keeps that
-- column in data (data is the row) and shopstream's changed fields here; the
-- event then carries them at its top level.
ALTER TABLE shopstream.events ADD COLUMN changed_fields json;

-- An event too large (MAX_EVENT_BYTES) or too deeply nested to carry keeps
-- only the row's key in data, and says why here.
ALTER TABLE shopstream.events ADD COLUMN too_large json;

-- The row as JSON, the same whatever the writer's session settings: the SET
-- clauses pin every setting row_to_json's output depends on for the call.
CREATE FUNCTION shopstream.row_json(r anyelement) RETURNS json
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
SET IntervalStyle = 'iso_8601'
SET extra_float_digits = 1
SET bytea_output = 'hex'
AS 'SELECT pg_catalog.row_to_json(r)';

-- The trigger: append, and ring the sequencer's doorbell only when no other
-- writer is ringing it right now (pg_try_advisory_xact_lock never waits).
--
-- The doorbell (a NOTIFY) makes PREPARE TRANSACTION fail, so it rings only
-- where no transaction can be prepared: shopstream.doorbell = auto (the
-- default) rings when max_prepared_transactions is 0; on, always; off, never.
-- An unrung change is picked up by the sequencer's poll (at most MaxPoll,
-- 20 ms, after its commit, or after COMMIT PREPARED).
CREATE OR REPLACE FUNCTION shopstream.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who text := left(coalesce(nullif(current_setting('shopstream.actor', true), ''),
                              nullif(current_setting('application_name', true), '')), 256);
    bell text := coalesce(nullif(current_setting('shopstream.doorbell', true), ''), 'auto');
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO shopstream.inbox (entity, action, old_row, new_row, actor, relid, txid)
        VALUES (TG_ARGV[0], 'updated', shopstream.row_json(OLD), shopstream.row_json(NEW), who, TG_RELID, pg_current_xact_id());
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO shopstream.inbox (entity, action, new_row, actor, relid, txid)
        VALUES (TG_ARGV[0], 'created', shopstream.row_json(NEW), who, TG_RELID, pg_current_xact_id());
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO shopstream.inbox (entity, action, old_row, actor, relid, txid)
        VALUES (TG_ARGV[0], 'deleted', shopstream.row_json(OLD), who, TG_RELID, pg_current_xact_id());
    ELSE
        INSERT INTO shopstream.inbox (entity, action, actor, relid, txid)
        VALUES (TG_ARGV[0], 'truncated', who, TG_RELID, pg_current_xact_id());
    END IF;
    IF (bell = 'on' OR (bell = 'auto' AND current_setting('max_prepared_transactions') = '0'))
       AND pg_try_advisory_xact_lock(7316042871525063) THEN
        PERFORM pg_notify('shopstream_inbox', '');
    END IF;
    RETURN NULL;
END
$$;

-- Owners: a role must be allowed to CREATE in the schema when it is given an
-- object there; that right is taken back at once.
GRANT CREATE ON SCHEMA shopstream TO shopstream_capture, shopstream_nobody;
ALTER FUNCTION shopstream.row_json(anyelement) OWNER TO shopstream_nobody;
ALTER FUNCTION shopstream.capture() OWNER TO shopstream_capture;
REVOKE CREATE ON SCHEMA shopstream FROM shopstream_capture, shopstream_nobody;

GRANT USAGE ON SCHEMA shopstream TO shopstream_capture;
GRANT INSERT ON shopstream.inbox TO shopstream_capture;
REVOKE ALL ON FUNCTION shopstream.row_json(anyelement) FROM PUBLIC;
-- Only shopstream attaches capture() to a table (migrate's role is a member of
-- its owner); a trigger's function is not checked again when it fires, so the
-- shop's writers need nothing.
REVOKE ALL ON FUNCTION shopstream.capture() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shopstream.row_json(anyelement) TO shopstream_capture;

-- Session tokens are stored as their SHA-256 (internal/auth HashedStore): the
-- table, a backup or a statement log holds nothing a cookie can be made from.
-- Sessions stored under the plain token end here (their users log in again);
-- the old trigger still announces them, by hash, to close their sockets.
DELETE FROM shopstream.sessions;

-- The row's token is now the hash that sockets are matched by.
CREATE OR REPLACE FUNCTION shopstream.session_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shopstream_sessions', OLD.token);
    RETURN NULL;
END
$$;
