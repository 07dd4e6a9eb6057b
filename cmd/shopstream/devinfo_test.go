package main

import "testing"

// The URL serve --dev prints names the role it logs in as (psql would use the
// OS user's name otherwise) and never shows a password.
func TestWithRole(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
		hidden   bool
	}{
		{"postgres://127.0.0.1:5432/shop?sslmode=disable", "postgres://app@127.0.0.1:5432/shop?sslmode=disable", false},
		{"postgres://postgres@127.0.0.1:5432/shopstream?sslmode=disable", "postgres://postgres@127.0.0.1:5432/shopstream?sslmode=disable", false},
		{"postgresql://owner:s3cret@db.internal/shop", "postgresql://owner:xxxxx@db.internal/shop", true},
		{"host=/tmp dbname=shop", "host=/tmp dbname=shop", false},
	} {
		got, hidden := withRole(c.in, "app")
		if got != c.want || hidden != c.hidden {
			t.Errorf("withRole(%q) = %q, %t; want %q, %t", c.in, got, hidden, c.want, c.hidden)
		}
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote: %s", got)
	}
}
