package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// counterRow makes an order whose version the tests increment.
func counterRow(t *testing.T, dbURL string) int64 {
	t.Helper()
	var id int64
	withAppConn(t, dbURL, "setup", func(conn *pgx.Conn) {
		if err := conn.QueryRow(context.Background(), `INSERT INTO orders (order_number) VALUES ('ORD-COUNTER') RETURNING id`).Scan(&id); err != nil {
			t.Fatal(err)
		}
	})
	return id
}

// increments commits n version increments of order id from one connection.
func increments(t *testing.T, dbURL string, id int64, n int) {
	t.Helper()
	withAppConn(t, dbURL, "counter", func(conn *pgx.Conn) {
		for i := 0; i < n; i++ {
			exec(t, conn, `UPDATE orders SET version = version + 1 WHERE id = $1`, id)
		}
	})
}

// readVersions reads order updates of row id until it has seen version upto,
// checking that versions arrive as from, from+1, ... exactly once. Other
// messages (created events of the row) are skipped. It returns the last event id.
func (w *wsClient) readVersions(id int64, from, upto int) string {
	w.t.Helper()
	var lastID string
	for want := from; want <= upto; {
		m := w.read()
		if m["type"] != "event" {
			w.t.Fatalf("waiting for version %d: got %v", want, m)
		}
		data := m["data"].(map[string]any)
		if data["id"] != float64(id) || m["event"] != "order:updated" {
			continue
		}
		got := data["changed_fields"].(map[string]any)["version"]
		if got != float64(want) {
			w.t.Fatalf("want version %d, got %v", want, got)
		}
		lastID = m["id"].(string)
		want++
	}
	return lastID
}

func TestResumeReplaysThenGoesLive(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, nil)
	ws.subscribe("order_changes") // before the row exists: its created event is live
	id := counterRow(t, s.DBURL)
	ws.read() // created
	increments(t, s.DBURL, id, 10)
	// Remember the id of version 4, then resume from it on a new socket.
	var idOf4 string
	for v := 1; v <= 10; v++ {
		m := ws.read()
		if v == 4 {
			idOf4 = m["id"].(string)
		}
	}
	ws2 := dial(t, s, c)
	ws2.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": idOf4})
	sub := ws2.read()
	if sub["type"] != "subscribed" {
		t.Fatalf("want subscribed, got %v", sub)
	}
	ws2.readVersions(id, 5, 10)
	increments(t, s.DBURL, id, 1)
	ws2.readVersions(id, 11, 11)

	// since as a number works too, and a filter applies to the replay.
	ws3 := dial(t, s, c)
	ws3.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": 0,
		"filter": map[string]any{"order_number": "ORD-1000000002"}})
	if m := ws3.read(); m["type"] != "subscribed" {
		t.Fatalf("want subscribed, got %v", m)
	}
	exec(t, appConn(t, s.DBURL, "x"), `UPDATE orders SET status = 'refunded' WHERE order_number = 'ORD-1000000002'`)
	m := ws3.read()
	if m["data"].(map[string]any)["order_number"] != "ORD-1000000002" {
		t.Fatalf("filtered replay/live: got %v", m)
	}
}

// A client resumes while writers keep committing: every version arrives once, in
// order, across the hand-over from replay to live.
func TestResumeDuringWritesHasNoGapOrDuplicate(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, nil)
	ws.subscribe("order_changes") // before the row exists: its created event is live
	id := counterRow(t, s.DBURL)
	ws.read()
	const total = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn := appConn(t, s.DBURL, "writer")
		for i := 0; i < total; i++ {
			if _, err := conn.Exec(context.Background(), `UPDATE orders SET version = version + 1 WHERE id = $1`, id); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Let some versions through, then resume from the 50th on a new socket.
	var since string
	for v := 1; v <= 50; v++ {
		since = ws.read()["id"].(string)
	}
	ws2 := dial(t, s, c)
	ws2.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": since})
	if m := ws2.read(); m["type"] != "subscribed" {
		t.Fatalf("want subscribed, got %v", m)
	}
	ws2.readVersions(id, 51, total)
	<-done
}

