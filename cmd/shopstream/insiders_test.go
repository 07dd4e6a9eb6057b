package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// revocationBound is the documented bound: a revoked channel ends within a
// second on every instance.
const revocationBound = time.Second

// expectRevoked reads the next message of ws: an error forbidden naming channel.
func expectRevoked(t *testing.T, ws *wsClient, channel string) {
	t.Helper()
	m := ws.read()
	if m["type"] != "error" || m["code"] != "forbidden" || m["channel"] != channel {
		t.Fatalf("want error forbidden for %s, got %v", channel, m)
	}
}

// execTimed runs sql and returns when its commit was acknowledged.
func execTimed(t *testing.T, conn *pgx.Conn, sql string) time.Time {
	t.Helper()
	exec(t, conn, sql)
	return time.Now()
}

func TestRevokedChannelsEndOnEveryInstance(t *testing.T) {
	t.Parallel()
	a, _, _ := setup(t, nil)
	b := startServer(t, a.DBURL, nil)
	createAdmin(t, a.DBURL, "support@example.com", "support")
	var socks []*wsClient
	for _, s := range []*testServer{a, b} {
		ws := dial(t, s, login(t, s, "support@example.com", testPassword))
		ws.subscribe("order_changes")
		ws.subscribe("customer_changes")
		socks = append(socks, ws)
	}
	app := appConn(t, a.DBURL, "ops")

	// A channel taken from the role ends on both instances within the bound.
	revokedAt := execTimed(t, app, `UPDATE shopstream.roles SET channels = '{order_changes,shipment_changes}' WHERE name = 'support'`)
	for i, ws := range socks {
		expectRevoked(t, ws, "customer_changes")
		t.Logf("instance %d: revoked %v after the commit", i, time.Since(revokedAt).Round(time.Millisecond))
		if d := time.Since(revokedAt); d > revocationBound {
			t.Errorf("instance %d: revocation reached the socket after %v, want within %v", i, d, revocationBound)
		}
	}
	// Nothing more of the channel arrives; the others go on.
	exec(t, app, `UPDATE customers SET name = name || '!' WHERE id = (SELECT min(id) FROM customers)`)
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = (SELECT min(id) FROM orders)`)
	for i, ws := range socks {
		if m := ws.read(); m["event"] != "order:updated" {
			t.Fatalf("instance %d: want the order event next, got %v", i, m)
		}
	}
	// Neither a new subscribe nor a resume reads the channel again.
	for _, ws := range socks {
		ws.send(map[string]any{"type": "subscribe", "channel": "customer_changes"})
		expectError(t, ws, "forbidden")
		ws.send(map[string]any{"type": "subscribe", "channel": "customer_changes", "since": "0"})
		expectError(t, ws, "forbidden")
	}
	// Granted channels take effect too, without a new login.
	exec(t, app, `UPDATE shopstream.roles SET channels = '{order_changes,customer_changes,shipment_changes}' WHERE name = 'support'`)
	if err := waitfor.UntilContext(context.Background(), func() bool {
		socks[0].send(map[string]any{"type": "subscribe", "channel": "customer_changes"})
		m := socks[0].read()
		return m["type"] == "subscribed"
	}); err != nil {
		t.Fatalf("a granted channel could not be subscribed: %v", err)
	}

	// A user moved to another role by SQL loses what the new role lacks.
	createAdmin(t, a.DBURL, "mover@example.com", "support")
	mover := dial(t, b, login(t, b, "mover@example.com", testPassword))
	mover.subscribe("order_changes")
	mover.subscribe("shipment_changes")
	movedAt := execTimed(t, app, `UPDATE shopstream.admin_users SET role = 'finance' WHERE email = 'mover@example.com'`)
	expectRevoked(t, mover, "shipment_changes")
	if d := time.Since(movedAt); d > revocationBound {
		t.Errorf("role change reached the socket after %v, want within %v", d, revocationBound)
	}
	mover.subscribe("transaction_changes") // the new role's channel
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE id = (SELECT min(id) FROM orders)`)
	if m := mover.read(); m["event"] != "order:updated" {
		t.Fatalf("kept channel: want order:updated, got %v", m)
	}
}

