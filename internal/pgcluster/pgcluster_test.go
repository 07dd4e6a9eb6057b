package pgcluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/waitfor"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	return waitfor.Context(t)
}

func checkServer(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), waitfor.Deadline)
	if err != nil {
		t.Fatalf("tcp connect: %v", err)
	}
	conn.Close()
	out, err := c.Psql(ctx, "postgres", "select 1")
	if err != nil {
		t.Fatal(err)
	}
	if out != "1" {
		t.Fatalf("psql select 1 printed %q, want 1", out)
	}
}

func TestEphemeralCluster(t *testing.T) {
	ctx := testContext(t)
	c, err := New(ctx, Options{FastUnsafe: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	if !c.Ephemeral || !c.Owned() || !c.Running() {
		t.Fatalf("ephemeral=%v owned=%v running=%v, want all true", c.Ephemeral, c.Owned(), c.Running())
	}
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.Port) + "/db?sslmode=disable"; c.URL("db") != want {
		t.Errorf("URL = %q, want %q", c.URL("db"), want)
	}
	checkServer(t, ctx, c)

	port := c.Port
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port != port {
		t.Fatalf("port after restart = %d, want %d", c.Port, port)
	}
	checkServer(t, ctx, c)

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Running() {
		t.Fatal("Running() after Stop")
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s still exists after Remove (err %v)", c.Dir, err)
	}
}

func TestPersistentCluster(t *testing.T) {
	ctx := testContext(t)
	base, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil { // let the postgres user in when root
		t.Fatal(err)
	}
	dir := filepath.Join(base, "nested", "pg")

	first, err := New(ctx, Options{Dir: dir, FastUnsafe: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop(context.Background()) })
	if _, err := first.Psql(ctx, "postgres", "create table kept (v int); insert into kept values (42)"); err != nil {
		t.Fatal(err)
	}

	// A second Cluster on the same dir reuses the running server.
	reused, err := New(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if reused.Owned() || reused.Port != first.Port {
		t.Fatalf("reused: owned=%v port=%d, want false and %d", reused.Owned(), reused.Port, first.Port)
	}
	if err := reused.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	checkServer(t, ctx, first) // Stop of a reused server is a no-op

	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := New(ctx, Options{Dir: dir, FastUnsafe: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop(context.Background()) })
	if again.Port != first.Port {
		t.Errorf("port after reopen = %d, want saved port %d", again.Port, first.Port)
	}
	if out, err := again.Psql(ctx, "postgres", "select v from kept"); err != nil || out != "42" {
		t.Fatalf("data after reopen: %q, %v; want 42", out, err)
	}
}

func TestUnreachableDirAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the data dir to the postgres user")
	}
	if _, err := FindBinDir(); err != nil {
		t.Fatal(err)
	}
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := New(testContext(t), Options{Dir: filepath.Join(private, "pg")})
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+private) {
		t.Fatalf("New in a private dir: err = %v, want one naming %s", err, private)
	}
}

func TestFindBinDirFromEnv(t *testing.T) {
	t.Setenv("PG_BINDIR", t.TempDir())
	if _, err := FindBinDir(); err == nil || !strings.Contains(err.Error(), "no initdb") {
		t.Fatalf("FindBinDir with empty PG_BINDIR: err = %v, want a no-initdb error", err)
	}
}
