package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// What the external tests read of the package's statements and connections.
var (
	TickSQL    = tickSQL
	PendingSQL = pendingSQL
	// RotationCheckSQL is truncate's check that no change of a table waits for a tick.
	RotationCheckSQL = rotationCheckSQL
)

// ConnectDedicated opens a connection configured as the sequencer's.
func (db *DB) ConnectDedicated(ctx context.Context) (*pgx.Conn, error) {
	return db.connectDedicated(ctx)
}
