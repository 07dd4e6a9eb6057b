package wsapi

import (
	"context"
	"sync"
)

// inFlight counts the requests and sockets the handler is serving, so that
// shutdown can wait for them. Unlike a sync.WaitGroup it may gain members
// while wait runs: once wait has begun, enter refuses newcomers (the request
// is answered "shutting down") instead of racing the wait, and join, for a
// member's own goroutines, adds to a count that is not zero.
type inFlight struct {
	mu      sync.Mutex
	n       int
	closing bool
	zero    chan struct{} // closed when n reaches 0 after wait began
}

// enter counts a newcomer, unless wait has begun.
func (f *inFlight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.n++
	return true
}

// join counts a goroutine started by a member that is still counted, so the
// count cannot be zero and wait cannot have finished.
func (f *inFlight) join() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

// leave uncounts a member or a joined goroutine.
func (f *inFlight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.zero != nil {
		close(f.zero)
		f.zero = nil
	}
}

// wait refuses newcomers from now on and waits until the count is zero, or
// ctx ends.
func (f *inFlight) wait(ctx context.Context) error {
	f.mu.Lock()
	f.closing = true
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	if f.zero == nil {
		f.zero = make(chan struct{})
	}
	zero := f.zero
	f.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
