package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/migrations"
)

// Attachment says what Migrate did for one configured table.
type Attachment struct {
	Entity, Table string
	Status        string // "attached", "already attached", "not found" or "refused"
	Err           error  // why it was refused
}

// ErrTablesRefused is returned by Migrate, wrapped, when some configured table
// could not be attached; the report still says what happened to each.
var ErrTablesRefused = errors.New("some tables could not be attached")

// MigrateReport is what Migrate did.
type MigrateReport struct {
	From, To int32
	Tables   []Attachment
}

// Migrate applies shopstream's own migrations, creates the demo shop tables and
// sample rows when demo is set, and attaches the capture triggers to every
// configured table that exists. It tries every table, whatever happened to the
// ones before, and reports each; when any was refused it returns the report
// with an error wrapping ErrTablesRefused. Running it again changes nothing.
//
// With replica set the triggers fire also for writes applied with
// session_replication_role = replica (ENABLE ALWAYS); without, they fire for
// ordinary writes only (PostgreSQL's default), and a run sets them back.
func (db *DB) Migrate(ctx context.Context, tables []config.Table, demo, replica bool) (MigrateReport, error) {
	var rep MigrateReport
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return rep, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	c := conn.Conn()
	var exists bool
	if err := c.QueryRow(ctx, "SELECT to_regnamespace('shopstream') IS NOT NULL").Scan(&exists); err != nil {
		return rep, fmt.Errorf("looking for schema: %w", err)
	}
	if !exists { // CREATE SCHEMA IF NOT EXISTS would need CREATE on the database every time
		if _, err := c.Exec(ctx, "CREATE SCHEMA shopstream"); err != nil {
			return rep, fmt.Errorf("creating schema: %w", err)
		}
	}
	m, err := migrate.NewMigrator(ctx, c, "shopstream.schema_version")
	if err != nil {
		return rep, fmt.Errorf("creating migrator: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return rep, fmt.Errorf("loading migrations: %w", err)
	}
	if rep.From, err = m.GetCurrentVersion(ctx); err != nil {
		return rep, fmt.Errorf("reading schema version: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return rep, fmt.Errorf("migrating: %w", err)
	}
	if rep.To, err = m.GetCurrentVersion(ctx); err != nil {
		return rep, fmt.Errorf("reading schema version: %w", err)
	}
	if demo {
		if err := execFile(ctx, c, "demo/demo.sql"); err != nil {
			return rep, err
		}
		if err := execFile(ctx, c, "demo/seed.sql"); err != nil {
			return rep, err
		}
	}
	refused := 0
	for _, t := range tables {
		status, err := attach(ctx, c, t, replica)
		a := Attachment{Entity: t.Entity, Table: t.Name, Status: status}
		if err != nil {
			a.Status, a.Err = "refused", err
			refused++
		}
		rep.Tables = append(rep.Tables, a)
	}
	if refused > 0 {
		return rep, fmt.Errorf("%d of %d tables: %w", refused, len(tables), ErrTablesRefused)
	}
	return rep, nil
}

// Reattach re-creates the capture triggers of the configured tables whose
// triggers differ from the configuration (serve calls it, so that a change
// of SECRET_COLUMNS applies in the writers' transactions at once). It
// returns what it did for each table; a table it may not change is refused
// (the events still leave out the secret columns, but the capture tables
// hold them until shopstream migrate runs).
func (db *DB) Reattach(ctx context.Context, tables []config.Table, replica bool) ([]Attachment, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	var out []Attachment
	for _, t := range tables {
		var have int // triggers with shopstream's names: a table without them stays so (Unattached reports it)
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = ANY ($2)`,
			t.Name, []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name}).Scan(&have); err != nil {
			return nil, fmt.Errorf("reading triggers: %w", err)
		}
		if have == 0 {
			continue
		}
		status, err := attach(ctx, conn.Conn(), t, replica)
		a := Attachment{Entity: t.Entity, Table: t.Name, Status: status}
		if err != nil {
			a.Status, a.Err = "refused", err
		}
		out = append(out, a)
	}
	return out, nil
}

func execFile(ctx context.Context, c *pgx.Conn, name string) error {
	sql, err := fs.ReadFile(migrations.FS, name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if _, err := c.Exec(ctx, string(sql)); err != nil {
		return fmt.Errorf("running %s: %w", name, err)
	}
	return nil
}

// The three triggers on every watched table. An UPDATE that leaves the row
// byte-for-byte the same (record image comparison, which needs no equality
// operator and so works for json columns too) never calls the function.
var triggerDefs = []struct{ name, def string }{
	{"shopstream_capture_iud", "AFTER INSERT OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION shopstream.capture(%s)"},
	{"shopstream_capture_upd", "AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD.* *<> NEW.*) EXECUTE FUNCTION shopstream.capture(%s)"},
	{"shopstream_capture_trunc", "AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION shopstream.capture(%s)"},
}

func attach(ctx context.Context, c *pgx.Conn, t config.Table, replica bool) (string, error) {
	var oid *uint32
	if err := c.QueryRow(ctx, "SELECT to_regclass($1)::oid", t.Name).Scan(&oid); err != nil {
		return "", fmt.Errorf("looking up table: %w", err)
	}
	if oid == nil {
		return "not found", nil
	}
	parts, err := partitionsOf(ctx, c, *oid)
	if err != nil {
		return "", err
	}
	enabled := "O" // fires in origin and local mode: PostgreSQL's default
	if replica {
		enabled = "A"
	}
	args, err := triggerArgs(ctx, c, t, *oid)
	if err != nil {
		return "", err
	}
	missing, err := missingTriggers(ctx, c, parts, enabled, args)
	if err != nil {
		return "", err
	}
	if missing == 0 {
		return "already attached", nil
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("beginning: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	quoted := make([]string, 0, len(args))
	for _, a := range args {
		quoted = append(quoted, quoteLiteral(a))
	}
	entity := strings.Join(quoted, ", ")
	for _, d := range triggerDefs {
		sql := "CREATE OR REPLACE TRIGGER " + d.name + " " + fmt.Sprintf(d.def, parts[0].qualified, entity)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("creating %s: %w", d.name, err)
		}
	}
	// Statement triggers are not cloned to partitions: a TRUNCATE of one
	// partition would go unseen. Row triggers are (also to partitions made later).
	trunc := triggerDefs[2]
	for _, p := range parts[1:] {
		sql := "CREATE OR REPLACE TRIGGER " + trunc.name + " " + fmt.Sprintf(trunc.def, p.qualified, entity)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("creating %s on partition %s: %w", trunc.name, p.qualified, err)
		}
	}
	if err := setEnabled(ctx, tx, parts, enabled); err != nil {
		return "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("committing: %w", err)
	}
	return "attached", nil
}

// setEnabled puts every capture trigger of the tree in the enabled state
// wanted: O (PostgreSQL's default, what CREATE TRIGGER makes) or A (ALWAYS:
// also for writes in session_replication_role = replica). Changing it needs
// the table's ownership, so only triggers in another state are altered.
func setEnabled(ctx context.Context, tx pgx.Tx, parts []rel, enabled string) error {
	oids := make([]uint32, len(parts))
	for i, p := range parts {
		oids[i] = p.oid
	}
	names := []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name}
	rows, err := tx.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname), t.tgname FROM pg_trigger t
		JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE t.tgrelid = ANY ($1::oid[]) AND t.tgname = ANY ($2) AND t.tgenabled <> $3`, oids, names, enabled)
	if err != nil {
		return fmt.Errorf("reading trigger states: %w", err)
	}
	type trig struct{ table, name string }
	todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trig, error) {
		var t trig
		err := r.Scan(&t.table, &t.name)
		return t, err
	})
	if err != nil {
		return fmt.Errorf("reading trigger states: %w", err)
	}
	enable := "ENABLE TRIGGER "
	if enabled == "A" {
		enable = "ENABLE ALWAYS TRIGGER "
	}
	for _, t := range todo {
		if _, err := tx.Exec(ctx, "ALTER TABLE ONLY "+t.table+" "+enable+t.name); err != nil {
			return fmt.Errorf("setting %s on %s to fire for replicated writes too (CAPTURE_REPLICA_WRITES) needs the table's owner: %w", t.name, t.table, err)
		}
	}
	return nil
}

