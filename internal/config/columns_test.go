package config

import (
	"slices"
	"strings"
	"testing"
)

func TestSecretAndAllowedColumns(t *testing.T) {
	env := map[string]string{
		"SECRET_COLUMNS":           "Loyalty_PIN, ssn",
		"SECRET_COLUMNS_CUSTOMER":  "Tax_ID,ssn",
		"ALLOWED_COLUMNS_PRODUCT":  "ID, Name ,price",
		"IGNORED_COLUMNS_SHIPMENT": "Synced_At",
	}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	get := func(entity string) Table {
		tb, ok := c.TableFor(entity)
		if !ok {
			t.Fatalf("no table for %s", entity)
		}
		return tb
	}
	builtin := splitList(DefaultSecretColumns)
	for _, name := range []string{"password_hash", "cvc", "card_number", "iban", "access_token", "client_secret"} {
		if !slices.Contains(builtin, name) {
			t.Errorf("the built-in secret columns lack %s", name)
		}
	}
	order, customer := get("order"), get("customer")
	for _, name := range append(builtin, "loyalty_pin", "ssn") {
		if !slices.Contains(order.Secret, name) {
			t.Errorf("orders: %s not secret (SECRET_COLUMNS adds to the built-in list)", name)
		}
	}
	for _, name := range append(builtin, "loyalty_pin", "ssn", "tax_id") {
		if !slices.Contains(customer.Secret, name) {
			t.Errorf("customers: %s not secret (SECRET_COLUMNS_CUSTOMER adds to both)", name)
		}
	}
	if n := len(customer.Secret); n != len(builtin)+2 { // ssn is built in
		t.Errorf("customers: %d secret columns, want %d (no repeats)", n, len(builtin)+2)
	}
	if got := get("product").Allowed; !slices.Equal(got, []string{"id", "name", "price"}) {
		t.Errorf("products allowed = %q", got)
	}
	if order.Allowed != nil {
		t.Errorf("orders: allow-list %q without ALLOWED_COLUMNS_ORDER", order.Allowed)
	}
	if got := get("shipment").Ignored; !slices.Equal(got, []string{"synced_at"}) {
		t.Errorf("shipments ignored = %q", got)
	}
}

func TestAllowedColumnsNamingNothingIsAnError(t *testing.T) {
	for _, v := range []string{",", " , ,"} {
		env := map[string]string{"ALLOWED_COLUMNS_CUSTOMER": v}
		if _, err := Load(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "ALLOWED_COLUMNS_CUSTOMER") {
			t.Errorf("ALLOWED_COLUMNS_CUSTOMER=%q: err = %v, want an error naming the variable", v, err)
		}
	}
}
