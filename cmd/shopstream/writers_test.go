package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgcluster"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// A writer using two-phase commit never fails because of shopstream: on a
// server where transactions can be prepared (max_prepared_transactions > 0)
// the trigger does not ring the doorbell (a NOTIFY makes PREPARE fail), and
// the change arrives through the sequencer's poll after COMMIT PREPARED.
func TestTwoPhaseCommitWriters(t *testing.T) {
	t.Parallel()
	ctx := waitfor.Context(t)
	_, url := ownCluster(ctx, t, pgcluster.Options{FastUnsafe: true, ExtraConf: []string{"max_prepared_transactions=5"}})
	s, _, ws := setupOn(t, url, nil)
	ws.subscribe("order_changes")
	app := appConn(t, url, "xa-writer")
	id := newOrder(t, app, ws, "ORD-2PC")
	for v := 1; v <= 3; v++ {
		gid := fmt.Sprintf("shop-%d", v)
		exec(t, app, `BEGIN`)
		exec(t, app, `UPDATE orders SET version = $2 WHERE id = $1`, id, v)
		if _, err := app.Exec(ctx, `PREPARE TRANSACTION '`+gid+`'`); err != nil {
			t.Fatalf("PREPARE TRANSACTION of change %d: %v\n%s", v, err, s.Log.String())
		}
		exec(t, app, `COMMIT PREPARED '`+gid+`'`)
		committed := time.Now()
		m := ws.read()
		changed, _ := m["data"].(map[string]any)["changed_fields"].(map[string]any)
		if m["event"] != "order:updated" || changed["version"] != float64(v) {
			t.Fatalf("after COMMIT PREPARED %s: want version %d, got %v", gid, v, m)
		}
		t.Logf("change %d arrived %v after COMMIT PREPARED", v, time.Since(committed).Round(time.Millisecond))
	}
	// A prepared transaction that is rolled back emits nothing: the next event
	// is the marker.
	exec(t, app, `BEGIN`)
	exec(t, app, `UPDATE orders SET version = 99 WHERE id = $1`, id)
	exec(t, app, `PREPARE TRANSACTION 'shop-rollback'`)
	exec(t, app, `ROLLBACK PREPARED 'shop-rollback'`)
	expectQuiet(t, ws, url)
	// shopstream doctor says what such a server means for the doorbell, as a
	// warning: nothing fails.
	out, code := runDoctor(t, url)
	if _, line := doctorLine(t, out, "two-phase commit"); code != 0 || !strings.HasPrefix(line, "WARN") ||
		!strings.Contains(line, "max_prepared_transactions = 5: writers do not ring the doorbell") {
		t.Errorf("doctor exited %d, two-phase commit line: %s\n%s", code, line, out)
	}
}

