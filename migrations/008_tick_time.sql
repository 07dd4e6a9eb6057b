-- When each tick was recorded. Truncating the oldest capture table prunes
-- every tick at or below the last one holding its changes, and with them the
-- changes those ticks hold in the newer tables: a long transaction's early
-- change, ticked today with fresh ones, would prune those fresh changes far
-- inside retention. Truncation waits until that last tick is older than the
-- retention, so that everything it prunes is (its changes were committed
-- before it was recorded). Ticks recorded before this migration count as
-- recorded now: a rotation waits one retention more, never less.
ALTER TABLE shopstream.ticks ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
