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
func (db *DB) Migrate(ctx context.Context, tables []config.Table, demo bool) (MigrateReport, error) {
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
		status, err := attach(ctx, c, t)
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

func attach(ctx context.Context, c *pgx.Conn, t config.Table) (string, error) {
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
	missing, err := missingTriggers(ctx, c, *oid, parts)
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
	entity := quoteLiteral(t.Entity)
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
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("committing: %w", err)
	}
	return "attached", nil
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

// missingTriggers counts the triggers the tree lacks: the three on the table,
// and the TRUNCATE trigger on every partition.
func missingTriggers(ctx context.Context, c *pgx.Conn, oid uint32, parts []rel) (int, error) {
	oids := make([]uint32, len(parts))
	for i, p := range parts {
		oids[i] = p.oid
	}
	var have, haveTrunc int
	names := []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name}
	if err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tgrelid = $1 AND tgname = ANY ($2)),
			count(*) FILTER (WHERE tgrelid <> $1 AND tgname = $3)
		FROM pg_trigger WHERE tgrelid = ANY ($4::oid[])`, oid, names, triggerDefs[2].name, oids).Scan(&have, &haveTrunc); err != nil {
		return 0, fmt.Errorf("reading triggers: %w", err)
	}
	return len(triggerDefs) - have + len(parts) - 1 - haveTrunc, nil
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
