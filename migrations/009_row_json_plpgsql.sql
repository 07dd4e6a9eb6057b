-- row_json becomes PL/pgSQL, with the same body, owner, privileges and pinned
-- settings. A SQL function that cannot be inlined (SECURITY DEFINER, SET
-- clauses) is parsed and planned again in every transaction that calls it:
-- the trigger's expression state lives for one transaction. PL/pgSQL keeps its
-- compiled function and plans for the session. On a single-row UPDATE that
-- was about 60 µs of the writer's CPU per transaction, two thirds of all the
-- serialising cost (docs/performance.md, "Serialising a row: plan once per
-- session"). A test in one query (200,000 rows, one plan) never saw it.
CREATE OR REPLACE FUNCTION shopstream.row_json(r anyelement) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
SET IntervalStyle = 'iso_8601'
SET extra_float_digits = 1
SET bytea_output = 'hex'
AS $$BEGIN RETURN pg_catalog.row_to_json(r); END$$;

CREATE OR REPLACE FUNCTION shopstream.row_json(r anyelement, hide text[]) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD'
SET IntervalStyle = 'iso_8601'
SET extra_float_digits = 1
SET bytea_output = 'hex'
AS $$BEGIN
    RETURN (SELECT coalesce('{' OPERATOR(pg_catalog.||) pg_catalog.string_agg(
            pg_catalog.to_json(e.key)::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) e.value::pg_catalog.text, ',' ORDER BY e.i)
            OPERATOR(pg_catalog.||) '}', '{}')::pg_catalog.json
        FROM pg_catalog.json_each(pg_catalog.row_to_json(r)) WITH ORDINALITY e(key, value, i)
        WHERE NOT pg_catalog.lower(e.key) OPERATOR(pg_catalog.=) ANY (hide));
END$$;