// readerURL returns dbURL with the user replaced by a role that can do
// nothing but connect: any role may NOTIFY any channel.
func readerURL(t *testing.T, dbURL string) string {
	t.Helper()
	withAppConn(t, dbURL, "dba", func(c *pgx.Conn) {
		exec(t, c, `DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shop_reader') THEN CREATE ROLE shop_reader LOGIN; END IF;
		END $$`)
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("shop_reader")
	return u.String()
}

func sessionToken(t *testing.T, s *testServer, c *http.Client) string {
	t.Helper()
	u, _ := url.Parse(s.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "shopstream_session" {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func TestForgedSessionSignalsAreIgnored(t *testing.T) {
	t.Parallel()
	a, _, _ := setup(t, nil)
	b := startServer(t, a.DBURL, nil)
	createAdmin(t, a.DBURL, "boss@example.com", "admin")
	c := login(t, a, "boss@example.com", testPassword)
	token := sessionToken(t, a, c)
	wsA, wsB := dial(t, a, c), dial(t, b, c)
	for _, ws := range []*wsClient{wsA, wsB} {
		ws.subscribe("order_changes")
	}
	var id int64
	withAppConn(t, a.DBURL, "dba", func(conn *pgx.Conn) {
		if err := conn.QueryRow(context.Background(), `SELECT id FROM shopstream.admin_users WHERE email = 'boss@example.com'`).Scan(&id); err != nil {
			t.Fatal(err)
		}
	})

	// A role with no privilege rings every signal shopstream listens for.
	reader, err := pgx.Connect(waitfor.Context(t), readerURL(t, a.DBURL))
	if err != nil {
		t.Fatalf("connecting as a read-only role: %v", err)
	}
	defer reader.Close(context.Background())
	for _, payload := range []string{"user:" + strconv.FormatInt(id, 10), auth.TokenHash(token), "roles", "user:x", strings.Repeat("z", 64)} {
		if _, err := reader.Exec(context.Background(), `SELECT pg_notify('shopstream_sessions', $1)`, payload); err != nil {
			t.Fatalf("notify %q: %v", payload, err)
		}
	}
	// Both instances checked the database and kept the socket.
	for _, s := range []*testServer{a, b} {
		waitLog(t, s.Log, "ignored session-end signals for live sessions")
	}
	app := appConn(t, a.DBURL, "shop")
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = (SELECT min(id) FROM orders)`)
	for i, ws := range []*wsClient{wsA, wsB} {
		if m := ws.read(); m["event"] != "order:updated" {
			t.Fatalf("instance %d: socket should live on after a forged signal, got %v", i, m)
		}
	}
	// The real thing still ends the session everywhere.
	resp := postJSON(t, c, a.URL+"/api/auth/logout", map[string]string{})
	resp.Body.Close()
	for i, ws := range []*wsClient{wsA, wsB} {
		if code, _ := ws.expectClose(); code != websocket.StatusPolicyViolation {
			t.Fatalf("instance %d after logout: close %d, want 1008", i, code)
		}
	}
}

func getStats(t *testing.T, s *testServer, c *http.Client) map[string]any {
	t.Helper()
	resp, err := c.Get(s.URL + "/api/v1/ws/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %d %s", resp.StatusCode, b)
	}
	var body struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("stats: %v: %s", err, b)
	}
	return body.Data
}

func TestStatsShowARoleOnlyItsChannels(t *testing.T) {
	t.Parallel()
	s, adminClient, admin := setup(t, nil)
	createAdmin(t, s.DBURL, "support@example.com", "support")
	supClient := login(t, s, "support@example.com", testPassword)
	sup := dial(t, s, supClient)
	sup.subscribe("order_changes")
	admin.subscribe("order_changes")
	admin.subscribe("transaction_changes")
	app := appConn(t, s.DBURL, "shop")
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = (SELECT min(id) FROM orders)`)
	exec(t, app, `UPDATE transactions SET status = 'refunded' WHERE id = (SELECT min(id) FROM transactions)`)
	orderEv, txEv := admin.read(), admin.read()
	if orderEv["event"] != "order:updated" || txEv["event"] != "transaction:updated" {
		t.Fatalf("admin events: %v, %v", orderEv, txEv)
	}
	if m := sup.read(); m["event"] != "order:updated" {
		t.Fatalf("support event: %v", m)
	}

	st := getStats(t, s, supClient)
	if got := fmt.Sprint(st["activeChannels"]); got != "[order_changes]" {
		t.Errorf("support sees active channels %s, want [order_changes]", got)
	}
	if subs := st["subscriptions"].(map[string]any); len(subs) != 1 || subs["order_changes"] != 2.0 {
		t.Errorf("support sees subscriptions %v, want only order_changes: 2", subs)
	}
	if st["eventsPublished"] != 1.0 || st["eventsDelivered"] != 2.0 {
		t.Errorf("support sees %v published, %v delivered; want 1 and 2 (the order event alone)", st["eventsPublished"], st["eventsDelivered"])
	}
	if st["lastEventId"] != orderEv["id"] {
		t.Errorf("support sees last event %v, want the order's %v", st["lastEventId"], orderEv["id"])
	}

	all := getStats(t, s, adminClient)
	if got := fmt.Sprint(all["activeChannels"]); got != "[order_changes transaction_changes]" {
		t.Errorf("admin sees active channels %s", got)
	}
	if all["eventsPublished"] != 2.0 || all["lastEventId"] != txEv["id"] {
		t.Errorf("admin sees %v published, last %v; want 2 and %v", all["eventsPublished"], all["lastEventId"], txEv["id"])
	}
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	t.Parallel()
	_, _, ws := setup(t, nil)
	ws.sendRaw([]byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"))
	if code, _ := ws.expectClose(); code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("close %d, want 1007", code)
	}
}

// closeGraceBound is how long after its close frame a refused socket whose
// peer never answers may hold its connection: the server's grace (1 s) plus a
// second of allowance for a busy machine. Before, the library waited 5 s for
// the peer's close frame and 5 more to write its own.
const closeGraceBound = 2 * time.Second

func TestUnauthenticatedSocketIsDroppedAtOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitfor.Deadline))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", strings.TrimPrefix(s.URL, "http://"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// The close frame: FIN|close, unmasked, payload = code 1008 + reason.
	head := make([]byte, 4)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("reading the close frame: %v", err)
	}
	closedAt := time.Now()
	if head[0] != 0x88 || int(head[2])<<8|int(head[3]) != 1008 {
		t.Fatalf("want a close frame with 1008, got % x", head)
	}
	// Never answer it: the server drops the connection anyway.
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the server did not close the connection: %v", err)
	}
	if d := time.Since(closedAt); d > closeGraceBound {
		t.Errorf("connection held %v after the close frame, want at most %v", d, closeGraceBound)
	}
}

