package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/migrations"
)

// Status is how a doctor's check came out.
type Status int

// The statuses, from good to bad.
const (
	StatusOK Status = iota
	StatusWarn
	StatusFail
)

func (s Status) String() string {
	return [...]string{"OK", "WARN", "FAIL"}[s]
}

// Check is one line of the doctor's report.
type Check struct {
	Name   string // what was checked, e.g. "table public.orders"
	Status Status
	Detail string // what was found and, when it is not OK, what to do
}

// DoctorOptions is the configuration the checks compare the database with.
type DoctorOptions struct {
	Tables     []config.Table
	Replica    bool          // CAPTURE_REPLICA_WRITES: triggers ENABLE ALWAYS
	Retention  time.Duration // EVENT_RETENTION
	PruneEvery time.Duration // EVENT_PRUNE_INTERVAL
	IdlePoll   time.Duration // IDLE_POLL
}

// minServerVersion is the oldest PostgreSQL shopstream runs on: the
// sequencer sets client_connection_check_interval and migrate uses CREATE OR
// REPLACE TRIGGER, both PostgreSQL 14.
const minServerVersion = 140000

// backlogAlarm is the age of the oldest change waiting for a tick above which changes are
// late (docs/operations.md, Metrics: shopstream_inbox_oldest_age_seconds).
const backlogAlarm = 30 * time.Second

// Doctor checks the database as an operator would before going live: the
// server's version, the schema's migrations, the capture triggers of every
// configured table and of no other, the privileges docs/operations.md asks
// for, the NOTIFY queue, two-phase commit, the sequencer, the backlog
// and the event log's retention. A query that fails is a failed check.
func (db *DB) Doctor(ctx context.Context, o DoctorOptions) []Check {
	var out []Check
	out = append(out, db.checkServer(ctx))
	migrated, c := db.checkMigrations(ctx)
	out = append(out, c)
	out = append(out, db.checkTables(ctx, o)...)
	out = append(out, db.checkStrayTriggers(ctx, o.Tables))
	if migrated {
		out = append(out, db.checkPrivileges(ctx)...)
	}
	out = append(out, db.checkNotifyQueue(ctx), db.checkTwoPhase(ctx, o.IdlePoll))
	leader, c := db.checkSequencer(ctx)
	out = append(out, c)
	if migrated {
		out = append(out, db.checkBacklog(ctx, leader), db.checkEventLog(ctx, o, leader))
	}
	return out
}

func ok(name, format string, args ...any) Check {
	return Check{Name: name, Status: StatusOK, Detail: fmt.Sprintf(format, args...)}
}

func warn(name, format string, args ...any) Check {
	return Check{Name: name, Status: StatusWarn, Detail: fmt.Sprintf(format, args...)}
}

func fail(name, format string, args ...any) Check {
	return Check{Name: name, Status: StatusFail, Detail: fmt.Sprintf(format, args...)}
}

func (db *DB) checkServer(ctx context.Context) Check {
	var role, dbname, version string
	var num int
	err := db.Pool.QueryRow(ctx, `SELECT current_user, current_database(), current_setting('server_version'),
		current_setting('server_version_num')::int`).Scan(&role, &dbname, &version, &num)
	if err != nil {
		return fail("server", "cannot query the database: %v", err)
	}
	if num < minServerVersion {
		return fail("server", "PostgreSQL %s: shopstream needs 14 or later", version)
	}
	return ok("server", "PostgreSQL %s, database %s, role %s", version, dbname, role)
}

// latestMigration is the highest NNN of the embedded NNN_name.sql files.
func latestMigration() (int, error) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return 0, fmt.Errorf("reading migrations: %w", err)
	}
	latest := 0
	for _, e := range entries {
		prefix, _, found := strings.Cut(e.Name(), "_")
		if n, err := strconv.Atoi(prefix); found && err == nil && strings.HasSuffix(e.Name(), ".sql") {
			latest = max(latest, n)
		}
	}
	return latest, nil
}

