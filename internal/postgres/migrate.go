package postgres

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/migrations"
)

// Attachment says what Migrate did for one configured table.
type Attachment struct {
	Entity, Table string
	Status        string // "attached", "already attached" or "not found"
}

// MigrateReport is what Migrate did.
type MigrateReport struct {
	From, To int32
	Tables   []Attachment
}

// Migrate applies shopstream's own migrations, creates the demo shop tables and
// sample rows when demo is set, and attaches the capture triggers to every
// configured table that exists. Running it again changes nothing.
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
	for _, t := range tables {
		status, err := attach(ctx, c, t)
		if err != nil {
			return rep, fmt.Errorf("attaching triggers to %s: %w", t.Name, err)
		}
		rep.Tables = append(rep.Tables, Attachment{Entity: t.Entity, Table: t.Name, Status: status})
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
	var have int
	names := []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = $1 AND tgname = ANY($2)`, *oid, names).Scan(&have); err != nil {
		return "", fmt.Errorf("reading triggers: %w", err)
	}
	if have == len(triggerDefs) {
		return "already attached", nil
	}
	var qualified string
	if err := c.QueryRow(ctx, "SELECT $1::regclass::text", *oid).Scan(&qualified); err != nil {
		return "", fmt.Errorf("naming table: %w", err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("beginning: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	entity := quoteLiteral(t.Entity)
	for _, d := range triggerDefs {
		sql := "CREATE OR REPLACE TRIGGER " + d.name + " " + fmt.Sprintf(d.def, qualified, entity)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("creating %s: %w", d.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("committing: %w", err)
	}
	return "attached", nil
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