// The session cookie's attributes and entropy, the session read from the
// cookie alone, no compression, and the socket's log lines: the lines of the
// README's OWASP tables that no other test names.
func TestSessionCookieAndSocketBasics(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), map[string]string{"COOKIE_SECURE": "true"})
	createAdmin(t, s.DBURL, "admin@example.com", "admin")
	tokens := map[string]bool{}
	var token string
	for i := 0; i < 2; i++ {
		resp := postJSON(t, http.DefaultClient, s.URL+"/api/auth/login", map[string]string{"email": "admin@example.com", "password": testPassword})
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		set := resp.Header.Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Secure"} {
			if !strings.Contains(set, want) {
				t.Errorf("cookie lacks %s: %s", want, set)
			}
		}
		for _, bad := range []string{"Domain=", "Max-Age=", "Expires="} {
			if strings.Contains(set, bad) {
				t.Errorf("cookie has %s (a browser-session cookie, host only): %s", bad, set)
			}
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, `no-cache="Set-Cookie"`) {
			t.Errorf("login response Cache-Control = %q", cc)
		}
		token = strings.TrimPrefix(strings.SplitN(set, ";", 2)[0], "shopstream_session=")
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(raw) != 32 {
			t.Errorf("token %q: want 32 random bytes in base64url (%d bytes, %v)", token, len(raw), err)
		}
		tokens[token] = true
	}
	if len(tokens) != 2 {
		t.Error("two logins gave the same token")
	}
	// The token anywhere but the cookie is no session.
	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	for name, opts := range map[string]struct {
		url    string
		header http.Header
	}{
		"query":  {wsURL + "?token=" + token + "&shopstream_session=" + token, nil},
		"bearer": {wsURL, http.Header{"Authorization": {"Bearer " + token}}},
	} {
		conn, _, err := websocket.Dial(waitfor.Context(t), opts.url, &websocket.DialOptions{HTTPHeader: opts.header})
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		_, _, err = conn.Read(waitfor.Context(t))
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Errorf("%s: a token outside the cookie opened a session: %v", name, err)
		}
		conn.CloseNow()
	}
	// No permessage-deflate, even when asked.
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "shopstream_session", Value: token}})
	conn, resp, err := websocket.Dial(waitfor.Context(t), wsURL, &websocket.DialOptions{
		HTTPClient: &http.Client{Jar: jar}, CompressionMode: websocket.CompressionContextTakeover})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("the server negotiated %q", ext)
	}
	ws := newWSClient(t, conn)
	if m := ws.read(); m["type"] != "connected" {
		t.Fatalf("first message: %v", m)
	}
	conn.Close(websocket.StatusNormalClosure, "bye")
	// One line per socket open and close, with who, why and how long.
	waitLog(t, s.Log, "socket closed")
	for msg, fields := range map[string][]string{
		`msg="socket opened"`: {"user_id=1 ", "origin=", "session="},
		`msg="socket closed"`: {"user_id=1 ", "reason=client ", "close_code=1000 ", "duration="},
	} {
		found := false
		for _, line := range strings.Split(s.Log.String(), "\n") {
			if strings.Contains(line, msg) {
				found = true
				for _, f := range fields {
					if !strings.Contains(line, f) {
						t.Errorf("log line lacks %s: %s", f, line)
					}
				}
			}
		}
		if !found {
			t.Errorf("no log line %s", msg)
		}
	}
}