// checkMigrations reports whether the schema is there (the checks of its
// tables make sense) and whether it is at this binary's version.
func (db *DB) checkMigrations(ctx context.Context) (bool, Check) {
	const name = "migrations"
	latest, err := latestMigration()
	if err != nil {
		return false, fail(name, "%v", err)
	}
	var version *int32
	var exists bool
	err = db.Pool.QueryRow(ctx, "SELECT to_regclass('shopstream.schema_version') IS NOT NULL").Scan(&exists)
	if err == nil && exists {
		err = db.Pool.QueryRow(ctx, "SELECT version FROM shopstream.schema_version").Scan(&version)
	}
	switch {
	case err != nil:
		return false, fail(name, "cannot read shopstream.schema_version: %v", err)
	case version == nil:
		return false, fail(name, "schema shopstream is not there: run shopstream migrate")
	case int(*version) < latest:
		return true, fail(name, "schema at version %d, this binary's is %d: run shopstream migrate", *version, latest)
	case int(*version) > latest:
		return true, warn(name, "schema at version %d, newer than this binary's %d: a newer shopstream migrated it", *version, latest)
	}
	return true, ok(name, "schema at version %d, this binary's latest", latest)
}

// captureTriggers are the trigger names migrate attaches.
func captureTriggers() []string {
	return []string{triggerDefs[0].name, triggerDefs[1].name, triggerDefs[2].name}
}

// checkTables checks that every configured table exists and carries the
// three capture triggers, enabled as configured, for its entity, on itself
// and on each of its partitions.
func (db *DB) checkTables(ctx context.Context, o DoctorOptions) []Check {
	var out []Check
	for _, t := range o.Tables {
		name := "table " + t.Name
		problems, err := db.tableProblems(ctx, t, o.Replica)
		switch {
		case err != nil:
			out = append(out, fail(name, "(%s) cannot be checked: %v", t.Entity, err))
		case problems == nil:
			out = append(out, fail(name, "(%s) does not exist: check the name in TABLES, or create the table and run shopstream migrate", t.Entity))
		case len(problems) > 0:
			out = append(out, fail(name, "(%s) %s: run shopstream migrate", t.Entity, strings.Join(problems, "; ")))
		default:
			out = append(out, ok(name, "(%s) has its capture triggers", t.Entity))
		}
	}
	return out
}

// tableProblems lists what the table lacks; nil when it does not exist.
func (db *DB) tableProblems(ctx context.Context, t config.Table, replica bool) ([]string, error) {
	var oid *uint32
	if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1)::oid", t.Name).Scan(&oid); err != nil {
		return nil, err
	}
	if oid == nil {
		return nil, nil
	}
	args, err := triggerArgs(ctx, db.Pool, t, *oid)
	if err != nil {
		return nil, err
	}
	rows, err := db.Pool.Query(ctx, `SELECT r.oid, format('%I.%I', n.nspname, r.relname), g.name,
			t.tgname IS NOT NULL, coalesce(t.tgenabled::text, ''),
			coalesce(t.tgfoid = to_regprocedure('shopstream.capture()')::oid, false),
			coalesce(t.tgnargs >= 1 AND substring(t.tgargs FROM 1 FOR octet_length(convert_to($2, 'UTF8')) + 1) = convert_to($2, 'UTF8') || '\x00'::bytea, false),
			coalesce(t.tgargs = $4, false)
		FROM (SELECT $1::oid AS relid UNION ALL
		      SELECT relid::oid FROM pg_partition_tree($1::oid::regclass) WHERE relid::oid <> $1::oid) p
		JOIN pg_class r ON r.oid = p.relid JOIN pg_namespace n ON n.oid = r.relnamespace
		CROSS JOIN unnest($3::text[]) g(name)
		LEFT JOIN pg_trigger t ON t.tgrelid = r.oid AND t.tgname = g.name
		ORDER BY r.oid <> $1::oid, r.relname, g.name`, *oid, t.Entity, captureTriggers(), tgargs(args))
	if err != nil {
		return nil, err
	}
	want := "O"
	if replica {
		want = "A"
	}
	problems := []string{}
	for rows.Next() {
		var relid uint32
		var rel, trigger, enabled string
		var exists, calls, entity, secrets bool
		if err := rows.Scan(&relid, &rel, &trigger, &exists, &enabled, &calls, &entity, &secrets); err != nil {
			rows.Close()
			return nil, err
		}
		where := ""
		if relid != *oid {
			where = " on partition " + rel
		}
		switch {
		case !exists:
			problems = append(problems, "lacks "+trigger+where)
		case !calls || !entity:
			problems = append(problems, trigger+where+" does not call shopstream.capture('"+t.Entity+"')")
		case !secrets:
			problems = append(problems, trigger+where+" leaves out other secret columns than SECRET_COLUMNS names")
		case enabled == "D":
			problems = append(problems, trigger+where+" is disabled")
		case enabled != want && replica:
			problems = append(problems, trigger+where+" does not fire for replicated writes (CAPTURE_REPLICA_WRITES=true)")
		case enabled != want:
			problems = append(problems, trigger+where+" is not in PostgreSQL's default state (CAPTURE_REPLICA_WRITES=false)")
		}
	}
	return problems, rows.Err()
}

