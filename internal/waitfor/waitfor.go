// Package waitfor is how the tests wait: for a condition to hold, polled with
// a deadline generous enough for a loaded machine, or for a channel or a read
// under the same deadline. A test never sleeps to let something happen and
// never races a short fixed timeout: a busy machine may slow it, not break it.
//
// Deadline bounds anything whose speed depends on the machine's load. A test
// that asserts that the product does something within its own documented bound
// (a socket closed "within a second") measures that bound itself, against the
// product's clock; this package only bounds how long a test may hang.
package waitfor

import (
	"context"
	"testing"
	"time"
)

// Deadline is how long a test waits for anything before it fails: far beyond
// what a loaded two-core machine under the race detector needs.
const Deadline = 2 * time.Minute

// Context returns a context that ends after Deadline (or with the test).
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Deadline)
	t.Cleanup(cancel)
	return ctx
}

// Until polls cond until it returns true, failing the test with what when it
// has not after Deadline. Polls start at 5 ms apart and back off to 100 ms.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if err := UntilContext(context.Background(), cond); err != nil {
		t.Fatalf("waited %v for %s", Deadline, what)
	}
}

// UntilContext polls cond until it returns true, ctx ends, or Deadline passes;
// it returns nil once cond held. It is Until for goroutines other than the
// test's own (which must not call t.Fatal).
func UntilContext(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, Deadline)
	defer cancel()
	pause := 5 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		t.Reset(pause)
		select {
		case <-ctx.Done():
			if cond() {
				return nil
			}
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// Receive returns the next value from ch, failing the test with what when none
// comes within Deadline.
func Receive[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(Deadline)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %v for %s", Deadline, what)
		panic("unreachable")
	}
}
