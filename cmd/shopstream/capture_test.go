package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// shopRole creates a LOGIN role of the shop's and returns it with a URL of db
// that connects as it. When the test ends, what the role owns in db is
// dropped, and the role.
func shopRole(t *testing.T, admin *pgx.Conn, dbURL, prefix string) (string, string) {
	t.Helper()
	role := loginRole(t, admin, prefix, "")
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP OWNED BY `+role) })
	return role, asRole(dbURL, role)
}

// The owner of a watched table makes row_to_json call a function of its own
// (an enum with a cast to json, as capture-trust.md describes) and tries, from
// inside capture(), everything a thief would: read the session tokens, create
// an admin, give the support role every channel, write to a capture table and the
// log. None of it works: the function runs as shopstream_nobody, which may do
// nothing, and the event shows exactly that.
func TestTableOwnerCannotRunCodeAsShopstream(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, nil)
	ws.subscribe("order_changes")
	admin := appConn(t, s.DBURL, "dba")
	owner, ownerURL := shopRole(t, admin, s.DBURL, "shop_owner_")
	exec(t, admin, `ALTER TABLE public.orders OWNER TO `+owner)
	exec(t, admin, `GRANT CREATE ON SCHEMA public TO `+owner) // a shop's own schema owner can create types
	var adminsBefore int
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM shopstream.admin_users`).Scan(&adminsBefore); err != nil {
		t.Fatal(err)
	}

	attacker := appConn(t, ownerURL, "attacker")
	exec(t, attacker, `CREATE TYPE pwn AS ENUM ('x')`)
	exec(t, attacker, `CREATE FUNCTION pwn_json(pwn) RETURNS json LANGUAGE plpgsql AS $f$
DECLARE
	out jsonb := jsonb_build_object('user', current_user::text);
	n bigint;
BEGIN
	BEGIN
		SELECT count(*) INTO n FROM shopstream.sessions;
		out := out || jsonb_build_object('sessions', 'read ' || n);
	EXCEPTION WHEN insufficient_privilege THEN out := out || '{"sessions":"denied"}';
	END;
	BEGIN
		INSERT INTO shopstream.admin_users (email, name, role, password_hash)
		VALUES ('evil@example.com', 'Evil', 'admin', 'x');
		out := out || '{"admin_users":"inserted"}';
	EXCEPTION WHEN insufficient_privilege THEN out := out || '{"admin_users":"denied"}';
	END;
	BEGIN
		UPDATE shopstream.roles SET channels = '{order_changes,product_changes,customer_changes,shipment_changes,transaction_changes}'
		WHERE name = 'support';
		out := out || '{"roles":"updated"}';
	EXCEPTION WHEN insufficient_privilege THEN out := out || '{"roles":"denied"}';
	END;
	BEGIN
		INSERT INTO shopstream.changes_0 (entity, action) VALUES ('customer', 'deleted');
		out := out || '{"inbox":"inserted"}';
	EXCEPTION WHEN insufficient_privilege THEN out := out || '{"inbox":"denied"}';
	END;
	BEGIN
		DELETE FROM shopstream.ticks;
		out := out || '{"events":"deleted"}';
	EXCEPTION WHEN insufficient_privilege THEN out := out || '{"events":"denied"}';
	END;
	RETURN out::json;
END
$f$`)
	exec(t, attacker, `CREATE CAST (pwn AS json) WITH FUNCTION pwn_json(pwn)`)
	exec(t, attacker, `ALTER TABLE public.orders ADD COLUMN pwn pwn DEFAULT 'x'`)
	exec(t, attacker, `UPDATE public.orders SET status = 'cancelled' WHERE order_number = 'ORD-1000000001'`)

	m := ws.read()
	if m["event"] != "order:updated" {
		t.Fatalf("want the attacker's update as an event, got %v", m)
	}
	data, _ := m["data"].(map[string]any)
	got, _ := json.Marshal(data["pwn"])
	want := `{"user":"shopstream_nobody","inbox":"denied","roles":"denied","events":"denied","sessions":"denied","admin_users":"denied"}`
	var g, w map[string]string
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal([]byte(want), &w)
	if len(g) != len(w) {
		t.Fatalf("the cast function reported %s, want %s", got, want)
	}
	for k, v := range w {
		if g[k] != v {
			t.Fatalf("the cast function reported %s, want %s", got, want)
		}
	}
	// And the database agrees: nothing changed.
	var admins int
	var support []string
	if err := admin.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM shopstream.admin_users),
		(SELECT channels FROM shopstream.roles WHERE name = 'support')`).Scan(&admins, &support); err != nil {
		t.Fatal(err)
	}
	if admins != adminsBefore || strings.Join(support, ",") != "order_changes,customer_changes,shipment_changes" {
		t.Fatalf("after the exploit: %d admins (were %d), support has %v", admins, adminsBefore, support)
	}
	resp := postJSON(t, c, s.URL+"/api/auth/login", map[string]string{"email": "evil@example.com", "password": "x"})
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("the attacker's admin logs in: %d", resp.StatusCode)
	}
}

// A session row holds the SHA-256 of the token, never the token: reading the
// table (or a backup of it) gives no cookie.
func TestSessionTokensStoredHashed(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, nil)
	var cookie string
	for _, ck := range c.Jar.Cookies(mustURL(s.URL)) {
		if ck.Name == "shopstream_session" {
			cookie = ck.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie after login")
	}
	admin := appConn(t, s.DBURL, "dba")
	rows, err := admin.Query(context.Background(), `SELECT token FROM shopstream.sessions`)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(cookie))
	hash := hex.EncodeToString(sum[:])
	found := false
	for _, tok := range tokens {
		if tok == cookie {
			t.Fatal("the sessions table holds the cookie's token as it is")
		}
		found = found || tok == hash
	}
	if !found {
		t.Fatalf("no session row under the token's SHA-256; rows: %v", tokens)
	}
	// The stolen row is no cookie: presenting the stored value is no session.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/auth/me", nil)
	req.AddCookie(&http.Cookie{Name: "shopstream_session", Value: hash})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the stored hash used as a cookie: %d, want 401", resp.StatusCode)
	}
}
