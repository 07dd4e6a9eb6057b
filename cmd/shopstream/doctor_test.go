package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// runDoctor runs `shopstream doctor` against dbURL and returns what it
// printed and its exit code.
func runDoctor(t *testing.T, dbURL string) (string, int) {
	t.Helper()
	return runWithEnv(t, map[string]string{"DATABASE_URL": dbURL}, "doctor")
}

// runWithEnv runs one shopstream command with exactly the environment env
// and returns what it printed on stdout and its exit code (1 when doctor
// reported a failed check; any other error fails the test).
func runWithEnv(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(context.Background(), args, getenv, strings.NewReader(""), &out, &errOut)
	if err != nil && !errors.Is(err, errDoctorFailed) {
		t.Fatalf("shopstream %v: %v\n%s%s", args, err, out.String(), errOut.String())
	}
	code := 0
	if err != nil {
		code = exitCode(err)
	}
	return out.String(), code
}

// doctorLine finds the line of the check name and returns its status.
func doctorLine(t *testing.T, out, name string) (status, line string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(l, f[0])), name+"  ") {
			return f[0], l
		}
	}
	t.Fatalf("doctor printed no line for %q:\n%s", name, out)
	return "", ""
}

// A migrated database with an instance serving it passes every check.
func TestDoctorHealthyDatabase(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	out, code := runDoctor(t, s.DBURL)
	if code != 0 {
		t.Errorf("doctor exited %d on a healthy database:\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "OK ") {
			t.Errorf("not OK on a healthy database: %s", l)
		}
	}
	for _, name := range []string{"server", "migrations", "table public.orders", "table public.transactions", "other tables",
		"privileges", "rotation", "capture roles", "public access", "notify queue", "two-phase commit", "sequencer", "backlog", "event log"} {
		doctorLine(t, out, name)
	}
	if len(lines) != 17 {
		t.Errorf("want 17 checks, got %d:\n%s", len(lines), out)
	}
}

