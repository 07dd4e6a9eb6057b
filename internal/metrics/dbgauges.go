package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var updatedDesc = prometheus.NewDesc("shopstream_db_gauges_updated_timestamp_seconds",
	"When the last read of the database-derived gauges (inbox backlog and age, NOTIFY queue usage) began (every METRICS_DB_INTERVAL); a scrape runs no query.", nil, nil)

// dbGauges holds the database-derived gauges, read on a timer: a scrape, or a
// flood of them, costs the database nothing.
type dbGauges struct {
	src     DBStats
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	ok      bool // the last read succeeded
	backlog int64
	age     time.Duration
	notify  float64
	updated time.Time // when the last read that succeeded began
}

// RunDB reads the database gauges every interval until ctx ends.
func (m *Metrics) RunDB(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.db.refresh(ctx)
		}
	}
}

// RefreshDB reads the database gauges once (serve calls it before serving, so
// that the first scrape has them).
func (m *Metrics) RefreshDB(ctx context.Context) { m.db.refresh(ctx) }

func (g *dbGauges) refresh(ctx context.Context) {
	if g.src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	began := time.Now() // the values are as of then, or later
	n, age, u, err := g.src.Gauges(ctx)
	if err != nil && ctx.Err() == nil {
		g.log.Warn("metrics: reading the database gauges", "err", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ok = err == nil; g.ok {
		g.backlog, g.age, g.notify = n, age, u
		g.updated = began
	}
}

func (g *dbGauges) collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ok {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(g.backlog))
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, g.age.Seconds())
		ch <- prometheus.MustNewConstMetric(notifyDesc, prometheus.GaugeValue, g.notify)
	}
	if !g.updated.IsZero() {
		ch <- prometheus.MustNewConstMetric(updatedDesc, prometheus.GaugeValue, float64(g.updated.UnixNano())/1e9)
	}
}
