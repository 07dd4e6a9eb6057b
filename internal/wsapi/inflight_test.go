package wsapi

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopstream/shopstream/internal/waitfor"
)

// Requests keep arriving while shutdown waits (the race a sync.WaitGroup
// reported under -race): wait returns only when every admitted member and
// every goroutine it joined has left, and nobody is admitted after wait began.
func TestInFlightWaitWhileEntering(t *testing.T) {
	for round := 0; round < 50; round++ {
		var f inFlight
		var inside, afterWait atomic.Int64
		var waited atomic.Bool
		var arrivals sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 8; i++ {
			arrivals.Add(1)
			go func() {
				defer arrivals.Done()
				<-start
				for j := 0; j < 200; j++ {
					if !f.enter() {
						continue
					}
					if waited.Load() {
						afterWait.Add(1)
					}
					inside.Add(1)
					f.join() // the socket's own goroutine
					go func() {
						inside.Add(-1)
						f.leave()
					}()
					f.leave()
				}
			}()
		}
		close(start)
		if err := f.wait(waitfor.Context(t)); err != nil {
			t.Fatalf("round %d: wait: %v", round, err)
		}
		waited.Store(true)
		if n := inside.Load(); n != 0 {
			t.Fatalf("round %d: wait returned with %d members inside", round, n)
		}
		arrivals.Wait()
		if n := afterWait.Load(); n != 0 {
			t.Fatalf("round %d: %d members admitted after wait returned", round, n)
		}
		if f.enter() {
			t.Fatalf("round %d: admitted after wait", round)
		}
	}
}

// wait gives up when its context ends while a member stays.
func TestInFlightWaitDeadline(t *testing.T) {
	var f inFlight
	if !f.enter() {
		t.Fatal("refused before wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.wait(ctx); err == nil {
		t.Fatal("wait returned nil with a member inside and its context ended")
	}
	f.leave()
	if err := f.wait(context.Background()); err != nil {
		t.Fatalf("wait after the last left: %v", err)
	}
}
