package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingDB answers the gauge queries and counts them.
type countingDB struct{ queries atomic.Int64 }

func (d *countingDB) Gauges(context.Context) (int64, time.Duration, float64, error) {
	d.queries.Add(1)
	return 7, 3 * time.Second, 0.25, nil
}

// TestScrapesRunNoQueries: the database gauges are read once at start and then
// on the timer; a hundred scrapes add no query and all show the values read.
func TestScrapesRunNoQueries(t *testing.T) {
	db := &countingDB{}
	m := New(Sources{
		Sockets: func() float64 { return 0 }, Subscriptions: func() map[string]int { return nil },
		EventsRead: func() float64 { return 0 }, Reconnects: func() float64 { return 0 },
		Leader: func() bool { return false }, ListenerUp: func() bool { return true }, Unattached: func() float64 { return 0 },
		DB: db, DBQueryTimeout: time.Second,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.RefreshDB(t.Context())
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for i := range 100 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"shopstream_inbox_backlog 7\n", "shopstream_inbox_oldest_age_seconds 3\n",
			"shopstream_notify_queue_usage 0.25\n", "shopstream_db_gauges_updated_timestamp_seconds "} {
			if !strings.Contains(string(b), want) {
				t.Fatalf("scrape %d lacks %q:\n%s", i, want, b)
			}
		}
	}
	if n := db.queries.Load(); n != 1 {
		t.Errorf("100 scrapes after one refresh ran %d gauge queries, want 1", n)
	}
}
