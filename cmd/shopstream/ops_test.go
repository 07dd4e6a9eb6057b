package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/pgcluster"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// scrape reads /metrics into name{labels} → value.
func scrape(t *testing.T, s *testServer) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsAfterKnownWorkload(t *testing.T) {
	t.Parallel()
	// A cluster of its own: pg_notification_queue_usage() is the whole
	// cluster's, and another test's stopped listener holds the shared queue.
	_, url := ownCluster(waitfor.Context(t), t, pgcluster.Options{FastUnsafe: true})
	// The database gauges are read on a timer: a short one, so that the
	// values after the workload can be awaited and asserted exactly.
	s, c, ws := setupOn(t, url, map[string]string{"METRICS_DB_INTERVAL": "200ms"})
	resp := postJSON(t, http.DefaultClient, s.URL+"/api/auth/login", map[string]string{"email": "admin@example.com", "password": "not it at all"})
	resp.Body.Close()
	before := scrape(t, s)
	ws.subscribe("order_changes")
	id := counterRow(t, s.DBURL)
	increments(t, s.DBURL, id, 5)
	ws.read()
	ws.readVersions(id, 1, 5)
	workloadDone := float64(time.Now().UnixNano()) / 1e9
	waitfor.Until(t, "the database gauges to be read after the workload", func() bool {
		return scrape(t, s)["shopstream_db_gauges_updated_timestamp_seconds"] > workloadDone
	})
	after := scrape(t, s)
	exact := map[string]float64{
		`shopstream_events_read_total`:                          6,
		`shopstream_delivery_latency_seconds_count`:             6,
		`shopstream_logins_total{outcome="success"}`:            1,
		`shopstream_logins_total{outcome="invalid"}`:            1,
		`shopstream_logins_total{outcome="throttled"}`:          0,
		`shopstream_sockets_open`:                               1,
		`shopstream_subscriptions{channel="order_changes"}`:     1,
		`shopstream_sequencer_leader`:                           1,
		`shopstream_notify_queue_usage`:                         0,
		`shopstream_sockets_closed_total{reason="slow"}`:        0,
		`shopstream_listener_reconnects_total`:                  0,
		`shopstream_delivery_latency_seconds_bucket{le="+Inf"}`: 6,
		`shopstream_inbox_backlog`:                              0,
		`shopstream_sockets_closed_total{reason="auth"}`:        0,
		`shopstream_sockets_closed_total{reason="shutdown"}`:    0,
		`shopstream_sockets_closed_total{reason="rate"}`:        0,
		`shopstream_sockets_closed_total{reason="client"}`:      0,
		`shopstream_sockets_closed_total{reason="error"}`:       0,
		`shopstream_sockets_closed_total{reason="limit"}`:       0,
		`shopstream_delivery_latency_seconds_bucket{le="10"}`:   6,
		`shopstream_inbox_oldest_age_seconds`:                   0,
	}
	for k, want := range exact {
		if got, ok := after[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	// connected + subscribed + 6 events, one frame each (no batching).
	if d := after["shopstream_frames_sent_total"] - before["shopstream_frames_sent_total"]; d != 7 {
		t.Errorf("frames sent moved by %v, want 7 (subscribed + 6 events)", d)
	}
	if after["go_goroutines"] == 0 || after["process_resident_memory_bytes"] == 0 {
		t.Error("runtime and process metrics missing")
	}

	// Stats, in the documented shape.
	resp, err := c.Get(s.URL + "/api/v1/ws/stats")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st struct {
		Success bool                       `json:"success"`
		Data    map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &st); err != nil || !st.Success {
		t.Fatalf("stats: %s", body)
	}
	for _, k := range []string{"connectedClients", "activeChannels", "subscriptions", "eventsPublished", "eventsDelivered",
		"lastEventId", "lastEventAt", "lastEventAgeSeconds", "sequencerLeader", "listenerConnected"} {
		if _, ok := st.Data[k]; !ok {
			t.Errorf("stats lack %s: %s", k, body)
		}
	}
	if string(st.Data["connectedClients"]) != "1" || string(st.Data["activeChannels"]) != `["order_changes"]` ||
		string(st.Data["eventsPublished"]) != "6" || string(st.Data["sequencerLeader"]) != "true" {
		t.Errorf("stats values: %s", body)
	}
	// Stats need a session.
	if resp := get(t, http.DefaultClient, s.URL+"/api/v1/ws/stats"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("stats without a session: %d", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp := get(t, http.DefaultClient, s.URL+p); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}