// The event's data does not depend on the writer's session settings: a writer
// in Berlin with every output setting changed produces the same row JSON as
// one with the defaults. Timestamps are UTC, floats round-trip, intervals are
// ISO 8601, bytea is hex.
func TestDataIndependentOfWriterSettings(t *testing.T) {
	t.Parallel()
	tables := "order=public.orders,product=public.products,customer=public.customers,shipment=public.probe,transaction=public.transactions"
	s, _, ws := setup(t, map[string]string{"TABLES": tables})
	admin := appConn(t, s.DBURL, "dba")
	exec(t, admin, `CREATE TABLE public.probe (id int PRIMARY KEY, at timestamptz, day date, local timestamp, f8 float8, f4 float4,
		span interval, raw bytea, amount numeric, t time, tz timetz, arr timestamptz[])`)
	exec(t, admin, `CREATE TRIGGER shopstream_capture_iud AFTER INSERT OR DELETE ON public.probe FOR EACH ROW EXECUTE FUNCTION shopstream.capture('shipment')`)
	ws.subscribe("shipment_changes")
	const values = `'2026-01-25 10:30:00.123456+00', '2026-01-25', '2026-01-25 10:30:00', 0.30000000000000004, 0.1, '1 day 02:03:04.5',
		'\xdeadbeef'::bytea, 12345678901234567.89, '10:30:00', '10:30:00+02', ARRAY['2026-01-25 10:30:00+00'::timestamptz]`
	insert := func(settings string, id int) map[string]any {
		t.Helper()
		var data map[string]any
		withAppConn(t, s.DBURL, "probe-writer", func(conn *pgx.Conn) {
			if settings != "" {
				exec(t, conn, settings)
			}
			exec(t, conn, fmt.Sprintf(`INSERT INTO public.probe VALUES (%d, %s)`, id, values))
			raw := ws.readRaw()
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber() // numbers as they were sent, not rounded to float64
			var m map[string]any
			if err := dec.Decode(&m); err != nil || m["event"] != "shipment:created" {
				t.Fatalf("want shipment:created, got %s (%v)", raw, err)
			}
			data, _ = m["data"].(map[string]any)
		})
		delete(data, "id")
		return data
	}
	plain := insert("", 1)
	odd := insert(`SET TimeZone = 'Europe/Berlin'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'postgres_verbose';
		SET extra_float_digits = 0; SET bytea_output = 'escape'`, 2)
	a, _ := json.Marshal(plain)
	b, _ := json.Marshal(odd)
	if string(a) != string(b) {
		t.Fatalf("data depends on the writer's settings:\ndefaults: %s\nBerlin:   %s", a, b)
	}
	want := map[string]any{
		"at": "2026-01-25T10:30:00.123456+00:00", "day": "2026-01-25", "local": "2026-01-25T10:30:00",
		"f8": json.Number("0.30000000000000004"), "f4": json.Number("0.1"), "amount": json.Number("12345678901234567.89"), "span": "P1DT2H3M4.5S", "raw": `\xdeadbeef`,
		"t": "10:30:00", "tz": "10:30:00+02", "arr": []any{"2026-01-25T10:30:00+00:00"},
	}
	for k, v := range want {
		g, _ := json.Marshal(plain[k])
		w, _ := json.Marshal(v)
		if string(g) != string(w) {
			t.Errorf("%s rendered %s, want %s", k, g, w)
		}
	}
}

// Writes applied with session_replication_role = replica (logical replication
// apply, pglogical, Bucardo) fire no ordinary trigger: they are captured only
// with CAPTURE_REPLICA_WRITES, which migrate turns into ENABLE ALWAYS (and a
// later run without it turns back).
func TestReplicaWritesCapturedWhenAsked(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	replica := appConn(t, s.DBURL, "logical-apply")
	exec(t, replica, `SET session_replication_role = replica`)
	app := appConn(t, s.DBURL, "storefront")
	id := newOrder(t, app, ws, "ORD-REPL")
	migrate := func(capture string) string {
		t.Helper()
		out, err := runCLIEnv(map[string]string{"DATABASE_URL": s.DBURL, "CAPTURE_REPLICA_WRITES": capture}, "", "migrate")
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return out
	}

	exec(t, replica, `UPDATE orders SET version = 1 WHERE id = $1`, id) // unseen by default
	if out := migrate("true"); !strings.Contains(out, "table public.orders (order): attached") {
		t.Fatalf("migrate with CAPTURE_REPLICA_WRITES did not change the triggers:\n%s", out)
	}
	exec(t, replica, `UPDATE orders SET version = 2 WHERE id = $1`, id)
	m := ws.read()
	changed, _ := m["data"].(map[string]any)["changed_fields"].(map[string]any)
	if m["event"] != "order:updated" || changed["version"] != float64(2) || m["actor"] != "logical-apply" {
		t.Fatalf("want the replicated update to version 2 (and not the one before the option), got %v", m)
	}
	if out := migrate("true"); !strings.Contains(out, "table public.orders (order): already attached") {
		t.Fatalf("a second migrate changed something:\n%s", out)
	}
	migrate("false")
	exec(t, replica, `UPDATE orders SET version = 3 WHERE id = $1`, id) // unseen again
	expectQuiet(t, ws, s.DBURL)
}

