package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/shopstream/shopstream/internal/waitfor"
)

func TestGateRefusesBeyondItsSlotsAndQueue(t *testing.T) {
	g := newGate(2, 1)
	ctx := context.Background()
	r1, err1 := g.enter(ctx)
	r2, err2 := g.enter(ctx)
	if err1 != nil || err2 != nil {
		t.Fatalf("two slots: %v, %v", err1, err2)
	}
	third := make(chan func(), 1)
	go func() {
		r, err := g.enter(ctx)
		if err != nil {
			t.Errorf("queued: %v", err)
		}
		third <- r
	}()
	waitfor.Until(t, "the third login to wait in the queue", func() bool { return g.admitted.Load() == 3 })
	if _, err := g.enter(ctx); !errors.Is(err, ErrBusy) {
		t.Fatalf("slots and queue full: want ErrBusy at once, got %v", err)
	}
	r1()
	r3 := waitfor.Receive(t, "the queued login to get the freed slot", third)
	r2()
	r3()
	if n := g.admitted.Load(); n != 0 {
		t.Fatalf("admitted after all released: %d", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for range 2 {
		r, err := g.enter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer r()
	}
	if _, err := g.enter(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued with an ended context: %v", err)
	}
	if n := g.admitted.Load(); n != 2 {
		t.Fatalf("admitted after a cancelled wait: %d, want 2", n)
	}
}

func TestValidEmail(t *testing.T) {
	for email, want := range map[string]bool{
		"admin@example.com": true, "": false, "admin@example.com\x00": false, "a\nb@example.com": false,
		"\xff@example.com": false, string(make([]byte, 255)): false, "ünï@example.com": true,
	} {
		if got := validEmail(email); got != want {
			t.Errorf("validEmail(%q) = %v, want %v", email, got, want)
		}
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
		"":                     "",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
