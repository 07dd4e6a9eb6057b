package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttle limits failed logins per key (an account, a client address). Each
// failure takes a token; when none is left, logins for that key are refused
// until one refills.
type Throttle struct {
	mu    sync.Mutex
	every time.Duration
	burst int
	keys  map[string]*rate.Limiter
	now   func() time.Time
}

// NewThrottle allows burst failures, then one per every.
func NewThrottle(burst int, every time.Duration) *Throttle {
	return &Throttle{every: every, burst: burst, keys: map[string]*rate.Limiter{}, now: time.Now}
}

// Wait returns how long key must wait before trying again; zero means go ahead.
func (t *Throttle) Wait(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.keys[key]
	if !ok {
		return 0
	}
	now := t.now()
	if l.TokensAt(now) >= 1 {
		return 0
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// Fail records a failure for key.
func (t *Throttle) Fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.keys[key]
	if !ok {
		if len(t.keys) > 100000 {
			t.pruneLocked()
		}
		l = rate.NewLimiter(rate.Every(t.every), t.burst)
		t.keys[key] = l
	}
	l.AllowN(t.now(), 1)
}

// Succeed forgets the failures of key.
func (t *Throttle) Succeed(key string) {
	t.mu.Lock()
	delete(t.keys, key)
	t.mu.Unlock()
}

// pruneLocked drops keys whose limiter has refilled: they carry no state.
func (t *Throttle) pruneLocked() {
	now := t.now()
	for k, l := range t.keys {
		if l.TokensAt(now) >= float64(t.burst) {
			delete(t.keys, k)
		}
	}
}