// checkStrayTriggers finds capture() triggers on tables that are not
// configured (nor partitions of one): the sequencer refuses their rows.
func (db *DB) checkStrayTriggers(ctx context.Context, tables []config.Table) Check {
	const name = "other tables"
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Name
	}
	rows, err := db.Pool.Query(ctx, `SELECT format('%I ON %I.%I', t.tgname, n.nspname, c.relname)
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE t.tgfoid = to_regprocedure('shopstream.capture()')::oid
		  AND coalesce(pg_partition_root(c.oid)::oid, c.oid) NOT IN (SELECT to_regclass(x)::oid FROM unnest($1::text[]) x WHERE to_regclass(x) IS NOT NULL)
		ORDER BY n.nspname, c.relname, t.tgname`, names)
	if err != nil {
		return fail(name, "cannot list capture triggers: %v", err)
	}
	stray, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail(name, "cannot list capture triggers: %v", err)
	}
	if len(stray) > 0 {
		return fail(name, "capture triggers on tables not in TABLES (their changes are refused, and they slow those writers): %s: DROP TRIGGER each, or add the table to TABLES",
			strings.Join(stray, ", "))
	}
	return ok(name, "no table outside TABLES carries a capture trigger")
}

// serveTablePrivileges is what the role of DATABASE_URL needs on every table
// of schema shopstream but the migrations' own (docs/operations.md, Privileges).
var serveTablePrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE"}

// checkPrivileges checks the serving role's rights on schema shopstream and
// the capture path's least privilege.
func (db *DB) checkPrivileges(ctx context.Context) []Check {
	return []Check{db.checkServeRole(ctx), db.checkRotation(ctx), db.checkCaptureRoles(ctx), db.checkPublic(ctx)}
}

func (db *DB) checkServeRole(ctx context.Context) Check {
	const name = "privileges"
	rows, err := db.Pool.Query(ctx, `SELECT p.priv || ' on shopstream.' || c.relname
		FROM pg_class c CROSS JOIN unnest($1::text[]) WITH ORDINALITY p(priv, i)
		WHERE c.relnamespace = 'shopstream'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_version'
		  AND NOT has_table_privilege(c.oid, p.priv)
		ORDER BY c.relname, p.i`, serveTablePrivileges)
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	var role string
	var usage bool
	if err := db.Pool.QueryRow(ctx, "SELECT quote_ident(current_user), has_schema_privilege('shopstream', 'USAGE')").Scan(&role, &usage); err != nil {
		return fail(name, "cannot check: %v", err)
	}
	if !usage {
		missing = append([]string{"USAGE on schema shopstream"}, missing...)
	}
	if len(missing) > 0 {
		return fail(name, "%s lacks %s: GRANT USAGE ON SCHEMA shopstream TO %s; GRANT %s ON ALL TABLES IN SCHEMA shopstream TO %s (or serve as the role that ran migrate)",
			role, strings.Join(missing, ", "), role, strings.Join(serveTablePrivileges, ", "), role)
	}
	return ok(name, "%s may read and write every table of schema shopstream", role)
}