func TestResyncRequiredWhenSinceIsPruned(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, nil)
	ws.subscribe("order_changes") // before the row exists: its created event is live
	id := counterRow(t, s.DBURL)
	ws.read()
	increments(t, s.DBURL, id, 5)
	last := ws.readVersions(id, 1, 5)
	// Retention pruned everything up to the last event.
	admin := appConn(t, s.DBURL, "ops")
	exec(t, admin, `TRUNCATE shopstream.changes_0, shopstream.changes_1, shopstream.changes_2`)
	exec(t, admin, `UPDATE shopstream.log_state SET pruned_through = $1::bigint`, last)
	ws2 := dial(t, s, c)
	ws2.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": "1"})
	if m := ws2.read(); m["type"] != "subscribed" || m["position"] != last {
		t.Fatalf("want subscribed at %s, got %v", last, m)
	}
	if m := ws2.read(); m["type"] != "resync_required" || m["channel"] != "order_changes" {
		t.Fatalf("want resync_required, got %v", m)
	}
	increments(t, s.DBURL, id, 1)
	ws2.readVersions(id, 6, 6)
	// since = the pruned position itself loses nothing: plain resume, no resync.
	ws3 := dial(t, s, c)
	ws3.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": last})
	ws3.read()
	ws3.readVersions(id, 6, 6)
}

