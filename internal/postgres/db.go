// Package postgres is the only package that speaks SQL: the connection pool, the
// migrations runner and trigger attachment, admin users and roles, the sequencer's
// transaction and the listener's dedicated connection.
package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
)

// DB is shopstream's handle on PostgreSQL.
type DB struct {
	Pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig // for dedicated connections (listener, sequencer)

	// What the log's readers check and build changes with (UseLog).
	logMu     sync.Mutex
	logTables []config.Table
	logBuild  func([]events.Change) []events.Record
}

// pingAfterIdle is how long a pool connection may sit idle before it is
// pinged when handed out again: longer than the service's own periodic
// queries (METRICS_DB_INTERVAL, 10 s; the table check and session cleanup,
// 30 s), so that an idle service runs no pings (docs/performance.md, "Quiet
// when idle").
const pingAfterIdle = 45 * time.Second

// Open connects a pool to databaseURL and prepares the settings of dedicated
// connections from listenURL. Pool connections use search_path=shopstream (the
// session store names its table unqualified); every other query is qualified.
func Open(ctx context.Context, databaseURL, listenURL, appName string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "shopstream"
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	// pgxpool pings a connection idle over a second before handing it out:
	// on an idle service that was one statement in every seven (the gauges'
	// read every 10 s, the table check and the session cleanup each paid a
	// ping). A connection idle under pingAfterIdle is handed out as it is; one
	// broken meanwhile fails that one query, and the pool drops it.
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return p.IdleDuration > pingAfterIdle
	}
	lcfg, err := pgx.ParseConfig(listenURL)
	if err != nil {
		return nil, fmt.Errorf("parsing LISTEN_DATABASE_URL: %w", err)
	}
	lcfg.RuntimeParams["application_name"] = appName + "-listener"
	// The sequencer's and listener's queries are small and run thousands of
	// times a second: a JIT compile (tens of ms) triggered by a cost estimate
	// would cost more than any of them.
	lcfg.RuntimeParams["jit"] = "off"
	// Nor is starting parallel workers (a millisecond or more each) worth it
	// for an index lookup a mis-estimate prices as a large scan.
	lcfg.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating pool: %w", err)
	}
	return &DB{Pool: pool, listenCfg: lcfg}, nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return db.Pool.Ping(ctx)
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// connectDedicated opens a connection outside the pool, for LISTEN and session
// advisory locks, which must stay on one backend.
func (db *DB) connectDedicated(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, db.listenCfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting dedicated connection: %w", err)
	}
	return conn, nil
}

// CurrentUser is the role the pool's connections log in as.
func (db *DB) CurrentUser(ctx context.Context) (string, error) {
	var u string
	if err := db.Pool.QueryRow(ctx, "SELECT current_user").Scan(&u); err != nil {
		return "", fmt.Errorf("reading the current role: %w", err)
	}
	return u, nil
}