// checkRotation: retention truncates the capture tables, which needs
// TRUNCATE on them (the owner has it).
func (db *DB) checkRotation(ctx context.Context) Check {
	const name = "rotation"
	var may bool
	var owner string
	err := db.Pool.QueryRow(ctx, `SELECT bool_and(has_table_privilege(t, 'TRUNCATE')),
			(SELECT relowner::regrole::text FROM pg_class WHERE oid = 'shopstream.changes_0'::regclass)
		FROM unnest(ARRAY['shopstream.changes_0', 'shopstream.changes_1', 'shopstream.changes_2']) t`).Scan(&may, &owner)
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	if !may {
		return warn(name, "this role may not TRUNCATE shopstream.changes_0, _1 and _2: retention cannot empty them (GRANT TRUNCATE ON shopstream.changes_0, shopstream.changes_1, shopstream.changes_2 TO the serving role, or serve as %s)", owner)
	}
	return ok(name, "this role may TRUNCATE the capture tables, as retention does")
}

// checkCaptureRoles: capture() and row_json() belong to roles that may do
// next to nothing, and nobody else may run them.
func (db *DB) checkCaptureRoles(ctx context.Context) Check {
	const name = "capture roles"
	var problems []string
	rows, err := db.Pool.Query(ctx, `SELECT f.sig, coalesce(p.proowner::regrole::text, ''), f.owner,
			coalesce(has_function_privilege('public', p.oid, 'EXECUTE'), false)
		FROM (VALUES ('shopstream.capture()', 'shopstream_capture'), ('shopstream.row_json(anyelement)', 'shopstream_nobody')) f(sig, owner)
		LEFT JOIN pg_proc p ON p.oid = to_regprocedure(f.sig)`)
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	for rows.Next() {
		var sig, owner, want string
		var public bool
		if err := rows.Scan(&sig, &owner, &want, &public); err != nil {
			rows.Close()
			return fail(name, "cannot check: %v", err)
		}
		switch {
		case owner == "":
			problems = append(problems, sig+" is missing")
		case owner != want:
			problems = append(problems, fmt.Sprintf("%s is owned by %s, not %s", sig, owner, want))
		}
		if public {
			problems = append(problems, "PUBLIC may execute "+sig)
		}
	}
	if err := rows.Err(); err != nil {
		return fail(name, "cannot check: %v", err)
	}
	extra, err := db.captureRoleExtras(ctx)
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	problems = append(problems, extra...)
	if len(problems) > 0 {
		return fail(name, "%s: run shopstream migrate, and revoke what the capture roles were granted since", strings.Join(problems, "; "))
	}
	return ok(name, "capture() runs as shopstream_capture (INSERT into the capture tables, SELECT of the rotation only), row_json() as shopstream_nobody (nothing)")
}

