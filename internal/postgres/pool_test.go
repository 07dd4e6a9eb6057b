package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The pool pings a connection only when it sat idle longer than every
// periodic query's period: an idle service runs no pings (the gauges' read
// every 10 s and the 30 s checks each paid one with pgxpool's 1 s default).
func TestPoolPingsOnlyLongIdleConnections(t *testing.T) {
	db, err := Open(context.Background(), "postgres://nobody@127.0.0.1:1/none", "postgres://nobody@127.0.0.1:1/none", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Pool.Close()
	ping := db.Pool.Config().ShouldPing
	if ping == nil {
		t.Fatal("the pool has pgxpool's default ping rule (every connection idle over 1 s)")
	}
	for _, c := range []struct {
		idle time.Duration
		want bool
	}{{2 * time.Second, false}, {10 * time.Second, false}, {30 * time.Second, false}, {pingAfterIdle + time.Second, true}, {10 * time.Minute, true}} {
		if got := ping(context.Background(), pgxpool.ShouldPingParams{IdleDuration: c.idle}); got != c.want {
			t.Errorf("idle %s: ping %v, want %v", c.idle, got, c.want)
		}
	}
}
