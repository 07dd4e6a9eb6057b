package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/postgres"
)

// The statements that look for unticked changes run on every tick and every
// doorbell release, while a capture table holds up to a retention's worth of
// changes. Planned as a sequential scan they read the whole table each time
// (73 ms a tick at 310,000 rows, a core of PostgreSQL at 100 changes a
// second); they must find the unticked changes through the txid index,
// whether the table was ever analyzed (autovacuum is off on capture tables)
// or not.
func TestUntickedLookupsUseTheTxidIndex(t *testing.T) {
	ctx := context.Background()
	db, _ := openWithWriter(t)
	conn, err := db.ConnectDedicated(ctx) // configured as the sequencer's
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	// 200,000 ticked single-row transactions in the table being filled, and a
	// tick whose snapshot holds them all.
	if _, err := conn.Exec(ctx, `INSERT INTO shopstream.changes_0 (txid, entity, action, new_row)
		SELECT g::text::xid8, 'order', 'updated', json_build_object('id', g, 'notes', repeat('n', 300)) FROM generate_series(1, 200000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO shopstream.ticks (first_position, count, snap, prev, min_id, max_id, tables)
		SELECT coalesce(max(first_position + count), 1), 1, pg_current_snapshot(), pg_current_snapshot(), 1, 1, 1 FROM shopstream.ticks`); err != nil {
		t.Fatal(err)
	}

	statements := []struct {
		name string
		sql  string
		args []any
	}{
		{"tick", postgres.TickSQL, []any{int64(0), 2000, 8 << 20, int64(1000)}},
		{"pending", "SELECT " + postgres.PendingSQL, nil},
		{"backlog gauge", postgres.BacklogSQL, nil},
		{"rotation check", postgres.RotationCheckSQL("shopstream.changes_0"), []any{float64(86400), int16(1)}},
	}
	// Fresh; vacuumed (the visibility map makes a scan of the whole index
	// look cheap); vacuumed and analyzed.
	for _, prep := range []string{"", "VACUUM shopstream.changes_0", "VACUUM ANALYZE shopstream.changes_0"} {
		if prep != "" {
			if _, err := conn.Exec(ctx, prep); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range statements {
			var plan []byte
			if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+st.sql, st.args...).Scan(&plan); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if bad := wholeScans(t, plan, "changes_0"); len(bad) > 0 {
				t.Errorf("%s (after %q): %s of the capture table, want a txid index condition:\n%s", st.name, prep, strings.Join(bad, ", "), plan)
			}
		}
	}
}

// wholeScans lists the scans of relation rel in an EXPLAIN (FORMAT JSON)
// plan that read it whole: a sequential scan, or an index scan that filters
// every entry (one without a filter reads in order for a LIMIT).
func wholeScans(t *testing.T, plan []byte, rel string) []string {
	t.Helper()
	var doc []struct{ Plan map[string]any }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("reading the plan: %v\n%s", err, plan)
	}
	var out []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if n["Relation Name"] == rel {
			switch typ, _ := n["Node Type"].(string); typ {
			case "Seq Scan":
				out = append(out, typ)
			case "Index Scan", "Index Only Scan":
				_, cond := n["Index Cond"]
				if _, filter := n["Filter"]; filter && !cond {
					out = append(out, typ+" filtering every entry")
				}
			}
		}
		if n["Node Type"] == "Bitmap Index Scan" {
			if _, ok := n["Index Cond"]; !ok {
				out = append(out, "Bitmap Index Scan without an index condition")
			}
		}
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				walk(m)
			}
		}
	}
	walk(doc[0].Plan)
	return out
}