// Each problem an operator can make before going live fails its own line,
// and doctor exits 1; the other checks still pass.
func TestDoctorFindsProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		sql   []string
		check string
		want  string // the line's detail, a regular expression
	}{
		{"a table without one of its triggers", []string{`DROP TRIGGER shopstream_capture_upd ON public.orders`},
			"table public.orders", `\(order\) lacks shopstream_capture_upd: run shopstream migrate$`},
		{"a disabled trigger", []string{`ALTER TABLE public.products DISABLE TRIGGER shopstream_capture_iud`},
			"table public.products", `\(product\) shopstream_capture_iud is disabled: run shopstream migrate$`},
		{"a table outside TABLES with a capture trigger", []string{
			`CREATE TABLE public.coupons (id int PRIMARY KEY, code text)`,
			`CREATE TRIGGER shopstream_capture_iud AFTER INSERT OR DELETE ON public.coupons FOR EACH ROW EXECUTE FUNCTION shopstream.capture('order')`},
			"other tables", `capture triggers on tables not in TABLES .*: shopstream_capture_iud ON public.coupons: DROP TRIGGER each, or add the table to TABLES$`},
		{"a schema behind the binary", []string{`UPDATE shopstream.schema_version SET version = 5`},
			"migrations", `schema at version 5, this binary's is 9: run shopstream migrate$`},
		{"a capture table readable by everyone", []string{`GRANT SELECT ON shopstream.changes_0 TO PUBLIC`},
			"public access", `PUBLIC \(every role\) has SELECT on shopstream.changes_0 .*REVOKE ALL ON ALL TABLES IN SCHEMA shopstream FROM PUBLIC$`},
		{"a capture role with more than it needs", []string{`GRANT SELECT ON shopstream.sessions TO shopstream_capture`},
			"capture roles", `shopstream_capture may SELECT on shopstream.sessions: run shopstream migrate`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDB(t)
			conn := appConn(t, db, "operator")
			for _, sql := range c.sql {
				exec(t, conn, sql)
			}
			out, code := runDoctor(t, db)
			if code != 1 {
				t.Errorf("doctor exited %d, want 1:\n%s", code, out)
			}
			status, line := doctorLine(t, out, c.check)
			if status != "FAIL" || !regexp.MustCompile(c.want).MatchString(line) {
				t.Errorf("want FAIL %s matching %s, got:\n%s\nwhole report:\n%s", c.check, c.want, line, out)
			}
			if n := strings.Count(out, "\nFAIL ") + boolInt(strings.HasPrefix(out, "FAIL ")); n != 1 {
				t.Errorf("want one failed check, got %d:\n%s", n, out)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A serving role without a privilege the guide asks for fails the privileges
// line, which names what is missing and the GRANT that fixes it.
func TestDoctorMissingPrivilege(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	role := "doctor_" + randomHex(t)
	admin := appConn(t, db, "operator")
	exec(t, admin, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() {
		ctx := waitfor.Context(t)
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Errorf("dropping role: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP OWNED BY `+role+`; DROP ROLE `+role); err != nil {
			t.Errorf("dropping role: %v", err)
		}
	})
	exec(t, admin, `GRANT USAGE ON SCHEMA shopstream TO `+role)
	exec(t, admin, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shopstream TO `+role)
	exec(t, admin, `REVOKE DELETE ON shopstream.ticks FROM `+role)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	out, code := runDoctor(t, u.String())
	if code != 1 {
		t.Errorf("doctor exited %d, want 1:\n%s", code, out)
	}
	status, line := doctorLine(t, out, "privileges")
	want := role + ` lacks DELETE on shopstream.ticks: GRANT USAGE ON SCHEMA shopstream TO ` + role +
		`; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shopstream TO ` + role
	if status != "FAIL" || !strings.Contains(line, want) {
		t.Errorf("want FAIL privileges with %q, got:\n%s\nwhole report:\n%s", want, line, out)
	}
	// No TRUNCATE on the capture tables: retention could not empty them.
	if status, line := doctorLine(t, out, "rotation"); status != "WARN" {
		t.Errorf("want WARN rotation for a role that may not truncate the capture tables, got %s", line)
	}
}

// Changes waiting for their positions while no instance runs are a warning
// (they go out when one starts), not a failure.
func TestDoctorWarnsOfABacklogWithoutSequencer(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	conn := appConn(t, db, "operator")
	exec(t, conn, `INSERT INTO shopstream.changes_0 (entity, action, new_row, created_at) VALUES ('order', 'created', '{"id":1}', now() - interval '1 hour')`)
	out, code := runDoctor(t, db)
	if code != 0 {
		t.Errorf("doctor exited %d, want 0 (warnings only):\n%s", code, out)
	}
	for check, want := range map[string]string{
		"sequencer": `WARN +sequencer +no instance orders the event log now`,
		"backlog":   `WARN +backlog +1 changes waiting, the oldest 1h0?m?\d*s? old: they go out, in order, when an instance starts$`,
	} {
		if _, line := doctorLine(t, out, check); !regexp.MustCompile(want).MatchString(line) {
			t.Errorf("want %s, got %s", want, line)
		}
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// A database shopstream was never migrated into fails the migrations and
// every configured table, and doctor still reports the server's own checks.
func TestDoctorUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	out, code := runDoctor(t, pgtest.NewEmptyDB(t))
	if code != 1 {
		t.Errorf("doctor exited %d, want 1:\n%s", code, out)
	}
	for check, want := range map[string]string{
		"migrations":          `^FAIL +migrations +schema shopstream is not there: run shopstream migrate$`,
		"table public.orders": `^FAIL +table public.orders +\(order\) does not exist: check the name in TABLES, or create the table and run shopstream migrate$`,
		"notify queue":        `^OK +notify queue `,
		"two-phase commit":    `^OK +two-phase commit `,
	} {
		if _, line := doctorLine(t, out, check); !regexp.MustCompile(want).MatchString(line) {
			t.Errorf("want %s, got %s", want, line)
		}
	}
}

// A partitioned table needs the TRUNCATE trigger on every partition too
// (PostgreSQL does not clone statement triggers): doctor names the partition.
func TestDoctorPartitionWithoutTruncateTrigger(t *testing.T) {
	t.Parallel()
	db := pgtest.NewEmptyDB(t)
	conn := appConn(t, db, "operator")
	exec(t, conn, `CREATE TABLE public.sales (id bigint, region text, total numeric, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`)
	exec(t, conn, `CREATE TABLE public.sales_eu PARTITION OF public.sales FOR VALUES IN ('eu')`)
	exec(t, conn, `CREATE TABLE public.sales_us PARTITION OF public.sales FOR VALUES IN ('us')`)
	env := map[string]string{"DATABASE_URL": db, "TABLES": "order=public.sales"}
	if out, code := runWithEnv(t, env, "migrate"); code != 0 || !strings.Contains(out, "table public.sales (order): attached") {
		t.Fatalf("migrate exited %d:\n%s", code, out)
	}
	if out, code := runWithEnv(t, env, "doctor"); code != 0 {
		t.Fatalf("doctor exited %d on a migrated partitioned table:\n%s", code, out)
	}
	exec(t, conn, `DROP TRIGGER shopstream_capture_trunc ON public.sales_us`)
	out, code := runWithEnv(t, env, "doctor")
	if code != 1 {
		t.Errorf("doctor exited %d, want 1:\n%s", code, out)
	}
	want := `^FAIL +table public.sales +\(order\) lacks shopstream_capture_trunc on partition public.sales_us: run shopstream migrate$`
	if _, line := doctorLine(t, out, "table public.sales"); !regexp.MustCompile(want).MatchString(line) {
		t.Errorf("want %s, got %s", want, line)
	}
}
