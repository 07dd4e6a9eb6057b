package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
)

// A shop database shopstream did not design: orders partitioned by created_at
// with a composite key, an enum, numerics beyond float64, jsonb, text and uuid
// keys, a payment ledger, a column named changed_fields; owned by the shop,
// migrated by a role that owns none of it, written by a role that has only
// DML on it.
const shopSchema = `
CREATE SCHEMA shop;
CREATE TYPE shop.order_state AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE shop.sales_order (
	id bigint NOT NULL, created_at timestamptz NOT NULL, number text NOT NULL,
	state shop.order_state NOT NULL DEFAULT 'new', total numeric(32,2), meta jsonb,
	PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE TABLE shop.sales_order_2023 PARTITION OF shop.sales_order FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE shop.sales_order_2024 PARTITION OF shop.sales_order FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.catalog_item (sku text PRIMARY KEY, name text NOT NULL, price numeric);
CREATE TABLE shop.account (id uuid PRIMARY KEY, email text NOT NULL, changed_fields text);
CREATE TABLE shop.parcel (id bigint PRIMARY KEY, carrier text);
CREATE TABLE shop.ledger (id bigint PRIMARY KEY, amount numeric(40,10) NOT NULL, memo text);
`

const shopTables = "order=shop.sales_order,product=shop.catalog_item,customer=shop.account,shipment=shop.parcel,transaction=shop.ledger"

// runCLIEnv runs one shopstream command with env and returns its output and error.
func runCLIEnv(env map[string]string, stdin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, errOut.String())
	}
	return out.String(), err
}

// loginRole creates a LOGIN role with attrs on the cluster (roles are per
// cluster, so the name is unique); it is dropped when the test ends, after
// the cleanups registered later (a database it owns objects in, for one).
func loginRole(t *testing.T, admin *pgx.Conn, prefix, attrs string) string {
	t.Helper()
	role := prefix + strconv.FormatInt(time.Now().UnixNano(), 36)
	exec(t, admin, `CREATE ROLE `+role+` LOGIN `+attrs)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	return role
}

func asRole(dbURL, role string) string {
	u, _ := url.Parse(dbURL)
	u.User = url.User(role)
	return u.String()
}

