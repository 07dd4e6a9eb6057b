package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/postgres"
)

// tableWatch checks, every interval, that every configured table exists and
// carries the capture triggers: a table swapped in by rename while serving
// has none, and its changes would go unseen. What it finds is in /readyz
// (warnings), in the shopstream_tables_unattached metric and in the log (once
// per change of what it finds).
type tableWatch struct {
	db       *postgres.DB
	tables   []config.Table
	interval time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	problems []string
}

func (w *tableWatch) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *tableWatch) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	found, err := w.db.Unattached(cctx, w.tables)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("checking the capture triggers failed", "err", err)
		}
		return
	}
	w.mu.Lock()
	changed := !slices.Equal(found, w.problems)
	w.problems = found
	w.mu.Unlock()
	if !changed {
		return
	}
	for _, p := range found {
		w.log.Error("a configured table emits no events", "problem", p)
	}
	if len(found) == 0 {
		w.log.Info("every configured table has its capture triggers")
	}
}

// Problems returns what the last check found.
func (w *tableWatch) Problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.problems)
}
