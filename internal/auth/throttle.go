package auth

import (
	"sync"
	"time"
)

// Limit is a token bucket: Burst guesses, then one more per Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// Key is one bucket a login guess draws from: its name (e.g. "pair:" + account +
// " " + address) and its limit. ResetOnSuccess empties the bucket's record when
// the guess succeeds (a user's own failures at their own address); otherwise a
// success only gives its token back.
type Key struct {
	Name           string
	Limit          Limit
	ResetOnSuccess bool
}

// maxKeys is how many buckets a Throttle keeps before it drops the full ones.
const maxKeys = 100000

// Throttle limits login guesses per key. A guess reserves a token from every one
// of its keys at once, before the password is checked, so that concurrent guesses
// cannot all pass a check made before any of them failed: exactly Burst guesses
// of a key are evaluated, concurrently or not. A failed guess keeps its tokens
// spent; a successful one gives them back (and resets the keys that say so), as
// does a guess that was never evaluated (Cancel).
//
// golang.org/x/time/rate cannot give a token back once its time has passed
// (Reservation.Cancel restores nothing then), so the buckets are kept here.
type Throttle struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	limit  Limit
	tokens float64   // at time at
	at     time.Time // when tokens was computed
}

// refill brings the bucket to now.
func (b *bucket) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(float64(b.limit.Burst), b.tokens+float64(now.Sub(b.at))/float64(b.limit.Every))
		b.at = now
	}
}

// wait is how long until the bucket holds a whole token.
func (b *bucket) wait() time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.limit.Every))
}

// NewThrottle returns an empty throttle.
func NewThrottle() *Throttle {
	return &Throttle{buckets: map[string]*bucket{}, now: time.Now}
}

// Guess is one reserved login attempt. Exactly one of Failed, Succeeded or
// Cancel ends it.
type Guess struct {
	t    *Throttle
	keys []Key
}

// Reserve takes one token from each key, or none when one of them has none left:
// then it returns how long to wait before that key has one again.
func (t *Throttle) Reserve(keys ...Key) (*Guess, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	bs := make([]*bucket, len(keys))
	for i, k := range keys {
		b, ok := t.buckets[k.Name]
		if !ok {
			b = &bucket{limit: k.Limit, tokens: float64(k.Limit.Burst), at: now}
		}
		b.limit = k.Limit
		b.refill(now)
		wait = max(wait, b.wait())
		bs[i] = b
	}
	if wait > 0 {
		return nil, wait
	}
	if len(t.buckets)+len(keys) > maxKeys {
		t.pruneLocked(now)
	}
	for i, k := range keys {
		bs[i].tokens--
		t.buckets[k.Name] = bs[i]
	}
	return &Guess{t: t, keys: keys}, 0
}

// Failed ends a guess that was evaluated and wrong: its tokens stay spent.
func (g *Guess) Failed() {}

// Succeeded ends a right guess: it gives its tokens back and resets the keys
// marked ResetOnSuccess.
func (g *Guess) Succeeded() { g.giveBack(true) }

// Cancel ends a guess that was never evaluated (no capacity to check it, the
// lookup failed): its tokens are given back.
func (g *Guess) Cancel() { g.giveBack(false) }

func (g *Guess) giveBack(success bool) {
	t := g.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range g.keys {
		b, ok := t.buckets[k.Name]
		if !ok {
			continue
		}
		if success && k.ResetOnSuccess {
			delete(t.buckets, k.Name)
			continue
		}
		b.refill(now)
		b.tokens = min(float64(b.limit.Burst), b.tokens+1)
	}
}

// pruneLocked drops the buckets that have refilled: they carry no state.
func (t *Throttle) pruneLocked(now time.Time) {
	for k, b := range t.buckets {
		b.refill(now)
		if b.tokens >= float64(b.limit.Burst) {
			delete(t.buckets, k)
		}
	}
}
