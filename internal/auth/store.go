package auth

import (
	"context"
	"time"

	"github.com/alexedwards/scs/v2"
)

// HashedStore keeps sessions in an scs store under TokenHash(token) instead of
// the token itself. The cookie carries the token; the sessions table, a backup
// of it or a statement log only ever holds its SHA-256, from which no cookie
// can be made. The hash is also what the sessions trigger announces when a
// row is deleted, and what sockets are matched by.
type HashedStore struct {
	inner scs.CtxStore
}

// NewHashedStore wraps inner (pgxstore in production).
func NewHashedStore(inner scs.CtxStore) *HashedStore { return &HashedStore{inner: inner} }

// Find is part of scs.Store.
func (s *HashedStore) Find(token string) ([]byte, bool, error) {
	return s.inner.Find(TokenHash(token))
}

// Commit is part of scs.Store.
func (s *HashedStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.inner.Commit(TokenHash(token), b, expiry)
}

// Delete is part of scs.Store.
func (s *HashedStore) Delete(token string) error { return s.inner.Delete(TokenHash(token)) }

// FindCtx is part of scs.CtxStore.
func (s *HashedStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	return s.inner.FindCtx(ctx, TokenHash(token))
}

// CommitCtx is part of scs.CtxStore.
func (s *HashedStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	return s.inner.CommitCtx(ctx, TokenHash(token), b, expiry)
}

// DeleteCtx is part of scs.CtxStore.
func (s *HashedStore) DeleteCtx(ctx context.Context, token string) error {
	return s.inner.DeleteCtx(ctx, TokenHash(token))
}