func TestShopDatabase(t *testing.T) {
	t.Parallel()
	cluster := appConn(t, pgtest.BaseURL(t), "dba")
	migrator := loginRole(t, cluster, "shop_migrate_", "CREATEROLE")
	writer := loginRole(t, cluster, "shop_app_", "")
	db := pgtest.NewEmptyDB(t)
	dba := appConn(t, db, "dba")
	exec(t, dba, shopSchema)
	// The privileges docs/operations.md lists: CREATE on the database for the
	// first run, CREATEROLE (the role above) for the capture roles, TRIGGER on
	// each watched table and each of its partitions. One partition is missing.
	var dbname string
	if err := dba.QueryRow(context.Background(), `SELECT current_database()`).Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	exec(t, dba, `GRANT CREATE ON DATABASE `+dbname+` TO `+migrator)
	exec(t, dba, `GRANT USAGE ON SCHEMA shop TO `+migrator+`, `+writer)
	exec(t, dba, `GRANT TRIGGER ON shop.sales_order, shop.sales_order_2023, shop.catalog_item, shop.account, shop.parcel, shop.ledger TO `+migrator)
	exec(t, dba, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shop TO `+writer)

	env := map[string]string{"DATABASE_URL": asRole(db, migrator), "TABLES": shopTables}
	out, err := runCLIEnv(env, "", "migrate")
	if err == nil {
		t.Fatalf("migrate succeeded with a partition it may not attach to:\n%s", out)
	}
	for _, want := range []string{
		"table shop.sales_order (order): refused: " + migrator + " lacks the TRIGGER privilege on shop.sales_order_2024",
		"GRANT TRIGGER ON shop.sales_order_2024 TO " + migrator,
		"table shop.catalog_item (product): attached", "table shop.account (customer): attached",
		"table shop.parcel (shipment): attached", "table shop.ledger (transaction): attached",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
	exec(t, dba, `GRANT TRIGGER ON shop.sales_order_2024 TO `+migrator)
	out, err = runCLIEnv(env, "", "migrate")
	if err != nil || !strings.Contains(out, "table shop.sales_order (order): attached") || !strings.Contains(out, "table shop.ledger (transaction): already attached") {
		t.Fatalf("migrate after the grant: %v\n%s", err, out)
	}

	s := startServer(t, asRole(db, migrator), map[string]string{"TABLES": shopTables})
	createAdmin(t, s.DBURL, "admin@example.com", "admin")
	c := login(t, s, "admin@example.com", testPassword)
	ws := dial(t, s, c)
	for _, ch := range []string{"order_changes", "customer_changes", "transaction_changes"} {
		ws.subscribe(ch)
	}
	app := appConn(t, asRole(db, writer), "storefront")

	t.Run("created, with exact numerics, an enum and jsonb", func(t *testing.T) {
		exec(t, app, `INSERT INTO shop.sales_order (id, created_at, number, total, meta)
			VALUES (1, '2023-06-01 12:00:00+00', 'SO-1', 12345678901234567890.12, '{"channel":"web","tags":["a"]}')`)
		raw := ws.readRaw()
		for _, want := range []string{`"event":"order:created"`, `"total":12345678901234567890.12`, `"state":"new"`,
			`"meta":{"tags": ["a"], "channel": "web"}`, `"created_at":"2023-06-01T12:00:00+00:00"`} {
			if !bytes.Contains(raw, []byte(want)) {
				t.Errorf("created event lacks %s: %s", want, raw)
			}
		}
	})

	t.Run("an update that moves the row to another partition is one update", func(t *testing.T) {
		exec(t, app, `UPDATE shop.sales_order SET created_at = '2024-02-01 09:00:00+00', state = 'paid' WHERE id = 1`)
		m := ws.read()
		data, _ := m["data"].(map[string]any)
		changed, _ := data["changed_fields"].(map[string]any)
		prev, _ := m["previous"].(map[string]any)
		if m["event"] != "order:updated" || changed["created_at"] != "2024-02-01T09:00:00+00:00" || changed["state"] != "paid" ||
			prev["created_at"] != "2023-06-01T12:00:00+00:00" || prev["state"] != "new" || len(changed) != 2 {
			t.Fatalf("want one order:updated with created_at and state changed, got %v", m)
		}
		// Three rows moved by one statement: three updates, nothing else.
		exec(t, app, `INSERT INTO shop.sales_order (id, created_at, number) SELECT g, '2023-03-01', 'SO-' || g FROM generate_series(10, 12) g`)
		for i := 0; i < 3; i++ {
			if m := ws.read(); m["event"] != "order:created" {
				t.Fatalf("want order:created, got %v", m)
			}
		}
		exec(t, app, `UPDATE shop.sales_order SET created_at = created_at + interval '1 year' WHERE id BETWEEN 10 AND 12`)
		for i := 0; i < 3; i++ {
			if m := ws.read(); m["event"] != "order:updated" {
				t.Fatalf("move %d: want order:updated, got %v", i+1, m)
			}
		}
		orderMarker(t, app, ws, 100)
	})

	t.Run("truncating a partition, or the partitioned table, is one truncated event", func(t *testing.T) {
		exec(t, dba, `TRUNCATE shop.sales_order_2023`)
		if m := ws.read(); m["event"] != "order:truncated" {
			t.Fatalf("want order:truncated for the partition, got %v", m)
		}
		orderMarker(t, app, ws, 101)
		exec(t, dba, `TRUNCATE shop.sales_order`)
		if m := ws.read(); m["event"] != "order:truncated" {
			t.Fatalf("want order:truncated for the table, got %v", m)
		}
		orderMarker(t, app, ws, 102)
	})

	t.Run("a column named changed_fields keeps its value", func(t *testing.T) {
		exec(t, app, `INSERT INTO shop.account VALUES ('7b1e3f5c-1f6a-4c9e-9a43-0f2b6a1d2c3e', 'a@example.com', 'the shop''s own')`)
		ws.read()
		exec(t, app, `UPDATE shop.account SET email = 'b@example.com'`)
		m := ws.read()
		data, _ := m["data"].(map[string]any)
		top, _ := m["changed_fields"].(map[string]any)
		if m["event"] != "customer:updated" || data["changed_fields"] != "the shop's own" || top["email"] != "b@example.com" ||
			data["id"] != "7b1e3f5c-1f6a-4c9e-9a43-0f2b6a1d2c3e" {
			t.Fatalf("want the column in data and shopstream's changed fields at the top level, got %v", m)
		}
	})

	t.Run("filters compare big numbers exactly", func(t *testing.T) {
		ws2 := dial(t, s, c)
		ws2.send(map[string]any{"type": "subscribe", "channel": "transaction_changes", "filter": json.RawMessage(`{"id":36028797018963969}`)})
		if m := ws2.read(); m["type"] != "subscribed" {
			t.Fatalf("want subscribed, got %v", m)
		}
		exec(t, app, `INSERT INTO shop.ledger VALUES (36028797018963968, 1, 'below'), (36028797018963969, 123456789012345678901234567890.1234567890, 'it'), (36028797018963970, 1, 'above')`)
		raw := ws2.readRaw()
		if !bytes.Contains(raw, []byte(`"id":36028797018963969,`)) || !bytes.Contains(raw, []byte(`"amount":123456789012345678901234567890.1234567890`)) {
			t.Fatalf("want the ledger row 36028797018963969 with its exact amount, got %s", raw)
		}
		exec(t, app, `INSERT INTO shop.ledger VALUES (36028797018963969 * 2, 1, 'marker')`)
		exec(t, app, `UPDATE shop.ledger SET memo = 'marker' WHERE id = 36028797018963969`)
		if m := ws2.read(); m["event"] != "transaction:updated" {
			t.Fatalf("want only the filtered row's events, got %v", m)
		}
		for i := 0; i < 5; i++ { // the main socket saw all of them
			ws.read()
		}
	})

	// The writer reaches none of shopstream's tables.
	if _, err := app.Exec(context.Background(), `SELECT count(*) FROM shopstream.sessions`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the shop's writer reading shopstream.sessions: %v, want permission denied", err)
	}
}

// orderMarker inserts an order and expects its created event as the next
// message: nothing else came before it.
func orderMarker(t *testing.T, app *pgx.Conn, ws *wsClient, id int) {
	t.Helper()
	exec(t, app, `INSERT INTO shop.sales_order (id, created_at, number) VALUES ($1, '2024-05-05', 'MARK')`, id)
	m := ws.read()
	data, _ := m["data"].(map[string]any)
	if m["event"] != "order:created" || data["id"] != float64(id) {
		t.Fatalf("want only the marker order %d next, got %v", id, m)
	}
}