func TestTwoInstancesShareEventsAndSessions(t *testing.T) {
	t.Parallel()
	a, c, wsA := setup(t, nil)
	b := startServer(t, a.DBURL, nil)
	// The cookie from A works on B.
	jarFor(t, c, a, b)
	wsB := dial(t, b, c)
	wsA.subscribe("order_changes")
	wsB.subscribe("order_changes")
	id := counterRow(t, a.DBURL)
	mA, mB := wsA.read(), wsB.read()
	if mA["id"] != mB["id"] || mA["event"] != "order:created" {
		t.Fatalf("same event, same id on both: %v vs %v", mA, mB)
	}
	increments(t, a.DBURL, id, 20)
	lastA, lastB := wsA.readVersions(id, 1, 20), wsB.readVersions(id, 1, 20)
	if lastA != lastB {
		t.Fatalf("ids differ across instances: %s vs %s", lastA, lastB)
	}
	// Logout on A closes the session's socket on B within a second.
	start := time.Now()
	resp := postJSON(t, c, a.URL+"/api/auth/logout", map[string]any{})
	resp.Body.Close()
	if code, _ := wsB.expectClose(); code != websocket.StatusPolicyViolation {
		t.Fatalf("B socket: want 1008, got %d", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("B socket closed after %v, want within 1s", d)
	}
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

// The instance ordering the log stops; the other takes over and nothing is lost.
func TestSequencerFailover(t *testing.T) {
	t.Parallel()
	a, c, _ := setup(t, nil)
	b := startServer(t, a.DBURL, nil)
	leader, follower := a, b
	if !statsOf(t, a, c).SequencerLeader {
		leader, follower = b, a
	}
	jarFor(t, c, a, follower)
	ws := dial(t, follower, c)
	ws.subscribe("order_changes")
	id := counterRow(t, a.DBURL)
	ws.read()
	increments(t, a.DBURL, id, 10)
	ws.readVersions(id, 1, 10)
	leader.Stop(t)
	start := time.Now()
	increments(t, a.DBURL, id, 10) // committed while nobody orders the log
	ws.readVersions(id, 11, 20)
	took := time.Since(start)
	t.Logf("follower took over and delivered the backlog in %v", took)
	if took > 5*time.Second {
		t.Errorf("takeover took %v, want under 5s", took)
	}
	if !statsOf(t, follower, c).SequencerLeader {
		t.Error("follower does not report itself as leader")
	}
}

// jarFor copies the cookies of server from to server to.
func jarFor(t *testing.T, c *http.Client, from, to *testServer) {
	t.Helper()
	src, dst := mustURL(from.URL), mustURL(to.URL)
	c.Jar.SetCookies(dst, c.Jar.Cookies(src))
}

type statsData struct {
	ConnectedClients int            `json:"connectedClients"`
	Subscriptions    map[string]int `json:"subscriptions"`
	SequencerLeader  bool           `json:"sequencerLeader"`
	LastEventID      string         `json:"lastEventId"`
}

func statsOf(t *testing.T, s *testServer, c *http.Client) statsData {
	t.Helper()
	jarFor(t, c, s, s)
	resp, err := c.Get(s.URL + "/api/v1/ws/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Success bool      `json:"success"`
		Data    statsData `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !body.Success {
		t.Fatalf("stats: %d %v", resp.StatusCode, err)
	}
	return body.Data
}

func TestSessionLifetimeAndActivity(t *testing.T) {
	t.Parallel()
	// Idle timeout 2s: an open socket keeps the session alive past it. Absolute
	// lifetime 5s: the socket is closed with 1008 soon after.
	db := pgtest.NewDB(t)
	s := startServer(t, db, map[string]string{"SESSION_IDLE_TIMEOUT": "2s", "SESSION_LIFETIME": "5s"})
	createAdmin(t, db, "admin@example.com", "admin")
	// The session is made during the login: its lifetime ends 5s after a moment
	// between beforeLogin and start.
	beforeLogin := time.Now()
	c := login(t, s, "admin@example.com", testPassword)
	start := time.Now()
	ws := dial(t, s, c)
	ws.subscribe("order_changes")
	// Wait past the idle timeout on a signal: events the socket receives.
	id := counterRow(t, s.DBURL)
	ws.read()
	for v := 1; time.Since(start) < 3*time.Second; v++ {
		increments(t, s.DBURL, id, 1)
		ws.readVersions(id, v, v)
	}
	if resp := get(t, c, s.URL+"/api/auth/me"); resp.StatusCode != http.StatusOK {
		t.Fatalf("session with an open socket expired after %v of REST idleness\n%s", time.Since(start), s.Log.String())
	}
	code, reason := ws.expectClose()
	closedAt := time.Now()
	if code != websocket.StatusPolicyViolation {
		t.Fatalf("want 1008 at the end of the lifetime, got %d %q", code, reason)
	}
	if early, late := closedAt.Sub(beforeLogin), closedAt.Sub(start); early < 5*time.Second || late > 8*time.Second {
		t.Errorf("socket closed %v after the login began and %v after it ended, want soon after the 5s lifetime", early, late)
	}
}

func TestDisablingUserClosesSockets(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	createAdmin(t, s.DBURL, "temp@example.com", "support")
	ws := dial(t, s, login(t, s, "temp@example.com", testPassword))
	start := time.Now()
	runCLI(t, s.DBURL, "", "admin", "disable", "--email", "temp@example.com")
	code, reason := ws.expectClose()
	if code != websocket.StatusPolicyViolation || reason != "session ended" {
		t.Fatalf("want 1008 session ended, got %d %q", code, reason)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed after %v, want within 1s", d)
	}
	// A disabled user cannot log in.
	resp := postJSON(t, http.DefaultClient, s.URL+"/api/auth/login", map[string]string{"email": "temp@example.com", "password": testPassword})
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("disabled login: %d", resp.StatusCode)
	}
}

// A client that stops reading is closed as slow (1013) without delaying the others,
// and resuming with since gives it everything it missed. The stuck client follows
// products (big rows, written as fast as possible); the reading one follows
// orders (small rows, paced), and its p99 is logged.
func TestSlowClientIsClosedAndResumes(t *testing.T) { // not parallel: it measures the fast client
	// The stuck client reads only after the fast phase. Until then the server's
	// write to it is blocked on a full kernel buffer, and on a loaded machine
	// that phase can outlast the default 10 s write timeout, whose watchdog
	// would drop the connection without the close frame (the protocol allows
	// that; TestStalledWriteTimesOut covers it). An hour keeps this test about
	// the 1013.
	s, c, _ := setup(t, map[string]string{"WS_SEND_QUEUE": "256", "WS_WRITE_TIMEOUT": "1h"})
	fast := dialRaw(t, s, c, &websocket.DialOptions{Subprotocols: []string{"shopstream.batch"}})
	fast.read()
	// The slow client's kernel buffer is small, so that its queue, not the
	// kernel, is what fills.
	slow := dialRaw(t, s, &http.Client{Jar: c.Jar, Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext}}, nil)
	slow.read()
	fast.subscribe("order_changes")
	slow.subscribe("product_changes")
	app := appConn(t, s.DBURL, "pim")
	var pid int64
	if err := app.QueryRow(context.Background(), `INSERT INTO products (sku, name, stock) VALUES ('BIG', repeat('n', 8000), 0) RETURNING id`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	lastSeen, lastStock := slow.read()["id"].(string), 0
	id := counterRow(t, s.DBURL)
	fast.read()

	const bigUpdates, orderUpdates = 1500, 400
	errs := make(chan error, 2)
	go func() {
		errs <- commitLoop(s.DBURL, `UPDATE products SET stock = stock + 1 WHERE id = $1`, pid, bigUpdates, time.Millisecond)
	}()
	go func() {
		errs <- commitLoop(s.DBURL, `UPDATE orders SET version = version + 1 WHERE id = $1`, id, orderUpdates, 2*time.Millisecond)
	}()
	var lat []time.Duration
	for v := 1; v <= orderUpdates; {
		for _, b := range splitLines(fast.readRaw()) {
			if !bytes.Contains(b, []byte(`"changed_fields":{"version":`+strconv.Itoa(v)+`}`)) {
				t.Fatalf("fast client: want version %d in %.200s", v, b)
			}
			i := bytes.LastIndex(b, []byte(`"timestamp":"`))
			ts, _ := time.Parse("2006-01-02T15:04:05.000Z", string(b[i+13:i+13+24]))
			lat = append(lat, time.Since(ts))
			v++
		}
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("reading client p99 commit-to-receive while the other was stuck: %v", percentile(lat, 0.99))
	// The slow client now reads: what fitted, then the 1013 close.
	var code websocket.StatusCode
	for {
		ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
		_, b, err := slow.conn.Read(ctx)
		cancel()
		if err != nil {
			code = websocket.CloseStatus(err)
			break
		}
		var m struct {
			Type, ID string
			Data     struct {
				Stock int `json:"stock"`
			}
		}
		_ = json.Unmarshal(b, &m)
		if m.Type == "event" {
			if m.Data.Stock != lastStock+1 {
				t.Fatalf("slow client: stock %d after %d", m.Data.Stock, lastStock)
			}
			lastSeen, lastStock = m.ID, m.Data.Stock
		}
	}
	// The server closed it as slow, before the end. Its 1013 reaches the
	// client "where a close frame can still be written" (SPEC): the frame
	// waits behind the full buffers of a client that does not read, and the
	// library gives that write 5 s, which the fast phase above can outlast on
	// a loaded machine; then the connection ends without the frame. Either
	// way the server counted the close under "slow", and the resume below
	// must give everything.
	slowCloses := scrape(t, s)[`shopstream_sockets_closed_total{reason="slow"}`]
	if lastStock >= bigUpdates || slowCloses != 1 || (code != websocket.StatusTryAgainLater && code != -1) {
		t.Fatalf("slow client: want a close as slow (1013, or no close frame) before the end, got code %d after stock %d, %v closes counted as slow", code, lastStock, slowCloses)
	}
	t.Logf("slow client: close code %d after stock %d", code, lastStock)
	// Resume from the last event it saw: everything after arrives, in order,
	// once. First let the server publish the whole backlog: on a loaded machine
	// it may still be ordering the big updates, and live events queued behind a
	// long replay to a client that reads slowly (this one decodes every 8 KB
	// event) would fill its 256-message queue and close it with 1013 again, as
	// designed.
	waitfor.Until(t, "the server to publish every committed change", func() bool {
		var backlog, last int64
		if err := app.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM shopstream.changes c
				WHERE c.txid >= (SELECT pg_snapshot_xmax(snap) FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1)),
			(SELECT first_position + count - 1 FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1)`).Scan(&backlog, &last); err != nil {
			t.Fatal(err)
		}
		return backlog == 0 && statsOf(t, s, c).LastEventID == strconv.FormatInt(last, 10)
	})
	again := dial(t, s, c)
	again.send(map[string]any{"type": "subscribe", "channel": "product_changes", "since": lastSeen})
	again.read()
	for want := lastStock + 1; want <= bigUpdates; want++ {
		m := again.read()
		if got := m["data"].(map[string]any)["stock"]; got != float64(want) {
			t.Fatalf("resumed: want stock %d, got %v", want, got)
		}
	}
}

// commitLoop commits sql n times with arg from its own connection, pausing
// pace between commits (0: as fast as possible).
func commitLoop(dbURL, sql string, arg int64, n int, pace time.Duration) error {
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := 0; i < n; i++ {
		if pace > 0 {
			time.Sleep(pace) // load shaping, not synchronisation
		}
		if _, err := conn.Exec(context.Background(), sql, arg); err != nil {
			return err
		}
	}
	return nil
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	for i := range s { // insertion sort: small slices
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[int(float64(len(s)-1)*p)]
}

// One UPDATE of 100,000 rows reaches the socket complete and in order while
// application pings stay answered. The reader is the test under -race on a
// machine that may be busy: when it falls a whole send queue behind, the
// server closes it with 1013 and it resumes with since, as the protocol says
// a client does; the count, the order and the absence of duplicates are
// checked across the resumes. Every ping gets its pong; on a socket that has
// not resumed the pong comes back within ten thousand events, so it is not
// queued behind the whole bulk (counted in events, not in time). A resumed
// socket answers after its replay, which runs in order in its queue.
func TestBulkUpdate(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, nil)
	app := appConn(t, s.DBURL, "import")
	exec(t, app, `INSERT INTO products (sku, name, stock) SELECT 'BULK-' || g, 'p' || g, 0 FROM generate_series(1, 100000) g`)
	open := func(since int64) *wsClient {
		ws := dialRaw(t, s, c, &websocket.DialOptions{Subprotocols: []string{"shopstream.batch"}})
		ws.read()
		sub := map[string]any{"type": "subscribe", "channel": "product_changes", "actions": []string{"updated"}}
		if since >= 0 {
			sub["since"] = strconv.FormatInt(since, 10)
		}
		ws.send(sub)
		return ws
	}
	ws := open(-1)
	// Events after the subscription's position are the bulk's.
	lastID, err := strconv.ParseInt(fmt.Sprint(ws.read()["position"]), 10, 64)
	if err != nil {
		t.Fatalf("subscribed without a position: %v", err)
	}
	exec(t, app, `UPDATE products SET stock = 1 WHERE sku LIKE 'BULK-%'`)
	const n, pingEvery = 100000, 10000
	got, resumes, pongs, pings := 0, 0, 0, 0
	pingAt := -1 // the count of events when the unanswered ping was sent
	bound := pingEvery
	for got < n || pingAt >= 0 {
		if pingAt < 0 && got < n && got/pingEvery >= pongs {
			pingAt, pings = got, pings+1
			ws.send(map[string]string{"type": "ping"})
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
		typ, b, err := ws.conn.Read(ctx)
		cancel()
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
				t.Fatalf("socket read after %d events: %v", got, err)
			}
			resumes++
			t.Logf("closed with 1013 after %d events (%v): resuming with since %d", got, err, lastID)
			ws, pingAt, bound = open(lastID), -1, n
			continue
		}
		ws.checks.add(typ, b)
		for _, line := range splitLines(b) {
			var m struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			}
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			switch m.Type {
			case "pong":
				pongs, pingAt = pongs+1, -1
				continue
			case "subscribed":
				continue
			case "event":
			default:
				t.Fatalf("unexpected %s", line)
			}
			idn, _ := strconv.ParseInt(m.ID, 10, 64)
			if idn <= lastID {
				t.Fatalf("out of order or repeated: %d after %d", idn, lastID)
			}
			lastID = idn
			got++
		}
		if pingAt >= 0 && got-pingAt > bound {
			t.Fatalf("a ping sent after %d events is unanswered after %d: the pong is queued behind the bulk", pingAt, got)
		}
		if got > n {
			t.Fatalf("%d events, want %d", got, n)
		}
	}
	// A ping goes unanswered only when its socket was closed with 1013.
	if pongs < n/pingEvery-resumes || pings-pongs > resumes {
		t.Errorf("%d pongs for %d pings with %d resumes", pongs, pings, resumes)
	}
	t.Logf("received %d events, %d pings answered, %d resumes", got, pongs, resumes)
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return append(out, b[start:])
}

// A peer that vanishes without a close handshake releases its server-side
// connection (no descriptor left in CLOSE-WAIT).
func TestVanishedPeerReleasesConnection(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, nil)
	port := mustURL(s.URL).Port()
	before := establishedTo(t, port)
	var socks []*wsClient
	for i := 0; i < 5; i++ {
		w := dial(t, s, c)
		w.subscribe("order_changes")
		socks = append(socks, w)
	}
	for _, w := range socks {
		_ = w.conn.CloseNow() // TCP close, no WebSocket close frame
	}
	n := 0
	waitfor.Until(t, "no server connection in CLOSE-WAIT after the peers vanished", func() bool {
		n = closeWaitOn(t, port) // a kernel table: there is no signal to wait on
		return n == 0
	})
	t.Logf("%d established before the sockets, none left in CLOSE-WAIT", before)
}

// closeWaitOn counts TCP sockets in CLOSE-WAIT whose local port is port.
func closeWaitOn(t *testing.T, port string) int { return tcpStates(t, port, "08") }

func establishedTo(t *testing.T, port string) int { return tcpStates(t, port, "01") }

// tcpStates counts /proc/net/tcp entries with local port port in state st (hex).
func tcpStates(t *testing.T, port, st string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatalf("reading /proc/net/tcp: %v", err)
	}
	p, _ := strconv.Atoi(port)
	hexPort := fmt.Sprintf(":%04X", p)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], hexPort) && f[3] == st {
			n++
		}
	}
	return n
}

// Retention: the ordering instance prunes old events in batches; a client whose
// since was pruned gets resync_required, then live events.
func TestRetentionPrunes(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, map[string]string{"EVENT_RETENTION": "1s", "EVENT_PRUNE_INTERVAL": "200ms"})
	ws.subscribe("order_changes") // before the row exists: its created event is live
	id := counterRow(t, s.DBURL)
	ws.read()
	increments(t, s.DBURL, id, 3)
	first := ws.readVersions(id, 1, 1)
	last := ws.readVersions(id, 2, 3)
	// Wait until the log has pruned those events (a condition in the database):
	// all of them, for a resume after the first to have lost something. (Pruned
	// through the first alone, the events after it are still there to replay:
	// a stress run caught a prune that had gone just that far.)
	admin := appConn(t, s.DBURL, "ops")
	waitfor.Until(t, "the log to prune the three events", func() bool {
		var pruned int64
		if err := admin.QueryRow(context.Background(), `SELECT pruned_through FROM shopstream.log_state`).Scan(&pruned); err != nil {
			t.Fatal(err)
		}
		return pruned >= int64(must(strconv.Atoi(last)))
	})
	ws2 := dial(t, s, c)
	ws2.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": first})
	ws2.read()
	if m := ws2.read(); m["type"] != "resync_required" {
		t.Fatalf("want resync_required, got %v", m)
	}
	increments(t, s.DBURL, id, 1)
	ws2.readVersions(id, 4, 4)
}

// The server pings every socket; one that stops answering (its client no longer
// reads, so no pong) is dropped, one that reads stays.
func TestUnansweredPingsDropThePeer(t *testing.T) {
	t.Parallel()
	s, c, live := setup(t, map[string]string{"WS_PING_INTERVAL": "300ms"})
	mute := dial(t, s, c) // never reads again: pongs are answered only while reading
	_ = mute
	live.subscribe("order_changes")
	readErr := make(chan error, 1)
	go func() {
		_, _, err := live.conn.Read(context.Background()) // keeps reading: answers pings
		readErr <- err
	}()
	waitfor.Until(t, "the mute socket to be dropped", func() bool { return statsOf(t, s, c).ConnectedClients == 1 })
	select {
	case err := <-readErr:
		t.Fatalf("the reading socket was dropped too: %v", err)
	default:
	}
}

// A peer that stops reading blocks the server's write once the kernel buffers
// are full; the write watchdog closes that socket after WS_WRITE_TIMEOUT, with
// its send queue far from full (so it is not the 1013 of a slow client).
func TestStalledWriteTimesOut(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, map[string]string{"WS_WRITE_TIMEOUT": "1s", "WS_SEND_QUEUE": "100000"})
	stalled := dialRaw(t, s, &http.Client{Jar: c.Jar, Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext}}, nil)
	stalled.read()
	stalled.subscribe("product_changes")
	before := statsOf(t, s, c).ConnectedClients
	app := appConn(t, s.DBURL, "pim")
	var pid int64
	if err := app.QueryRow(context.Background(), `INSERT INTO products (sku, name, stock) VALUES ('STALL', repeat('n', 8000), 0) RETURNING id`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// 8 KB events until the kernel buffers between server and peer are full:
	// one statement per round keeps the test quick.
	waitfor.Until(t, "the socket whose peer stopped reading to be closed", func() bool {
		if statsOf(t, s, c).ConnectedClients != before {
			return true
		}
		for i := 0; i < 50; i++ {
			exec(t, app, `UPDATE products SET stock = stock + 1 WHERE id = $1`, pid)
		}
		return false
	})
	m := scrape(t, s)
	if slow, failed := m[`shopstream_sockets_closed_total{reason="slow"}`], m[`shopstream_sockets_closed_total{reason="error"}`]; slow != 0 || failed != 1 {
		t.Fatalf("want the socket closed by the write timeout (reason error), not as slow: slow=%v error=%v", slow, failed)
	}
}

// A client that saw an event on instance A and resumes on instance B before
// B's listener has read it must not be refused as "ahead of the log" (nor get
// the event twice): B waits until it has read that far. B's listener backend
// is stopped (SIGSTOP) to hold B behind.
func TestResumeOnALaggingInstanceWaitsForIt(t *testing.T) {
	t.Parallel()
	a, c, wsA := setup(t, nil)
	admin := appConn(t, a.DBURL, "test-admin")
	var bStart time.Time
	if err := admin.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&bStart); err != nil {
		t.Fatal(err)
	}
	b := startServer(t, a.DBURL, nil)
	jarFor(t, c, a, b)
	// B's listener: the dedicated connection that last read the log (its
	// tick lookup or a page of a tick).
	// It shows up there once it has made its first read, which B's readiness
	// does not wait for: poll.
	var pid int
	waitfor.Until(t, "B's listener backend in pg_stat_activity", func() bool {
		err := admin.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE '%-listener' AND backend_start >= $1
			AND (query LIKE '%first_position <= $1 + 1%' OR query LIKE '%pg_visible_in_snapshot%')`, bStart).Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("finding B's listener backend: %v", err)
		}
		return err == nil
	})
	wsA.subscribe("order_changes")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	id := counterRow(t, a.DBURL)
	created := wsA.read()
	since := created["id"].(string)

	wsB := dial(t, b, c)
	wsB.send(map[string]any{"type": "subscribe", "channel": "order_changes", "since": since})
	first := make(chan map[string]any, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
		defer cancel()
		var m map[string]any
		if _, raw, err := wsB.conn.Read(ctx); err == nil {
			_ = json.Unmarshal(raw, &m)
		}
		first <- m
	}()
	select {
	case m := <-first: // B answered while its listener could not have read the event
		t.Fatalf("B answered before reading up to %s: %v", since, m)
	case <-time.After(300 * time.Millisecond): // nothing happens: B waits
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	m := waitfor.Receive(t, "B's answer to the subscribe", first)
	pos, _ := m["position"].(string)
	if m["type"] != "subscribed" || atoi(t, pos) < atoi(t, since) {
		t.Fatalf("want subscribed at or after %s, got %v", since, m)
	}
	increments(t, a.DBURL, id, 1)
	// Next comes the update, live: the created event (id since) is not replayed.
	if m := wsB.read(); m["event"] != "order:updated" || atoi(t, m["id"].(string)) <= atoi(t, since) {
		t.Fatalf("want the live update after %s, got %v", since, m)
	}
}