// rel is a table of a partition tree: the root first, then every partition.
type rel struct {
	oid       uint32
	qualified string // schema.name, quoted where needed
}

// partitionsOf returns the table and, when it is partitioned, all its
// partitions at every level. Creating a row trigger on a partitioned table
// clones it to every partition, which needs the TRIGGER privilege on each: a
// partition without it is named in the error, with the grant that fixes it.
func partitionsOf(ctx context.Context, c *pgx.Conn, oid uint32) ([]rel, error) {
	rows, err := c.Query(ctx, `SELECT c.oid, format('%I.%I', n.nspname, c.relname), has_table_privilege(c.oid, 'TRIGGER')
		FROM (SELECT $1::oid AS relid, 0 AS level UNION ALL
		      SELECT relid::oid, level FROM pg_partition_tree($1::oid::regclass) WHERE relid::oid <> $1::oid) t
		JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		ORDER BY t.level, c.relname`, oid)
	if err != nil {
		return nil, fmt.Errorf("listing partitions: %w", err)
	}
	var out []rel
	var denied []string
	for rows.Next() {
		var r rel
		var may bool
		if err := rows.Scan(&r.oid, &r.qualified, &may); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing partitions: %w", err)
		}
		if !may {
			denied = append(denied, r.qualified)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing partitions: %w", err)
	}
	if len(denied) > 0 {
		var role string
		if err := c.QueryRow(ctx, "SELECT quote_ident(current_user)").Scan(&role); err != nil {
			return nil, fmt.Errorf("reading the current role: %w", err)
		}
		return nil, fmt.Errorf("%s lacks the TRIGGER privilege on %s (a trigger on a partitioned table is created on every partition): GRANT TRIGGER ON %s TO %s",
			role, strings.Join(denied, ", "), strings.Join(denied, ", "), role)
	}
	return out, nil
}

