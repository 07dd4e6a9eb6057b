package main

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/pgcluster"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// TestPostgresCrashLosesNoEvent crashes PostgreSQL (immediate stop: no
// checkpoint, unflushed WAL gone) right after a socket received the last of a
// run of updates. The sequencer commits asynchronously, so the batches it
// ordered just before may be lost from the log although the socket saw them;
// their changes are in the writers' durable inbox rows. After recovery every
// committed version must reach the socket at least once, ids must keep
// increasing on it, and no id may ever stand for two different changes.
func TestPostgresCrashLosesNoEvent(t *testing.T) {
	t.Parallel()
	ctx := waitfor.Context(t)
	// Durable settings (fsync, synchronous_commit on), as in production; a long
	// wal_writer_delay keeps the sequencer's last asynchronous commit in WAL
	// buffers until the crash, which is the case this test is about.
	cluster, url := ownCluster(ctx, t, pgcluster.Options{ExtraConf: []string{"wal_writer_delay=10s"}})
	s, c, ws := setupOn(t, url, nil)
	ws.subscribe("order_changes")
	app := appConn(t, url, "crash-writer")
	id := newOrder(t, app, ws, "ORD-CRASH")

	seen := &crashStream{row: id, versions: map[int]int64{}, ids: map[int64]int{}}
	const before, after = 20, 10
	for v := 1; v <= before; v++ {
		exec(t, app, `UPDATE orders SET version = $2 WHERE id = $1`, id, v)
		if err := seen.readUntil(ws, v); err != nil {
			t.Fatalf("before the crash: %v", err)
		}
	}
	_ = app.Close(ctx)
	lastSeen := seen.lastID

	if err := cluster.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	pollReadyz(t, s.URL, http.StatusServiceUnavailable)
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pollReadyz(t, s.URL, http.StatusOK)

	check := appConn(t, url, "crash-check")
	defer check.Close(ctx)
	var logged, reserved int64
	if err := check.QueryRow(ctx, `SELECT coalesce(max(least(first_position + count - 1, $1)), 0) FROM shopstream.ticks WHERE first_position <= $1`, lastSeen).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if err := check.QueryRow(ctx, `SELECT reserved_through FROM shopstream.log_state`).Scan(&reserved); err != nil {
		t.Fatal(err)
	}
	// The reservation is what keeps lost ids from being handed out again.
	if reserved < lastSeen {
		t.Fatalf("after recovery the reservation is %d, below id %d that the socket saw", reserved, lastSeen)
	}
	if logged < lastSeen {
		t.Logf("the crash lost the log from id %d to %d (the socket had seen them); their changes come again with new ids", logged+1, lastSeen)
	} else {
		t.Logf("the crash lost no ordered batch (the socket saw up to id %d)", lastSeen)
	}

	app2 := appConn(t, url, "crash-writer")
	defer app2.Close(ctx)
	for v := before + 1; v <= before+after; v++ {
		exec(t, app2, `UPDATE orders SET version = $2 WHERE id = $1`, id, v)
	}
	err := seen.readUntil(ws, before+after)
	if err != nil {
		code := websocket.CloseStatus(err)
		if code != websocket.StatusInternalError && code != websocket.StatusGoingAway {
			t.Fatalf("socket ended without 1011/1001 after id %d: %v\n%s", seen.lastID, err, s.Log.String())
		}
		ws2 := dial(t, s, c)
		subscribeSince(t, ws2, "order_changes", seen.lastID)
		if err := seen.readUntil(ws2, before+after); err != nil {
			t.Fatalf("resumed socket: %v\n%s", err, s.Log.String())
		}
	}
	for v := 1; v <= before+after; v++ {
		if _, ok := seen.versions[v]; !ok {
			t.Fatalf("version %d never arrived", v)
		}
	}
	// A client that saw the lost batch resumes on an instance started after the
	// crash: its since must not be refused as ahead of the log, and the replay
	// brings every version after the crash.
	s2 := startServer(t, url, nil)
	ws3 := dial(t, s2, c)
	subscribeSince(t, ws3, "order_changes", lastSeen)
	resumed := &crashStream{row: id, versions: map[int]int64{}, ids: map[int64]int{}, lastID: lastSeen}
	if err := resumed.readUntil(ws3, before+after); err != nil {
		t.Fatalf("resumed on a new instance after id %d: %v\n%s", lastSeen, err, s2.Log.String())
	}
	for v := before + 1; v <= before+after; v++ {
		if _, ok := resumed.versions[v]; !ok {
			t.Fatalf("resumed on a new instance: version %d never arrived", v)
		}
	}
	t.Logf("%d events for %d versions; ids %d..%d", seen.count, before+after, seen.firstID, seen.lastID)
}

// crashStream is what one row's stream of updates must look like across a
// crash: ids increase, one id is one change, a version may come twice.
type crashStream struct {
	row             int64
	versions        map[int]int64 // version -> first id it came with
	ids             map[int64]int // id -> version
	firstID, lastID int64
	count           int
}

// readUntil reads until version want has arrived, checking every event.
func (c *crashStream) readUntil(w *wsClient, want int) error {
	for {
		if _, ok := c.versions[want]; ok {
			return nil
		}
		m, err := nextMessage(w)
		if err != nil {
			return err
		}
		if m["type"] != "event" || m["event"] != "order:updated" {
			return fmt.Errorf("want an order:updated event, got %v", m)
		}
		data, _ := m["data"].(map[string]any)
		if row, _ := data["id"].(float64); int64(row) != c.row {
			return fmt.Errorf("event for row %v, want %d", data["id"], c.row)
		}
		changed, _ := data["changed_fields"].(map[string]any)
		vf, _ := changed["version"].(float64)
		v := int(vf)
		id, err := strconv.ParseInt(fmt.Sprint(m["id"]), 10, 64)
		if err != nil {
			return fmt.Errorf("bad id in %v", m)
		}
		if id <= c.lastID {
			return fmt.Errorf("version %d came with id %d, not above the previous id %d", v, id, c.lastID)
		}
		if other, ok := c.ids[id]; ok && other != v {
			return fmt.Errorf("id %d stood for version %d and now for version %d", id, other, v)
		}
		if _, ok := c.versions[v]; !ok {
			c.versions[v] = id
		}
		if c.firstID == 0 {
			c.firstID = id
		}
		c.ids[id], c.lastID = v, id
		c.count++
	}
}
