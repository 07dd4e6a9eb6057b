package main

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/waitfor"
)

func expectError(t *testing.T, ws *wsClient, code string) {
	t.Helper()
	m := ws.read()
	if m["type"] != "error" || m["code"] != code {
		t.Fatalf("want error %s, got %v", code, m)
	}
}

func TestRolesLimitChannels(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	createAdmin(t, s.DBURL, "support@example.com", "support")
	createAdmin(t, s.DBURL, "finance@example.com", "finance")
	sup := dial(t, s, login(t, s, "support@example.com", testPassword))
	fin := dial(t, s, login(t, s, "finance@example.com", testPassword))
	for _, ch := range []string{"order_changes", "customer_changes", "shipment_changes"} {
		sup.subscribe(ch)
	}
	for _, ch := range []string{"product_changes", "transaction_changes"} {
		sup.send(map[string]string{"type": "subscribe", "channel": ch})
		expectError(t, sup, "forbidden")
	}
	for _, ch := range []string{"order_changes", "transaction_changes"} {
		fin.subscribe(ch)
	}
	for _, ch := range []string{"product_changes", "customer_changes", "shipment_changes"} {
		fin.send(map[string]string{"type": "subscribe", "channel": ch})
		expectError(t, fin, "forbidden")
	}
	// A role added as data, without code.
	app := appConn(t, s.DBURL, "ops")
	exec(t, app, `INSERT INTO shopstream.roles (name, channels) VALUES ('warehouse', '{shipment_changes}')`)
	createAdmin(t, s.DBURL, "wh@example.com", "warehouse")
	wh := dial(t, s, login(t, s, "wh@example.com", testPassword))
	wh.subscribe("shipment_changes")
	wh.send(map[string]string{"type": "subscribe", "channel": "order_changes"})
	expectError(t, wh, "forbidden")
	exec(t, app, `UPDATE shipments SET status = 'delivered'`)
	if m := wh.read(); m["event"] != "shipment:updated" {
		t.Fatalf("warehouse: %v", m)
	}
}

func TestFiltersAndActions(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.send(map[string]any{"type": "subscribe", "channel": "order_changes",
		"filter": map[string]any{"status": []string{"pending", "processing"}, "customer_id": 45}, "actions": []string{"created", "updated"}})
	if m := ws.read(); m["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", m)
	}
	app := appConn(t, s.DBURL, "shop")
	exec(t, app, `INSERT INTO orders (id, order_number, status, customer_id) VALUES (501, 'F-1', 'pending', 45)`)    // matches
	exec(t, app, `INSERT INTO orders (id, order_number, status, customer_id) VALUES (502, 'F-2', 'pending', 46)`)    // other customer
	exec(t, app, `INSERT INTO orders (id, order_number, status, customer_id) VALUES (503, 'F-3', 'shipped', 45)`)    // other status
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE id = 501`)                                              // leaves the list
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 503`)                                           // enters the list
	exec(t, app, `UPDATE orders SET status = 'cancelled' WHERE id = 502`)                                            // never in it
	exec(t, app, `DELETE FROM orders WHERE id = 503`)                                                                // deletes not asked for
	exec(t, app, `INSERT INTO orders (id, order_number, status, customer_id) VALUES (504, 'F-4', 'processing', 45)`) // marker
	want := []struct {
		event string
		id    float64
	}{{"order:created", 501}, {"order:updated", 501}, {"order:updated", 503}, {"order:created", 504}}
	for _, w := range want {
		m := ws.read()
		if m["event"] != w.event || m["data"].(map[string]any)["id"] != w.id {
			t.Fatalf("want %s of %v, got %v", w.event, w.id, m)
		}
	}
	bad := []map[string]any{
		{"type": "subscribe", "channel": "order_changes", "filter": map[string]any{"colour": "red"}},
		{"type": "subscribe", "channel": "customer_changes", "filter": map[string]any{"password_hash": "x"}},
		{"type": "subscribe", "channel": "order_changes", "filter": map[string]any{"status": map[string]any{"$ne": 1}}},
		{"type": "subscribe", "channel": "order_changes", "filter": map[string]any{"status": []any{}}},
		{"type": "subscribe", "channel": "order_changes", "actions": []string{"upserted"}},
	}
	for _, b := range bad {
		ws.send(b)
		expectError(t, ws, "invalid_request")
	}
}

