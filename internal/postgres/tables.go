package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
)

// capturedRow is a captured change as a tick hands it out: the change, the
// table whose trigger wrote it (nil for rows from before migration 4) and the
// writer's transaction.
type capturedRow struct {
	change events.Change
	relid  *uint32
	txid   string
}

// relation is what the sequencer knows of a table that wrote captured changes.
type relation struct {
	entity    string   // of the configured table at the root of its partition tree; "" for none
	root      uint32   // that root (the table itself when not a partition)
	key       []string // of the root: its primary-key columns
	identity  []string // the key's columns outside the partition key
	partition bool
}

// tableCheck holds every reader of the log to the rule that a captured change
// stands for the entity configured for the table whose trigger wrote it.
// capture() can be attached only by shopstream's roles, and only they can
// insert into the capture tables, but a row is checked all the same: one that claims another entity is
// refused, whatever it says.
//
// It maps the relid a row carries (a table, or a partition of one) to the
// entity of the configured table at the root of its partition tree. Every
// batch reads what the configured names resolve to (observe): when a table
// was renamed away or in, the map starts afresh, so that the one renamed away
// stops counting as its entity's at once. It is also rebuilt every
// tableCheckTTL, for partitions attached or detached meanwhile.
type tableCheck struct {
	entities, names []string
	named           []uint32 // the oids the names resolved to when rels was filled
	rels            map[uint32]relation
	since           time.Time
}

const tableCheckTTL = 5 * time.Second

func newTableCheck(tables []config.Table) *tableCheck {
	tc := &tableCheck{rels: map[uint32]relation{}}
	for _, t := range tables {
		tc.entities = append(tc.entities, t.Entity)
		tc.names = append(tc.names, t.Name)
	}
	return tc
}

// prepare turns the rows of a batch into the changes the sequencer orders:
// in position order, refused rows marked (Change.Refused), the DELETE and INSERT
// of a row moved between partitions paired into one update, and the TRUNCATE
// of a partitioned table counted once.
func (tc *tableCheck) prepare(ctx context.Context, conn *pgx.Conn, rows []capturedRow) ([]events.Change, error) {
	slices.SortFunc(rows, func(a, b capturedRow) int { return cmp.Compare(a.change.Position, b.change.Position) })
	if err := tc.learn(ctx, conn, rows); err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		if r.relid == nil {
			continue
		}
		r.change.Key = tc.rels[*r.relid].key
		if want := tc.rels[*r.relid].entity; want != r.change.Entity {
			r.change.Refused = fmt.Errorf("a change for entity %q came from the table with oid %d, which is %s",
				r.change.Entity, *r.relid, describeEntity(want))
		}
	}
	return tc.merge(rows), nil
}

// merge pairs moves and drops repeated truncations. A moved row's DELETE is
// followed, among its transaction's rows, directly by its INSERT into another
// partition of the same root, with the same identity (the primary key outside
// the partition key, whose change is what moved the row).
func (tc *tableCheck) merge(rows []capturedRow) []events.Change {
	out := make([]events.Change, 0, len(rows))
	from := make([]uint32, 0, len(rows)) // the relid of each change in out (0: none)
	pendingDelete := map[string]int{}    // txid → index in out of its last row, when a partition's delete
	truncated := map[string]bool{}       // txid + entity
	for _, r := range rows {
		c := r.change
		if r.txid == "" || r.relid == nil || c.Refused != nil {
			out, from = append(out, c), append(from, 0)
			continue
		}
		rel := tc.rels[*r.relid]
		j, pending := pendingDelete[r.txid]
		delete(pendingDelete, r.txid)
		switch {
		case c.Action == "truncated":
			key := r.txid + "\x00" + c.Entity
			if truncated[key] {
				continue
			}
			truncated[key] = true
		case c.Action == "created" && pending && rel.partition:
			del := out[j]
			if tc.rels[from[j]].root == rel.root && from[j] != *r.relid && sameIdentity(rel.identity, del.Old, c.New) {
				out[j] = events.Change{ID: c.ID, Position: del.Position, Entity: c.Entity, Action: "updated", Old: del.Old, New: c.New, Actor: c.Actor, At: c.At, Key: c.Key}
				continue
			}
		case c.Action == "deleted" && rel.partition:
			pendingDelete[r.txid] = len(out)
		}
		out, from = append(out, c), append(from, *r.relid)
	}
	return out
}

// sameIdentity reports whether the rows agree on the identity columns.
func sameIdentity(cols []string, a, b []byte) bool {
	if len(cols) == 0 {
		return true
	}
	var ra, rb map[string]json.RawMessage
	if json.Unmarshal(a, &ra) != nil || json.Unmarshal(b, &rb) != nil {
		return false
	}
	for _, c := range cols {
		va, ok1 := ra[c]
		vb, ok2 := rb[c]
		if !ok1 || !ok2 || !bytes.Equal(va, vb) {
			return false
		}
	}
	return true
}

func describeEntity(e string) string {
	if e == "" {
		return "no configured table (TABLES)"
	}
	return fmt.Sprintf("the table of entity %q", e)
}

// observe takes what the configured names resolve to now (0: no such
// table); a change forgets everything learned.
func (tc *tableCheck) observe(named []uint32) {
	if !slices.Equal(named, tc.named) {
		clear(tc.rels)
		tc.named = named
	}
}

// learn looks up the relids of the batch that it does not know yet.
func (tc *tableCheck) learn(ctx context.Context, conn *pgx.Conn, rows []capturedRow) error {
	if time.Since(tc.since) > tableCheckTTL {
		clear(tc.rels)
		tc.since = time.Now()
	}
	var unknown []uint32
	seen := map[uint32]bool{}
	for _, r := range rows {
		if r.relid == nil || seen[*r.relid] {
			continue
		}
		seen[*r.relid] = true
		if _, ok := tc.rels[*r.relid]; !ok {
			unknown = append(unknown, *r.relid)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	res, err := conn.Query(ctx, `SELECT u.relid, coalesce(t.entity, ''), r.root::oid, coalesce((
			SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = r.root AND i.indisprimary), '{}'), coalesce((
			SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = r.root AND i.indisprimary
			  AND NOT a.attnum = ANY (coalesce((SELECT p.partattrs::int2[] FROM pg_partitioned_table p WHERE p.partrelid = r.root), '{}'))
		), '{}')
		FROM unnest($1::oid[]) u(relid)
		CROSS JOIN LATERAL (SELECT coalesce(pg_partition_root(u.relid::regclass), u.relid::regclass) AS root) r
		LEFT JOIN unnest($2::text[], $3::text[]) t(entity, name) ON to_regclass(t.name) = r.root`,
		unknown, tc.entities, tc.names)
	if err != nil {
		return fmt.Errorf("resolving the tables of captured changes: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var relid uint32
		var rel relation
		if err := res.Scan(&relid, &rel.entity, &rel.root, &rel.key, &rel.identity); err != nil {
			return fmt.Errorf("resolving the tables of captured changes: %w", err)
		}
		rel.partition = rel.root != relid
		tc.rels[relid] = rel
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("resolving the tables of captured changes: %w", err)
	}
	return nil
}
