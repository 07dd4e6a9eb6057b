package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
)

// tableCheck holds the sequencer to the rule that an inbox row stands for the
// entity configured for the table whose trigger wrote it. capture() is
// executable by anyone, so the owner of any table could attach it with another
// entity's name (or a cast function could try to forge rows, were it allowed
// to insert): such a row is refused, whatever it says.
//
// It maps the relid a row carries (a table, or a partition of one) to the
// entity of the configured table at the root of its partition tree. The map
// is rebuilt every tableCheckTTL, so that a table renamed away stops counting
// as its entity's and one renamed in starts.
type tableCheck struct {
	entities, names []string
	entityOf        map[uint32]string // relid → entity ("" for none)
	since           time.Time
}

const tableCheckTTL = 5 * time.Second

func newTableCheck(tables []config.Table) *tableCheck {
	tc := &tableCheck{entityOf: map[uint32]string{}}
	for _, t := range tables {
		tc.entities = append(tc.entities, t.Entity)
		tc.names = append(tc.names, t.Name)
	}
	return tc
}

// check marks the changes that did not come from their entity's table. A nil
// relid is a row from before relids were recorded: accepted.
func (tc *tableCheck) check(ctx context.Context, conn *pgx.Conn, changes []events.Change, relids []*uint32) error {
	if time.Since(tc.since) > tableCheckTTL {
		clear(tc.entityOf)
		tc.since = time.Now()
	}
	var unknown []uint32
	for _, r := range relids {
		if r == nil {
			continue
		}
		if _, ok := tc.entityOf[*r]; !ok {
			unknown = append(unknown, *r)
			tc.entityOf[*r] = "" // once per batch
		}
	}
	if len(unknown) > 0 {
		if err := tc.resolve(ctx, conn, unknown); err != nil {
			return err
		}
	}
	for i, r := range relids {
		if r == nil {
			continue
		}
		if want := tc.entityOf[*r]; want != changes[i].Entity {
			changes[i].Refused = fmt.Errorf("an inbox row for entity %q came from the table with oid %d, which is %s",
				changes[i].Entity, *r, describeEntity(want))
		}
	}
	return nil
}

func describeEntity(e string) string {
	if e == "" {
		return "no configured table (TABLES)"
	}
	return fmt.Sprintf("the table of entity %q", e)
}

func (tc *tableCheck) resolve(ctx context.Context, conn *pgx.Conn, relids []uint32) error {
	rows, err := conn.Query(ctx, `SELECT u.relid, coalesce(t.entity, '')
		FROM unnest($1::oid[]) u(relid)
		LEFT JOIN unnest($2::text[], $3::text[]) t(entity, name)
		  ON to_regclass(t.name) = coalesce(pg_partition_root(u.relid::regclass), u.relid::regclass)`,
		relids, tc.entities, tc.names)
	if err != nil {
		return fmt.Errorf("resolving the tables of inbox rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var relid uint32
		var entity string
		if err := rows.Scan(&relid, &entity); err != nil {
			return fmt.Errorf("resolving the tables of inbox rows: %w", err)
		}
		tc.entityOf[relid] = entity
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("resolving the tables of inbox rows: %w", err)
	}
	return nil
}
