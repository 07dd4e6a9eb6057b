package main

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// keysOf returns the sorted keys of a JSON object in an event.
func keysOf(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("want an object, got %v", v)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// A per-table list adds to the defaults, names match whatever their case, and
// the defaults know card numbers, CVCs and tokens.
func TestSecretColumnsAddUpAndIgnoreCase(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, map[string]string{"SECRET_COLUMNS_CUSTOMER": "ssn,Loyalty_PIN"})
	ws.subscribe("customer_changes")
	ws.subscribe("order_changes") // the marker
	app := appConn(t, s.DBURL, "storefront")
	exec(t, app, `ALTER TABLE customers ADD COLUMN "Card_Number" text, ADD COLUMN cvc text, ADD COLUMN ssn text,
		ADD COLUMN loyalty_pin text, ADD COLUMN "ACCESS_TOKEN" text, ADD COLUMN iban text`)
	exec(t, app, `INSERT INTO customers (email, name, password_hash, "Card_Number", cvc, ssn, loyalty_pin, "ACCESS_TOKEN", iban)
		VALUES ('s@example.com', 'S', 'hash-SECRET', '4111-SECRET', '123-SECRET', 'ssn-SECRET', 'pin-SECRET', 'tok-SECRET', 'DE-SECRET')`)
	exec(t, app, `UPDATE customers SET "Card_Number" = '4242-SECRET', cvc = '999-SECRET' WHERE email = 's@example.com'`) // hidden only: no event
	exec(t, app, `UPDATE customers SET name = 'S2', ssn = 'ssn2-SECRET' WHERE email = 's@example.com'`)
	num := marker(t, app, 1)
	created, updated := ws.readRaw(), ws.readRaw()
	for _, f := range [][]byte{created, updated} {
		if strings.Contains(string(f), "SECRET") {
			t.Errorf("frame leaks a secret: %s", f)
		}
	}
	var ev map[string]any
	if err := json.Unmarshal(created, &ev); err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, ev["data"]), []string{"created_at", "email", "id", "name", "phone", "updated_at"}; !reflect.DeepEqual(got, want) {
		t.Errorf("created data has %v, want %v", got, want)
	}
	if err := json.Unmarshal(updated, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["event"] != "customer:updated" || !reflect.DeepEqual(keysOf(t, ev["previous"]), []string{"name"}) {
		t.Errorf("update: %s", updated)
	}
	expectMarker(t, ws, num)
	// Nor may a filter name a hidden column: it would tell its value.
	for _, col := range []string{"ssn", "Card_Number", "cvc", "password_hash"} {
		ws.send(map[string]any{"type": "subscribe", "channel": "customer_changes", "filter": map[string]any{col: "x"}})
		expectError(t, ws, "invalid_request")
	}
}

// Allow-list mode: only the listed columns and the primary key leave.
func TestAllowedColumnsAreAllThatLeave(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, map[string]string{"ALLOWED_COLUMNS_CUSTOMER": "Name,created_at,password_hash"})
	ws.subscribe("customer_changes")
	ws.subscribe("order_changes") // the marker
	app := appConn(t, s.DBURL, "storefront")
	exec(t, app, `INSERT INTO customers (email, name, phone, password_hash) VALUES ('a@example.com', 'A', '+1 555', 'hash-SECRET')`)
	exec(t, app, `UPDATE customers SET phone = '+1 556' WHERE email = 'a@example.com'`) // not allowed: no event
	exec(t, app, `UPDATE customers SET name = 'A2', email = 'b@example.com' WHERE email = 'a@example.com'`)
	exec(t, app, `DELETE FROM customers WHERE email = 'b@example.com'`)
	num := marker(t, app, 1)
	want := []string{"created_at", "id", "name"} // the key, and the listed columns but a secret one
	for _, action := range []string{"customer:created", "customer:updated", "customer:deleted"} {
		m := ws.read()
		if m["event"] != action {
			t.Fatalf("want %s, got %v", action, m)
		}
		data := m["data"].(map[string]any)
		delete(data, "changed_fields")
		if got := keysOf(t, data); !reflect.DeepEqual(got, want) {
			t.Errorf("%s data has %v, want %v", action, got, want)
		}
		if action == "customer:updated" && !reflect.DeepEqual(keysOf(t, m["previous"]), []string{"name"}) {
			t.Errorf("update previous: %v", m["previous"])
		}
	}
	expectMarker(t, ws, num)
	ws.send(map[string]any{"type": "subscribe", "channel": "customer_changes", "filter": map[string]any{"email": "b@example.com"}})
	expectError(t, ws, "invalid_request")
	ws.send(map[string]any{"type": "subscribe", "channel": "customer_changes", "filter": map[string]any{"id": 1, "name": "A2"}})
	if m := ws.read(); m["type"] != "subscribed" {
		t.Errorf("a filter on the key and an allowed column: %v", m)
	}
}
