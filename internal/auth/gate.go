package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrBusy is returned by Login when as many password checks as allowed are
// running and as many wait: the caller should try again in a second.
var ErrBusy = errors.New("too many logins in progress")

// gate bounds the password checks: at most running at once (each holds
// HashParams.Memory of argon2id memory), and at most queued more waiting for
// one of them. Beyond that a login is refused at once, never queued, so a flood
// costs a bounded amount of memory whatever its size.
type gate struct {
	slots    chan struct{}
	admitted atomic.Int64 // running + waiting
	max      int64
}

func newGate(running, queued int) *gate {
	return &gate{slots: make(chan struct{}, max(running, 1)), max: int64(max(running, 1) + max(queued, 0))}
}

// enter waits for a slot; release gives it back. It returns ErrBusy at once when
// the gate and its queue are full, or ctx's error when ctx ends while waiting.
func (g *gate) enter(ctx context.Context) (release func(), err error) {
	if g.admitted.Add(1) > g.max {
		g.admitted.Add(-1)
		return nil, ErrBusy
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		g.admitted.Add(-1)
		return nil, fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
	return func() {
		<-g.slots
		g.admitted.Add(-1)
	}, nil
}
