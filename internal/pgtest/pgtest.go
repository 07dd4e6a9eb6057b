// Package pgtest gives each test its own PostgreSQL database, cloned from a
// template that has shopstream's migrations and the demo schema applied. The
// server comes from DATABASE_URL (make test starts one); without it tests fail
// with a message that says how to run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/postgres"
)

// Missing is the message for a missing DATABASE_URL.
const Missing = "DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL, " +
	"or point DATABASE_URL at a server where this user may CREATE DATABASE"

var (
	mu       sync.Mutex
	template string
)

// Main runs the package's tests and drops the template afterwards. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if template != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", template)); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: dropping template:", err)
		}
	}
	return code
}

// BaseURL returns DATABASE_URL or fails the test.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		t.Fatal(Missing)
	}
	return u
}

// URLFor returns base with its database replaced by name.
func URLFor(base, name string) (string, error) {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " dbname=" + name, nil // keyword/value form: the last dbname wins
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parsing DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("connecting to DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ensureTemplate creates the template database once per test binary.
func ensureTemplate(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if template != "" {
		return template
	}
	base := BaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := randomName("shopstream_tmpl_")
	if err := adminExec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating template database: %v", err)
	}
	u, err := URLFor(base, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, u, true); err != nil {
		t.Fatalf("migrating template: %v", err)
	}
	template = name
	return name
}

// Migrate applies shopstream's migrations (and the demo schema) to url with the
// default configuration.
func Migrate(ctx context.Context, url string, demo bool) error {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		return err
	}
	db, err := postgres.Open(ctx, url, url, "pgtest")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Migrate(ctx, cfg.Tables, demo, false)
	return err
}

// NewDB creates a fresh database for the test from the template and returns its
// URL; it is dropped when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	return newDB(t, "TEMPLATE "+ensureTemplate(t))
}

// NewEmptyDB creates an empty database for the test (nothing of shopstream's
// in it: a shop's database before the first migrate) and returns its URL; it
// is dropped when the test ends.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	return newDB(t, "")
}

func newDB(t testing.TB, template string) string {
	t.Helper()
	BaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := randomName("shopstream_test_")
	if err := adminExec(ctx, fmt.Sprintf("CREATE DATABASE %s %s", name, template)); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("dropping test database: %v", err)
		}
	})
	u, err := URLFor(BaseURL(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
