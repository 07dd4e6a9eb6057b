package main

import (
	"net/http"
	"testing"

	"github.com/shopstream/shopstream/internal/pgtest"
)

// TestMetricsOnSeparateAddress: with METRICS_ADDR, /metrics is served there and
// not on LISTEN_ADDR; the database gauges come from the timer's last read, so
// a run of scrapes shows one update time (and, in
// internal/metrics.TestScrapesRunNoQueries, runs no query).
func TestMetricsOnSeparateAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), map[string]string{"METRICS_ADDR": "127.0.0.1:0", "METRICS_DB_INTERVAL": "1h"})
	if s.MetricsURL == "" {
		t.Fatal("no metrics address printed")
	}
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on LISTEN_ADDR: %d, want 404", resp.StatusCode)
	}
	pub := &testServer{URL: s.MetricsURL}
	first := scrape(t, pub)
	const updated = "shopstream_db_gauges_updated_timestamp_seconds"
	if first[updated] == 0 {
		t.Fatalf("no %s in the first scrape", updated)
	}
	for _, name := range []string{"shopstream_inbox_backlog", "shopstream_notify_queue_usage", "shopstream_sockets_open"} {
		if _, ok := first[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	for i := range 50 {
		if got := scrape(t, pub)[updated]; got != first[updated] {
			t.Fatalf("scrape %d: the database gauges were read again (%v, then %v)", i, first[updated], got)
		}
	}
}
