package waitfor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	Until(t, "the third poll", func() bool { return n.Add(1) >= 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("polled %d times, want exactly 3", got)
	}
}

func TestUntilContextEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	err := UntilContext(ctx, func() bool { return false })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if got := Receive(t, "a value", ch); got != 7 {
		t.Fatalf("got %d", got)
	}
}

func TestContextHasTheDeadline(t *testing.T) {
	dl, ok := Context(t).Deadline()
	if !ok || time.Until(dl) < Deadline-time.Minute {
		t.Fatalf("deadline %v (set %v)", dl, ok)
	}
}