// A signal can be lost (LISTEN is not durable: the listener was reconnecting,
// or a flood filled the guard's queue): the keeper's periodic check still
// ends a session whose user was disabled.
func TestDisabledUserClosedWithoutASignal(t *testing.T) {
	t.Parallel()
	// The keeper checks every third of the idle timeout (at most 30 s).
	s, _, ws := setup(t, map[string]string{"SESSION_IDLE_TIMEOUT": "3s"})
	ws.subscribe("order_changes")
	app := appConn(t, s.DBURL, "dba")
	exec(t, app, `ALTER TABLE shopstream.admin_users DISABLE TRIGGER admin_users_sessions_ended`)
	exec(t, app, `UPDATE shopstream.admin_users SET disabled = true WHERE email = 'admin@example.com'`)
	if code, _ := ws.expectClose(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
}

// X-Forwarded-For is believed only from the configured proxies: a client on
// any other address, private or not, cannot choose the address the login
// throttle counts.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	// An address limit that does not refill while the test runs.
	s := startServer(t, pgtest.NewDB(t), map[string]string{"TRUST_PROXY_HEADERS": "true", "TRUSTED_PROXIES": "10.9.9.9",
		"LOGIN_LIMIT_ADDRESS": "20/1h"})
	for i := 0; ; i++ {
		b, _ := json.Marshal(map[string]string{"email": fmt.Sprintf("nobody%d@example.com", i), "password": "wrong password"})
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/auth/login", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)) // a new address each time, if it were believed
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if i != 20 {
				t.Fatalf("throttled after %d failures, want the address limit's 20", i)
			}
			return
		}
		if resp.StatusCode != http.StatusUnauthorized || i > 20 {
			t.Fatalf("login %d: %d; the forged X-Forwarded-For was believed", i, resp.StatusCode)
		}
	}
}

func TestDeletedUserSocketsClose(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	exec(t, appConn(t, s.DBURL, "dba"), `DELETE FROM shopstream.admin_users WHERE email = 'admin@example.com'`)
	if code, _ := ws.expectClose(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
}