// captureRoleExtras lists what the capture roles may do beyond appending to
// the capture tables and reading the rotation (shopstream_capture) or nothing
// at all (shopstream_nobody).
func (db *DB) captureRoleExtras(ctx context.Context) ([]string, error) {
	rows, err := db.Pool.Query(ctx, `SELECT r.rolname || ' may ' || p.priv || ' on shopstream.' || c.relname
		FROM unnest(ARRAY['shopstream_capture', 'shopstream_nobody']) r(rolname)
		JOIN pg_roles ro ON ro.rolname = r.rolname
		CROSS JOIN pg_class c
		CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p(priv)
		WHERE c.relnamespace = 'shopstream'::regnamespace AND c.relkind IN ('r', 'p')
		  AND has_table_privilege(ro.oid, c.oid, p.priv)
		  AND NOT (r.rolname = 'shopstream_capture' AND c.relname IN ('changes_0', 'changes_1', 'changes_2') AND p.priv = 'INSERT')
		  AND NOT (r.rolname = 'shopstream_capture' AND c.relname = 'rotation' AND p.priv = 'SELECT')
		  AND NOT has_table_privilege('public', c.oid, p.priv) -- reported by the public access check
		ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	extra, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var capture bool
	if err := db.Pool.QueryRow(ctx, `SELECT coalesce((SELECT bool_and(has_table_privilege(r.oid, t, 'INSERT') AND has_table_privilege(r.oid, 'shopstream.rotation', 'SELECT'))
			FROM pg_roles r, unnest(ARRAY['shopstream.changes_0', 'shopstream.changes_1', 'shopstream.changes_2']) t WHERE r.rolname = 'shopstream_capture'), false)`).Scan(&capture); err != nil {
		return nil, err
	}
	if !capture {
		extra = append(extra, "shopstream_capture may not INSERT into the capture tables or read shopstream.rotation (every writer's change would fail)")
	}
	return extra, nil
}

// checkPublic: the capture tables hold whole rows, and the other
// tables sessions and users: PUBLIC may read none of them.
func (db *DB) checkPublic(ctx context.Context) Check {
	const name = "public access"
	rows, err := db.Pool.Query(ctx, `SELECT p.priv || ' on shopstream.' || c.relname FROM pg_class c
		CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p(priv)
		WHERE c.relnamespace = 'shopstream'::regnamespace AND c.relkind IN ('r', 'p')
		  AND has_table_privilege('public', c.oid, p.priv)
		ORDER BY 1`)
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	granted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	if len(granted) > 0 {
		return fail(name, "PUBLIC (every role) has %s (the capture tables hold whole rows): REVOKE ALL ON ALL TABLES IN SCHEMA shopstream FROM PUBLIC", strings.Join(granted, ", "))
	}
	return ok(name, "PUBLIC has no privilege on the tables of schema shopstream")
}

func (db *DB) checkNotifyQueue(ctx context.Context) Check {
	const name = "notify queue"
	var usage float64
	if err := db.Pool.QueryRow(ctx, "SELECT pg_notification_queue_usage()").Scan(&usage); err != nil {
		return fail(name, "cannot read pg_notification_queue_usage(): %v", err)
	}
	hint := "a session that LISTENs stopped consuming (one idle in a transaction?): find it in pg_stat_activity and end it"
	switch {
	case usage >= 0.5:
		return fail(name, "%.1f%% of PostgreSQL's NOTIFY queue in use; when it is full, every transaction that NOTIFYs fails at commit: %s", usage*100, hint)
	case usage >= 0.1:
		return warn(name, "%.1f%% of PostgreSQL's NOTIFY queue in use: %s", usage*100, hint)
	}
	return ok(name, "%.1f%% of PostgreSQL's NOTIFY queue in use", usage*100)
}

// checkTwoPhase: where transactions can be prepared, no writer rings the
// sequencer's doorbell (docs/operations.md, Two-phase commit), and a
// forgotten prepared transaction holds back every vacuum.
func (db *DB) checkTwoPhase(ctx context.Context, idlePoll time.Duration) Check {
	const name = "two-phase commit"
	var maxPrepared, old int
	err := db.Pool.QueryRow(ctx, `SELECT current_setting('max_prepared_transactions')::int,
		(SELECT count(*) FROM pg_prepared_xacts WHERE prepared < now() - interval '5 minutes')`).Scan(&maxPrepared, &old)
	if err != nil {
		return fail(name, "cannot check: %v", err)
	}
	if old > 0 {
		return fail(name, "%d prepared transactions older than 5 minutes (pg_prepared_xacts): they hold their locks and keep vacuum from reclaiming rows; COMMIT PREPARED or ROLLBACK PREPARED them", old)
	}
	if maxPrepared > 0 {
		return warn(name, "max_prepared_transactions = %d: writers do not ring the doorbell (a NOTIFY would make PREPARE TRANSACTION fail), so the first change after 10 s without one waits up to IDLE_POLL (%s) for the sequencer's poll; lower IDLE_POLL, or ALTER ROLE <writer> SET shopstream.doorbell = on for writers that never prepare", maxPrepared, short(idlePoll))
	}
	return ok(name, "max_prepared_transactions = 0: writers ring the sequencer's doorbell")
}

// checkSequencer reports whether some instance holds the sequencer's lock.
func (db *DB) checkSequencer(ctx context.Context) (bool, Check) {
	const name = "sequencer"
	var leader *string
	err := db.Pool.QueryRow(ctx, `SELECT (SELECT coalesce(nullif(a.application_name, ''), 'pid ' || a.pid) || coalesce(' from ' || host(a.client_addr), '')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1 LIMIT 1)`,
		uint32(uint64(sequencerLockKey)>>32), uint32(sequencerLockKey&0xffffffff)).Scan(&leader)
	if err != nil {
		return false, fail(name, "cannot read pg_locks: %v", err)
	}
	if leader == nil {
		return false, warn(name, "no instance orders the event log now (none is running?): changes wait for their positions until one starts")
	}
	return true, ok(name, "an instance orders the event log (%s)", *leader)
}

func (db *DB) checkBacklog(ctx context.Context, leader bool) Check {
	const name = "backlog"
	n, oldest, err := db.InboxBacklog(ctx)
	if err != nil {
		return fail(name, "cannot read the capture tables: %v", err)
	}
	oldest = oldest.Round(time.Second)
	switch {
	case n == 0:
		return ok(name, "none: every committed change has its position")
	case oldest < backlogAlarm:
		return ok(name, "%d changes waiting, the oldest %s old", n, short(oldest))
	case leader:
		return fail(name, "%d changes waiting, the oldest %s old, although an instance orders the log: look for sequencer errors in the log", n, short(oldest))
	}
	return warn(name, "%d changes waiting, the oldest %s old: they go out, in order, when an instance starts", n, short(oldest))
}

// checkEventLog compares the oldest change kept with EVENT_RETENTION: the
// instance that orders the log rotates the capture tables every
// EVENT_PRUNE_INTERVAL, and a change is kept up to about twice the retention.
func (db *DB) checkEventLog(ctx context.Context, o DoctorOptions, leader bool) Check {
	const name = "event log"
	var n int64
	var age float64
	var size string
	err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM shopstream.changes),
			coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM (
				(SELECT created_at FROM shopstream.changes_0 ORDER BY id LIMIT 1) UNION ALL
				(SELECT created_at FROM shopstream.changes_1 ORDER BY id LIMIT 1) UNION ALL
				(SELECT created_at FROM shopstream.changes_2 ORDER BY id LIMIT 1)) f)), 0),
			pg_size_pretty(pg_total_relation_size('shopstream.changes_0') + pg_total_relation_size('shopstream.changes_1')
				+ pg_total_relation_size('shopstream.changes_2') + pg_total_relation_size('shopstream.ticks'))`).Scan(&n, &age, &size)
	if err != nil {
		return fail(name, "cannot read the capture tables: %v", err)
	}
	oldest := time.Duration(age * float64(time.Second)).Round(time.Second)
	if n == 0 {
		return ok(name, "empty (EVENT_RETENTION %s)", short(o.Retention))
	}
	overdue := oldest > 2*o.Retention+2*o.PruneEvery+time.Minute
	detail := fmt.Sprintf("%d changes, %s, the oldest %s old (EVENT_RETENTION %s)", n, size, short(oldest), short(o.Retention))
	switch {
	case !overdue:
		return ok(name, "%s", detail)
	case leader:
		return fail(name, "%s: the rotation is not keeping up; look for \"rotating the capture tables failed\" in the log", detail)
	}
	return warn(name, "%s: the capture tables are rotated once an instance orders the log", detail)
}

// short prints a duration without its zero minutes and seconds: 24h, 1h5m.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Failed reports whether any check failed.
func Failed(checks []Check) bool {
	return slices.ContainsFunc(checks, func(c Check) bool { return c.Status == StatusFail })
}
