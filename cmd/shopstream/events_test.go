package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

var (
	idPattern        = regexp.MustCompile(`^[1-9][0-9]*$`)
	timestampPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

const (
	ts1 = "2026-01-25T10:30:00+00:00"
	ts2 = "2026-01-25T10:31:00+00:00"
)

// expectEvent checks an event message field by field: want's keys exactly, plus a
// well-formed id and timestamp, and no other keys.
func expectEvent(t *testing.T, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	w["type"] = "event"
	id, _ := got["id"].(string)
	ts, _ := got["timestamp"].(string)
	if !idPattern.MatchString(id) {
		t.Errorf("id %v is not a positive decimal string", got["id"])
	}
	if !timestampPattern.MatchString(ts) {
		t.Errorf("timestamp %v is not UTC ISO-8601 with milliseconds", got["timestamp"])
	}
	rest := map[string]any{}
	for k, v := range got {
		if k != "id" && k != "timestamp" {
			rest[k] = v
		}
	}
	if !reflect.DeepEqual(rest, w) {
		gb, _ := json.Marshal(rest)
		wb, _ := json.Marshal(w)
		t.Fatalf("event mismatch\n got: %s\nwant: %s", gb, wb)
	}
}

// entityCase is one table's full life: insert, update, delete.
type entityCase struct {
	entity, table   string
	insert, update  string
	created         string // data after insert
	changed, before string // changed_fields and previous of the update
	after           string // the row after the update (data of the update and of the delete)
}

var entityCases = []entityCase{
	{
		entity: "order", table: "orders",
		insert: `INSERT INTO orders (id, order_number, status, payment_status, total, customer_id, currency, created_at, updated_at)
			VALUES (1001, 'ORD-1234567890', 'pending', 'pending', 99.99, 45, 'USD', '` + ts1 + `', '` + ts1 + `')`,
		update:  `UPDATE orders SET status = 'processing', payment_status = 'paid', updated_at = '` + ts2 + `' WHERE id = 1001`,
		created: `{"id":1001,"order_number":"ORD-1234567890","status":"pending","payment_status":"pending","total":99.99,"customer_id":45,"currency":"USD","notes":null,"version":0,"created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
		changed: `{"status":"processing","payment_status":"paid","updated_at":"` + ts2 + `"}`,
		before:  `{"status":"pending","payment_status":"pending","updated_at":"` + ts1 + `"}`,
		after:   `{"id":1001,"order_number":"ORD-1234567890","status":"processing","payment_status":"paid","total":99.99,"customer_id":45,"currency":"USD","notes":null,"version":0,"created_at":"` + ts1 + `","updated_at":"` + ts2 + `"}`,
	},
	{
		entity: "product", table: "products",
		insert:  `INSERT INTO products (id, sku, name, price, stock, active, created_at, updated_at) VALUES (1001, 'TEA-9', 'Green tea', 8.50, 3, true, '` + ts1 + `', '` + ts1 + `')`,
		update:  `UPDATE products SET stock = 2 WHERE id = 1001`,
		created: `{"id":1001,"sku":"TEA-9","name":"Green tea","price":8.50,"stock":3,"active":true,"created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
		changed: `{"stock":2}`, before: `{"stock":3}`,
		after: `{"id":1001,"sku":"TEA-9","name":"Green tea","price":8.50,"stock":2,"active":true,"created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
	},
	{
		entity: "customer", table: "customers",
		insert:  `INSERT INTO customers (id, email, name, phone, password_hash, created_at, updated_at) VALUES (1001, 'c@example.com', 'Cleo', NULL, 'argon2id$secret', '` + ts1 + `', '` + ts1 + `')`,
		update:  `UPDATE customers SET name = 'Cleo B', password_hash = 'argon2id$other' WHERE id = 1001`,
		created: `{"id":1001,"email":"c@example.com","name":"Cleo","phone":null,"created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
		changed: `{"name":"Cleo B"}`, before: `{"name":"Cleo"}`,
		after: `{"id":1001,"email":"c@example.com","name":"Cleo B","phone":null,"created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
	},
	{
		entity: "shipment", table: "shipments",
		insert:  `INSERT INTO shipments (id, order_id, carrier, tracking_number, status, created_at, updated_at) VALUES (1001, 7, 'DHL', 'JD01', 'label_created', '` + ts1 + `', '` + ts1 + `')`,
		update:  `UPDATE shipments SET status = 'in_transit' WHERE id = 1001`,
		created: `{"id":1001,"order_id":7,"carrier":"DHL","tracking_number":"JD01","status":"label_created","created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
		changed: `{"status":"in_transit"}`, before: `{"status":"label_created"}`,
		after: `{"id":1001,"order_id":7,"carrier":"DHL","tracking_number":"JD01","status":"in_transit","created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
	},
	{
		entity: "transaction", table: "transactions",
		insert:  `INSERT INTO transactions (id, order_id, amount, currency, status, card_number, created_at, updated_at) VALUES (1001, 7, 12.30, 'EUR', 'authorized', '4111111111111111', '` + ts1 + `', '` + ts1 + `')`,
		update:  `UPDATE transactions SET status = 'captured' WHERE id = 1001`,
		created: `{"id":1001,"order_id":7,"amount":12.30,"currency":"EUR","status":"authorized","created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
		changed: `{"status":"captured"}`, before: `{"status":"authorized"}`,
		after: `{"id":1001,"order_id":7,"amount":12.30,"currency":"EUR","status":"captured","created_at":"` + ts1 + `","updated_at":"` + ts1 + `"}`,
	},
}

// withChanged adds changed_fields to a row object.
func withChanged(row, changed string) string {
	return strings.TrimSuffix(row, "}") + `,"changed_fields":` + changed + `}`
}

func TestEventsForEveryEntityAndAction(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	app := appConn(t, s.DBURL, "storefront")
	exec(t, app, "SET TimeZone = 'UTC'")
	for _, tc := range entityCases {
		ch := tc.entity + "_changes"
		ws.subscribe(ch)
		exec(t, app, tc.insert)
		expectEvent(t, ws.read(), fmt.Sprintf(`{"channel":%q,"event":"%s:created","data":%s,"actor":"storefront"}`, ch, tc.entity, tc.created))
		exec(t, app, tc.update)
		expectEvent(t, ws.read(), fmt.Sprintf(`{"channel":%q,"event":"%s:updated","data":%s,"previous":%s,"actor":"storefront"}`,
			ch, tc.entity, withChanged(tc.after, tc.changed), tc.before))
		exec(t, app, "DELETE FROM "+tc.table+" WHERE id = 1001")
		expectEvent(t, ws.read(), fmt.Sprintf(`{"channel":%q,"event":"%s:deleted","data":%s,"actor":"storefront"}`, ch, tc.entity, tc.after))
		exec(t, app, "TRUNCATE "+tc.table+" CASCADE")
		expectEvent(t, ws.read(), fmt.Sprintf(`{"channel":%q,"event":"%s:truncated","data":{},"actor":"storefront"}`, ch, tc.entity))
	}
}

// marker writes an order row whose event proves that everything before it has
// been delivered (or not).
func marker(t *testing.T, app *pgx.Conn, n int) string {
	t.Helper()
	num := "MARK-" + strconv.Itoa(n)
	exec(t, app, `INSERT INTO orders (order_number) VALUES ($1)`, num)
	return num
}

func expectMarker(t *testing.T, ws *wsClient, num string) {
	t.Helper()
	m := ws.read()
	data, _ := m["data"].(map[string]any)
	if m["event"] != "order:created" || data["order_number"] != num {
		t.Fatalf("want marker %s, got %v", num, m)
	}
}

func TestNoEventWithoutARealChange(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	app := appConn(t, s.DBURL, "importer")
	exec(t, app, `UPDATE orders SET status = status`)                       // changes nothing
	exec(t, app, `UPDATE orders SET updated_at = now() + interval '1 day'`) // only an ignored column
	exec(t, app, `BEGIN; UPDATE orders SET status = 'cancelled'; ROLLBACK`) // never committed
	expectMarker(t, ws, marker(t, app, 1))

	// An open transaction shows nothing until it commits.
	tx, err := app.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `UPDATE orders SET status = 'on_hold' WHERE order_number = 'ORD-1000000001'`); err != nil {
		t.Fatal(err)
	}
	other := appConn(t, s.DBURL, "other")
	expectMarker(t, ws, marker(t, other, 2))
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := ws.read()
	data := m["data"].(map[string]any)
	if m["event"] != "order:updated" || data["status"] != "on_hold" {
		t.Fatalf("want the committed update, got %v", m)
	}
	// An ignored column changing together with another is reported.
	changed := data["changed_fields"].(map[string]any)
	if len(changed) != 1 || changed["status"] != "on_hold" {
		t.Fatalf("changed_fields: %v", changed)
	}
	exec(t, app, `UPDATE orders SET status = 'pending', updated_at = '`+ts2+`' WHERE order_number = 'ORD-1000000001'`)
	changed = ws.read()["data"].(map[string]any)["changed_fields"].(map[string]any)
	if len(changed) != 2 || changed["updated_at"] == nil {
		t.Fatalf("ignored column must be in changed_fields when something else changed: %v", changed)
	}
}

func TestSecretColumnsNeverLeave(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("customer_changes")
	ws.subscribe("order_changes")
	app := appConn(t, s.DBURL, "storefront")
	exec(t, app, `ALTER TABLE customers ADD COLUMN api_key text, ADD COLUMN token text`)
	exec(t, app, `INSERT INTO customers (email, name, password_hash, api_key, token) VALUES ('s@example.com', 'S', 'hash-SECRET1', 'key-SECRET2', 'tok-SECRET3')`)
	exec(t, app, `UPDATE customers SET password_hash = 'hash-SECRET4' WHERE email = 's@example.com'`) // secret only: no event
	exec(t, app, `UPDATE customers SET name = 'S2', api_key = 'key-SECRET5' WHERE email = 's@example.com'`)
	exec(t, app, `DELETE FROM customers WHERE email = 's@example.com'`)
	num := marker(t, app, 1)
	var frames []string
	for i := 0; i < 3; i++ {
		frames = append(frames, string(ws.readRaw()))
	}
	for _, f := range frames {
		for _, bad := range []string{"SECRET", "password_hash", "api_key", `"token"`} {
			if strings.Contains(f, bad) {
				t.Errorf("frame leaks %s: %s", bad, f)
			}
		}
	}
	for i, want := range []string{"customer:created", "customer:updated", "customer:deleted"} {
		if !strings.Contains(frames[i], `"event":"`+want+`"`) {
			t.Errorf("frame %d: want %s, got %s", i, want, frames[i])
		}
	}
	if !strings.Contains(frames[1], `"changed_fields":{"name":"S2"}`) || !strings.Contains(frames[1], `"previous":{"name":"S"}`) {
		t.Errorf("update frame: %s", frames[1])
	}
	expectMarker(t, ws, num)
}

func TestLargeRowAndActor(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	app := appConn(t, s.DBURL, "warehouse-app")
	big := strings.Repeat("x", 20000) + "END"
	exec(t, app, `UPDATE orders SET notes = $1 WHERE order_number = 'ORD-1000000001'`, big)
	m := ws.read()
	if got := m["data"].(map[string]any)["notes"]; got != big {
		t.Fatalf("20,000-character row not delivered whole (got %d characters)", len(fmt.Sprint(got)))
	}
	if m["actor"] != "warehouse-app" {
		t.Errorf("actor from application_name: got %v", m["actor"])
	}
	exec(t, app, `BEGIN; SET LOCAL shopstream.actor = 'warehouse-sync'; UPDATE orders SET status = 'shipped' WHERE order_number = 'ORD-1000000001'; COMMIT`)
	if m := ws.read(); m["actor"] != "warehouse-sync" {
		t.Errorf("actor from shopstream.actor: got %v", m["actor"])
	}
	anon := appConn(t, s.DBURL, "")
	exec(t, anon, `UPDATE orders SET status = 'delivered' WHERE order_number = 'ORD-1000000001'`)
	if m := ws.read(); m["actor"] != nil {
		t.Errorf("no actor expected, got %v", m["actor"])
	}
}

func TestOnlySubscribedChannels(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	ws.subscribe("product_changes")
	ws.send(map[string]any{"type": "unsubscribe", "channel": "product_changes"})
	if m := ws.read(); m["type"] != "unsubscribed" || m["channel"] != "product_changes" {
		t.Fatalf("want unsubscribed, got %v", m)
	}
	app := appConn(t, s.DBURL, "pim")
	exec(t, app, `UPDATE products SET stock = stock + 1`)
	exec(t, app, `UPDATE customers SET name = name || '!'`)
	expectMarker(t, ws, marker(t, app, 1))
}

// Eight writers update one row 250 times each: the socket sees versions 1..2000
// in order, each once.
func TestPerRowOrderUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	setupConn := appConn(t, s.DBURL, "setup")
	var id int64
	if err := setupConn.QueryRow(context.Background(), `INSERT INTO orders (order_number) VALUES ('ORD-RACE') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if m := ws.read(); m["event"] != "order:created" {
		t.Fatalf("want created, got %v", m)
	}
	const writers, each = 8, 250
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		conn := appConn(t, s.DBURL, fmt.Sprintf("writer-%d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := conn.Exec(context.Background(), `UPDATE orders SET version = version + 1 WHERE id = $1`, id); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last := int64(0)
	for want := 1; want <= writers*each; want++ {
		m := ws.read()
		data := m["data"].(map[string]any)
		got := data["changed_fields"].(map[string]any)["version"]
		if m["event"] != "order:updated" || got != float64(want) {
			t.Fatalf("event %d: want version %d, got %v", want, want, m)
		}
		id, _ := strconv.ParseInt(m["id"].(string), 10, 64)
		if id <= last {
			t.Fatalf("ids not increasing: %d after %d", id, last)
		}
		last = id
	}
}
