// Package auth is who may use shopstream: admin users and their password hashes,
// login with throttling, and sessions (scs, stored in PostgreSQL) carried by an
// HttpOnly cookie.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Users is what auth needs of the user store.
type Users interface {
	UserByEmail(ctx context.Context, email string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
}

// Errors of Login.
var (
	ErrInvalidCredentials = errors.New("invalid email or password")
	ErrThrottled          = errors.New("too many failed attempts")
)

// ThrottledError says how long to wait.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string { return ErrThrottled.Error() }

// Unwrap makes errors.Is(err, ErrThrottled) work.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

const (
	userIDKey = "user_id"
	epochKey  = "epoch"
)

// SessionConfig configures sessions and their cookie.
type SessionConfig struct {
	CookieName  string
	Secure      bool
	IdleTimeout time.Duration
	Lifetime    time.Duration
}

// Service logs admins in and out and resolves sessions.
type Service struct {
	Sessions  *scs.SessionManager
	users     Users
	log       *slog.Logger
	byAccount *Throttle
	byAddress *Throttle
}

// NewService returns the auth service on store (a scs store, e.g. pgxstore).
func NewService(users Users, store scs.Store, cfg SessionConfig, log *slog.Logger) *Service {
	sm := scs.New()
	sm.Store = store
	sm.IdleTimeout = cfg.IdleTimeout
	sm.Lifetime = cfg.Lifetime
	sm.Cookie.Name = cfg.CookieName
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.Secure
	sm.Cookie.Path = "/"
	sm.Cookie.Persist = false // a browser-session cookie: the server alone decides when it ends (an open socket extends it)
	return &Service{
		Sessions:  sm,
		users:     users,
		log:       log,
		byAccount: NewThrottle(5, 30*time.Second),
		byAddress: NewThrottle(20, 5*time.Second),
	}
}

// Login checks the credentials and, when they hold, renews the session token
// and stores the user in the session of ctx. An unknown email and a wrong
// password give the same error after the same work.
func (s *Service) Login(ctx context.Context, email, password, clientAddr string) (User, error) {
	account := "account:" + strings.ToLower(strings.TrimSpace(email))
	address := "address:" + clientAddr
	if d := max(s.byAccount.Wait(account), s.byAddress.Wait(address)); d > 0 {
		return User{}, &ThrottledError{RetryAfter: d}
	}
	u, err := s.users.UserByEmail(ctx, strings.TrimSpace(email))
	hash := u.PasswordHash
	if errors.Is(err, ErrNotFound) {
		hash = dummyHash
	} else if err != nil {
		return User{}, fmt.Errorf("looking up user: %w", err)
	}
	ok, err := checkPassword(password, hash)
	if err != nil {
		return User{}, fmt.Errorf("checking password: %w", err)
	}
	if !ok || u.ID == 0 || u.Disabled {
		s.byAccount.Fail(account)
		s.byAddress.Fail(address)
		return User{}, ErrInvalidCredentials
	}
	s.byAccount.Succeed(account)
	if err := s.Sessions.RenewToken(ctx); err != nil {
		return User{}, fmt.Errorf("renewing session token: %w", err)
	}
	s.Sessions.Put(ctx, userIDKey, u.ID)
	s.Sessions.Put(ctx, epochKey, u.SessionEpoch)
	return u, nil
}

// Logout destroys the session of ctx. Deleting its row makes every instance
// close the sockets opened with it.
func (s *Service) Logout(ctx context.Context) error {
	if err := s.Sessions.Destroy(ctx); err != nil {
		return fmt.Errorf("destroying session: %w", err)
	}
	return nil
}

// Current returns the logged-in, enabled user of the session in ctx.
func (s *Service) Current(ctx context.Context) (User, bool, error) {
	id := s.Sessions.GetInt64(ctx, userIDKey)
	if id == 0 {
		return User{}, false, nil
	}
	u, err := s.users.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, false, nil
	} else if err != nil {
		return User{}, false, fmt.Errorf("looking up user: %w", err)
	}
	if u.Disabled || s.Sessions.GetInt32(ctx, epochKey) != u.SessionEpoch {
		return User{}, false, nil
	}
	return u, true, nil
}

// Resolve loads the session of a raw token (a socket's cookie) and returns its
// user. ok is false for no, expired or unknown sessions.
func (s *Service) Resolve(ctx context.Context, token string) (User, bool, error) {
	if token == "" {
		return User{}, false, nil
	}
	sctx, err := s.Sessions.Load(ctx, token)
	if err != nil {
		return User{}, false, fmt.Errorf("loading session: %w", err)
	}
	return s.Current(sctx)
}

// Touch extends the idle timeout of the session of token, as activity would. It
// returns false when the session no longer exists.
func (s *Service) Touch(ctx context.Context, token string) (bool, error) {
	sctx, err := s.Sessions.Load(ctx, token)
	if err != nil {
		return false, fmt.Errorf("loading session: %w", err)
	}
	if s.Sessions.GetInt64(sctx, userIDKey) == 0 {
		return false, nil
	}
	if _, _, err := s.Sessions.Commit(sctx); err != nil {
		return false, fmt.Errorf("committing session: %w", err)
	}
	return true, nil
}

// TokenHash is how a session token appears anywhere but its cookie and its row:
// in NOTIFY payloads and logs. It matches the sessions trigger's hash.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
