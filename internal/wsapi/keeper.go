package wsapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/shopstream/shopstream/internal/auth"
)

// Toucher extends a session's idle timeout; false means the session is gone.
type Toucher interface {
	Touch(ctx context.Context, token string) (bool, error)
}

// SessionCloser closes the sockets of a session.
type SessionCloser interface {
	SessionEnded(tokenHash string)
}

// Keeper makes an open socket count as activity: every period it touches each
// session that has a socket on this instance, and closes the sockets of a
// session that has expired (idle or absolute lifetime) with 1008.
type Keeper struct {
	mu      sync.Mutex
	tokens  map[string]int
	toucher Toucher
	closer  SessionCloser
	period  time.Duration
	log     *slog.Logger
}

// NewKeeper returns a keeper that checks every period.
func NewKeeper(toucher Toucher, closer SessionCloser, period time.Duration, log *slog.Logger) *Keeper {
	return &Keeper{tokens: map[string]int{}, toucher: toucher, closer: closer, period: period, log: log}
}

// Add counts one more socket of token.
func (k *Keeper) Add(token string) {
	k.mu.Lock()
	k.tokens[token]++
	k.mu.Unlock()
}

// Remove counts one socket of token less.
func (k *Keeper) Remove(token string) {
	k.mu.Lock()
	if k.tokens[token]--; k.tokens[token] <= 0 {
		delete(k.tokens, token)
	}
	k.mu.Unlock()
}

// Run checks every period until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	every(ctx, k.period, func() { k.check(ctx) })
}

func (k *Keeper) check(ctx context.Context) {
	k.mu.Lock()
	tokens := make([]string, 0, len(k.tokens))
	for t := range k.tokens {
		tokens = append(tokens, t)
	}
	k.mu.Unlock()
	for _, token := range tokens {
		alive, err := k.toucher.Touch(ctx, token)
		if err != nil {
			k.log.Warn("touching session failed", "err", err)
			continue
		}
		k.log.Debug("session touched", "alive", alive)
		if !alive {
			k.closer.SessionEnded(auth.TokenHash(token))
		}
	}
}