func TestAdminCommandsEndSessions(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	createAdmin(t, s.DBURL, "ann@example.com", "support")
	out := runCLI(t, s.DBURL, "", "admin", "list")
	if !strings.Contains(out, "ann@example.com") || !strings.Contains(out, "support") {
		t.Fatalf("admin list: %s", out)
	}
	c := login(t, s, "ann@example.com", testPassword)
	ws := dial(t, s, c)
	runCLI(t, s.DBURL, "", "admin", "role", "--email", "ann@example.com", "--role", "finance")
	if code, _ := ws.expectClose(); code != websocket.StatusPolicyViolation {
		t.Fatalf("role change: want 1008, got %d", code)
	}
	if resp := get(t, c, s.URL+"/api/auth/me"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session survived a role change: %d", resp.StatusCode)
	}
	c = login(t, s, "ann@example.com", testPassword)
	runCLI(t, s.DBURL, "", "admin", "passwd", "--email", "ann@example.com", "--password", "a whole new password")
	if resp := get(t, c, s.URL+"/api/auth/me"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("session survived a password change: %d", resp.StatusCode)
	}
	login(t, s, "ann@example.com", "a whole new password")
	runCLI(t, s.DBURL, "", "admin", "disable", "--email", "ann@example.com")
	runCLI(t, s.DBURL, "", "admin", "enable", "--email", "ann@example.com")
	login(t, s, "ann@example.com", "a whole new password")
}

func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	try := func(password string) *http.Response {
		resp := postJSON(t, http.DefaultClient, s.URL+"/api/auth/login", map[string]string{"email": "admin@example.com", "password": password})
		resp.Body.Close()
		return resp
	}
	for i := 0; i < 5; i++ {
		if resp := try("wrong password " + strconv.Itoa(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp := try(testPassword) // even the right password waits now
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("want 429, got %d", resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
}

func TestSocketLimits(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, map[string]string{"WS_MAX_SOCKETS_PER_USER": "3"})
	// Binary frames and oversized frames.
	ctx := context.Background()
	if err := ws.conn.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	expectError(t, ws, "invalid_request")
	ws.sendRaw([]byte(`{"type":"subscribe","channel":"` + strings.Repeat("x", 5000) + `"}`))
	if code, _ := ws.expectClose(); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: want 1009, got %d", code)
	}
	// Message rate: a flood gets rate_limited errors, then a 1008 close.
	flood := dial(t, s, c)
	limited := false
	go func() {
		for i := 0; i < 200; i++ {
			if flood.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)) != nil {
				return
			}
		}
	}()
	for {
		rctx, cancel := context.WithTimeout(ctx, waitfor.Deadline)
		_, b, err := flood.conn.Read(rctx)
		cancel()
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation || !limited {
				t.Fatalf("flood: want rate_limited then 1008, got close %d (limited %v): %v", code, limited, err)
			}
			break
		}
		if strings.Contains(string(b), `"rate_limited"`) {
			limited = true
		}
	}
	// Sockets per user: the cap counts open sockets. The two above are closed;
	// once the server no longer counts them, their places are free.
	waitfor.Until(t, "closed sockets to be no longer counted", func() bool { return statsOf(t, s, c).ConnectedClients == 0 })
	a, b := dial(t, s, c), dial(t, s, c)
	_ = a
	third := dial(t, s, c)
	_ = third
	over := dialRaw(t, s, c, nil)
	if code, reason := over.expectClose(); code != websocket.StatusTryAgainLater || !strings.Contains(reason, "too many sockets") {
		t.Fatalf("over the per-user cap: got %d %q", code, reason)
	}
	_ = b
}

func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, map[string]string{"LOG_LEVEL": "debug"})
	ws.subscribe("order_changes")
	resp := postJSON(t, c, s.URL+"/api/auth/logout", map[string]any{})
	resp.Body.Close()
	ws.expectClose()
	u, _ := url.Parse(s.URL)
	var token string
	for _, ck := range c.Jar.Cookies(u) {
		token = ck.Value
	}
	// The jar dropped the cookie at logout; read it from a fresh login instead.
	c2 := login(t, s, "admin@example.com", testPassword)
	for _, ck := range c2.Jar.Cookies(u) {
		token = ck.Value
	}
	dial(t, s, c2).subscribe("order_changes")
	if token == "" {
		t.Fatal("no session cookie")
	}
	sc := bufio.NewScanner(strings.NewReader(s.Log.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), token) || strings.Contains(sc.Text(), testPassword) {
			t.Fatalf("log line leaks a secret: %s", sc.Text())
		}
	}
}

// A shop role with no privilege on schema shopstream writes as usual, and cannot
// forge events by writing to the inbox itself.
func TestWriterNeedsNoPrivilegesOnShopstream(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	admin := appConn(t, s.DBURL, "dba")
	role, roleURL := shopRole(t, admin, s.DBURL, "shop_app_")
	exec(t, admin, `GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO `+role)
	app := appConn(t, roleURL, "storefront")
	exec(t, app, `UPDATE orders SET status = 'paid' WHERE order_number = 'ORD-1000000001'`)
	if m := ws.read(); m["event"] != "order:updated" || m["actor"] != "storefront" {
		t.Fatalf("want the unprivileged writer's update, got %v", m)
	}
	if _, err := app.Exec(context.Background(), `INSERT INTO shopstream.changes_0 (entity, action) VALUES ('order', 'deleted')`); err == nil {
		t.Fatal("a shop role could write to a capture table")
	}
}