// triggerArgs are the capture triggers' arguments for t (whose oid is oid):
// the entity, then the secret columns the table has, which capture() leaves
// out of the rows it stores (lower case, sorted: capture matches them
// case-insensitively). Only the columns the table has: leaving out columns
// costs the writer a pass over the row's fields, which a table without any
// secret column does not pay. A secret column added later is stored until
// migrate (or serve) runs again (doctor says so); it is never sent.
func triggerArgs(ctx context.Context, q querier, t config.Table, oid uint32) ([]string, error) {
	var have []string
	rows, err := q.Query(ctx, `SELECT DISTINCT lower(attname::text) FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND lower(attname::text) = ANY ($2) ORDER BY 1`, oid, t.Secret)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", t.Name, err)
	}
	if have, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", t.Name, err)
	}
	return append([]string{t.Entity}, have...), nil
}

// querier is a connection or a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// tgargs is pg_trigger.tgargs for args: each argument NUL-terminated.
func tgargs(args []string) []byte {
	var b []byte
	for _, a := range args {
		b = append(append(b, a...), 0)
	}
	return b
}

// missingTriggers counts the triggers the tree lacks, or has in another
// enabled state or with other arguments (the secret columns changed): the
// three on the table and on each of its partitions (row triggers are cloned
// there, the TRUNCATE one is created there).
func missingTriggers(ctx context.Context, c *pgx.Conn, parts []rel, enabled string, args []string) (int, error) {
	oids := make([]uint32, len(parts))
	for i, p := range parts {
		oids[i] = p.oid
	}
	var have int
	names := []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = ANY ($1::oid[]) AND tgname = ANY ($2) AND tgenabled = $3 AND tgargs = $4`,
		oids, names, enabled, tgargs(args)).Scan(&have); err != nil {
		return 0, fmt.Errorf("reading triggers: %w", err)
	}
	return len(triggerDefs)*len(parts) - have, nil
}

// quoteLiteral quotes an entity name for a trigger argument. Entities come from
// config and are validated against a fixed list; quoting is defence in depth.
func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// Unattached describes the configured tables that would not emit events
// today: a table that does not exist, or one without shopstream's three
// capture triggers (a table swapped in by rename, as online schema-change
// tools do, has none). Empty when all are in place.
func (db *DB) Unattached(ctx context.Context, tables []config.Table) ([]string, error) {
	entities, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		entities[i], names[i] = t.Entity, t.Name
	}
	rows, err := db.Pool.Query(ctx, `SELECT t.entity, t.name, c.oid IS NOT NULL, (
			SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = ANY ($3) AND g.tgenabled <> 'D')
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY t(entity, name, i)
		LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)
		ORDER BY t.i`, entities, names, []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name})
	if err != nil {
		return nil, fmt.Errorf("checking the capture triggers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var entity, name string
		var exists bool
		var triggers int
		if err := rows.Scan(&entity, &name, &exists, &triggers); err != nil {
			return nil, fmt.Errorf("checking the capture triggers: %w", err)
		}
		switch {
		case !exists:
			out = append(out, fmt.Sprintf("table %s (%s) does not exist", name, entity))
		case triggers < len(triggerDefs):
			out = append(out, fmt.Sprintf("table %s (%s) has no capture trigger: run shopstream migrate", name, entity))
		}
	}
	return out, rows.Err()
}