// Nothing a writer puts in a row or in shopstream.actor stops the log or
// loses a change: a row beyond MAX_EVENT_BYTES arrives as a too_large marker
// with its key, a huge actor is cut, a value nested deeper than the parser
// reads arrives marked, and the changes around them arrive whole.
func TestHugeRowsActorsAndDepthNeverStopTheLog(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, map[string]string{"MAX_EVENT_BYTES": "65536"})
	ws.subscribe("order_changes")
	app := appConn(t, s.DBURL, "bulk-import")
	dba := appConn(t, s.DBURL, "dba")
	exec(t, dba, `ALTER TABLE orders ADD COLUMN doc jsonb`)
	id := newOrder(t, app, ws, "ORD-HUGE")

	// 1. A row of 1 MiB: a marker naming the row.
	exec(t, app, `UPDATE orders SET notes = repeat('n', 1048576) WHERE id = $1`, id)
	m := ws.read()
	tl, _ := m["too_large"].(map[string]any)
	data, _ := m["data"].(map[string]any)
	if m["event"] != "order:updated" || tl["reason"] != "size" || tl["limit"] != float64(65536) || data["id"] != float64(id) || len(data) != 1 {
		t.Fatalf("want a too_large order:updated naming id %d, got %.300v", id, m)
	}

	// 2. 300 rows written under a 560 KB actor, in one transaction: all arrive, the actor cut.
	exec(t, app, `INSERT INTO orders (order_number) SELECT 'ORD-ACTOR-' || g FROM generate_series(1, 300) g`)
	for i := 0; i < 300; i++ {
		ws.read()
	}
	actor := strings.Repeat("a", 560*1024)
	exec(t, app, `BEGIN`)
	exec(t, app, `SELECT set_config('shopstream.actor', $1, true)`, actor)
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE order_number LIKE 'ORD-ACTOR-%'`)
	exec(t, app, `COMMIT`)
	for i := 0; i < 300; i++ {
		m := ws.read()
		a, _ := m["actor"].(string)
		if m["event"] != "order:updated" || len(a) != 256 || a != actor[:256] {
			t.Fatalf("update %d under the long actor: got event %v, actor of %d bytes", i+1, m["event"], len(a))
		}
	}

	// 3. jsonb nested 10,001 levels (PostgreSQL takes it, encoding/json does not): marked, not skipped.
	exec(t, app, `UPDATE orders SET doc = (repeat('[', 10001) || repeat(']', 10001))::jsonb WHERE id = $1`, id)
	raw := ws.readRaw()
	if !bytes.Contains(raw, []byte(`"too_large":{"reason":"depth"`)) || !bytes.Contains(raw, []byte(fmt.Sprintf(`"data":{"id":%d}`, id))) {
		t.Fatalf("want a too_large marker for the deep value, got %.300s", raw)
	}

	// 4. And the log goes on with whole events (replacing the deep value is
	// marked too: its old value would be in previous).
	exec(t, app, `UPDATE orders SET doc = '{"a":1}' WHERE id = $1`, id)
	if m := ws.read(); m["too_large"] == nil {
		t.Fatalf("want the replacement of the deep value marked, got %.300v", m)
	}
	exec(t, app, `UPDATE orders SET notes = 'small again' WHERE id = $1`, id)
	if m := ws.read(); m["too_large"] == nil { // previous holds the 1 MiB notes
		t.Fatalf("want the replacement of the big notes marked, got %.300v", m)
	}
	exec(t, app, `UPDATE orders SET status = 'paid' WHERE id = $1`, id)
	m = ws.read()
	data, _ = m["data"].(map[string]any)
	if m["too_large"] != nil || data["notes"] != "small again" || data["status"] != "paid" {
		t.Fatalf("want the whole small update, got %.300v", m)
	}
	expectQuiet(t, ws, s.DBURL)
}

// readyz returns /readyz's status and body.
func readyzBody(t *testing.T, s *testServer) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// Schema changes while serving: a filter may name a column added a moment
// ago; a table swapped in by rename (as online schema-change tools do) is
// reported (/readyz warning, metric, log) until migrate attaches it, and the
// table renamed away stops emitting at once.
func TestSchemaChangesWhileServing(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, map[string]string{"TABLE_CHECK_INTERVAL": "100ms"})
	dba := appConn(t, s.DBURL, "dba")
	app := appConn(t, s.DBURL, "storefront")

	// A filter naming a column that exists caches the table's columns; one
	// naming a column added right after is accepted all the same.
	ws.send(map[string]any{"type": "subscribe", "channel": "order_changes", "filter": map[string]any{"status": "pending"}})
	if m := ws.read(); m["type"] != "subscribed" {
		t.Fatalf("want subscribed, got %v", m)
	}
	exec(t, dba, `ALTER TABLE orders ADD COLUMN region text`)
	ws2 := dial(t, s, c)
	ws2.send(map[string]any{"type": "subscribe", "channel": "order_changes", "filter": map[string]any{"region": "eu"}})
	if m := ws2.read(); m["type"] != "subscribed" {
		t.Fatalf("a filter on a column added a moment ago: want subscribed, got %v", m)
	}
	ws2.send(map[string]any{"type": "subscribe", "channel": "customer_changes", "filter": map[string]any{"no_such_column": 1}})
	if m := ws2.read(); m["type"] != "error" || m["code"] != "invalid_request" {
		t.Fatalf("a filter on a column that does not exist: want invalid_request, got %v", m)
	}
	exec(t, app, `INSERT INTO orders (order_number, region) VALUES ('ORD-EU', 'eu')`)
	for _, w := range []*wsClient{ws2, ws} { // ws's filter (pending) takes it too
		if m := w.read(); m["event"] != "order:created" {
			t.Fatalf("want the eu order, got %v", m)
		}
	}

	// The swap.
	if code, body := readyzBody(t, s); code != 200 || body["warnings"] != nil {
		t.Fatalf("/readyz before the swap: %d %v", code, body)
	}
	exec(t, dba, `CREATE TABLE orders_new (LIKE orders INCLUDING ALL)`)
	exec(t, dba, `ALTER TABLE orders RENAME TO orders_old`)
	exec(t, dba, `ALTER TABLE orders_new RENAME TO orders`)
	want := "table public.orders (order) has no capture trigger: run shopstream migrate"
	waitfor.Until(t, "/readyz to warn about the swapped table", func() bool {
		code, body := readyzBody(t, s)
		w, _ := body["warnings"].([]any)
		return code == 200 && len(w) == 1 && w[0] == want
	})
	if got := scrape(t, s)["shopstream_tables_unattached"]; got != 1 {
		t.Errorf("shopstream_tables_unattached = %v, want 1", got)
	}
	if !strings.Contains(s.Log.String(), want) {
		t.Errorf("the log does not say %q", want)
	}
	// The table renamed away no longer stands for orders; the new one is not
	// attached yet.
	exec(t, app, `UPDATE orders_old SET status = 'cancelled'`)
	exec(t, app, `INSERT INTO orders (order_number) VALUES ('ORD-UNSEEN')`)
	if out := runCLI(t, s.DBURL, "", "migrate"); !strings.Contains(out, "table public.orders (order): attached") {
		t.Fatalf("migrate did not attach the swapped-in table:\n%s", out)
	}
	waitfor.Until(t, "/readyz to stop warning", func() bool {
		_, body := readyzBody(t, s)
		return body["warnings"] == nil
	})
	exec(t, app, `INSERT INTO orders (order_number, status) VALUES ('ORD-AFTER', 'pending')`)
	m := ws.read()
	data, _ := m["data"].(map[string]any)
	if m["event"] != "order:created" || data["order_number"] != "ORD-AFTER" {
		t.Fatalf("want the first change of the attached table next (nothing of orders_old, nothing from before migrate), got %v", m)
	}
}
