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
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
)

// Users is what auth needs of the user store.
type Users interface {
	UserByEmail(ctx context.Context, email string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	// KnownClient reports whether client logged in to account since then;
	// RememberClient records that it just did.
	KnownClient(ctx context.Context, account, client string, since time.Time) (bool, error)
	RememberClient(ctx context.Context, account, client string) error
}

// knownFor is how long a client that logged in to an account stays known:
// exempt from the account's ceiling.
const knownFor = 30 * 24 * time.Hour

// Errors of Login.
var (
	ErrInvalidCredentials = errors.New("invalid email or password")
	ErrThrottled          = errors.New("too many failed attempts")
	ErrBadEmail           = errors.New("the email is not a valid address")
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

// LoginLimits are the login throttle's limits, after OWASP's Authentication
// Cheat Sheet: failures of one account from one address (Pair) are limited
// tightly, so that a stranger elsewhere cannot lock a user out; failures from
// one address over all accounts (Address), and a much higher ceiling on the
// failures of one account from everywhere (Account), bound distributed guessing.
// Hashes password checks run at once, HashQueue more may wait for one; beyond
// that a login is refused at once with ErrBusy.
type LoginLimits struct {
	Pair, Address, Account Limit
	Hashes, HashQueue      int
}

// Service logs admins in and out and resolves sessions.
type Service struct {
	Sessions *scs.SessionManager
	users    Users
	log      *slog.Logger
	limits   LoginLimits
	throttle *Throttle
	hashes   *gate
}

// NewService returns the auth service on store (a scs store, e.g. pgxstore).
func NewService(users Users, store scs.Store, cfg SessionConfig, limits LoginLimits, log *slog.Logger) *Service {
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
		Sessions: sm,
		users:    users,
		log:      log,
		limits:   limits,
		throttle: NewThrottle(),
		hashes:   newGate(limits.Hashes, limits.HashQueue),
	}
}

// Login checks the credentials and, when they hold, renews the session token
// and stores the user in the session of ctx. An unknown email and a wrong
// password give the same error after the same work.
//
// The guess is reserved from the throttle before anything is checked (a
// *ThrottledError when one of its limits is spent: even the right password is
// refused then), and the check waits for one of the limited password-check
// slots (ErrBusy when they and their queue are full). A wrong guess keeps its
// reservation; a right one resets the failures of its account at its address
// and gives back what it took of the others.
func (s *Service) Login(ctx context.Context, email, password, clientAddr string) (User, error) {
	email = strings.TrimSpace(email)
	if !validEmail(email) {
		return User{}, ErrBadEmail
	}
	account, client := strings.ToLower(email), AddressKey(clientAddr)
	pair := Key{Name: "pair:" + client + " " + account, Limit: s.limits.Pair, ResetOnSuccess: true}
	address := Key{Name: "address:" + client, Limit: s.limits.Address}
	guess, wait := s.throttle.Reserve(pair, address, Key{Name: "account:" + account, Limit: s.limits.Account})
	ceiling := false
	if wait > 0 {
		// Refused by the account's ceiling alone? Then a client that logged
		// in to it before may still try: strangers cannot lock it out.
		if guess, _ = s.throttle.Reserve(pair, address); guess == nil {
			return User{}, &ThrottledError{RetryAfter: wait}
		}
		ceiling = true
	}
	release, err := s.hashes.enter(ctx)
	if err != nil {
		guess.Cancel()
		return User{}, err
	}
	if ceiling {
		known, err := s.users.KnownClient(ctx, account, client, time.Now().Add(-knownFor))
		if err != nil || !known {
			release()
			guess.Cancel()
			if err != nil {
				return User{}, fmt.Errorf("looking up the client: %w", err)
			}
			return User{}, &ThrottledError{RetryAfter: wait}
		}
	}
	u, ok, err := s.check(ctx, email, password)
	release()
	if err != nil {
		guess.Cancel()
		return User{}, err
	}
	if !ok {
		guess.Failed()
		return User{}, ErrInvalidCredentials
	}
	guess.Succeeded()
	if err := s.users.RememberClient(ctx, account, client); err != nil {
		s.log.Warn("remembering the login's client failed", "err", err)
	}
	if err := s.Sessions.RenewToken(ctx); err != nil {
		return User{}, fmt.Errorf("renewing session token: %w", err)
	}
	s.Sessions.Put(ctx, userIDKey, u.ID)
	s.Sessions.Put(ctx, epochKey, u.SessionEpoch)
	return u, nil
}

// check looks the user up and compares the password, against a dummy hash for
// an unknown email. ok is false for a wrong password, an unknown or a disabled user.
func (s *Service) check(ctx context.Context, email, password string) (User, bool, error) {
	u, err := s.users.UserByEmail(ctx, email)
	hash := u.PasswordHash
	if errors.Is(err, ErrNotFound) {
		hash = dummyHash
	} else if err != nil {
		return User{}, false, fmt.Errorf("looking up user: %w", err)
	}
	ok, err := checkPassword(password, hash)
	if err != nil {
		return User{}, false, fmt.Errorf("checking password: %w", err)
	}
	return u, ok && u.ID != 0 && !u.Disabled, nil
}

// AddressKey is how the throttle names a client address: an IPv4 address (an
// IPv4-mapped IPv6 one too), or the /64 of an IPv6 address, since one host
// commonly holds a whole /64. Anything else is kept as it is.
func AddressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

// maxEmailLength is the longest address SMTP carries (RFC 5321's path limit).
const maxEmailLength = 254

// validEmail says whether email can be an account's address: not empty, not too
// long, valid UTF-8 without control characters (PostgreSQL refuses a NUL).
func validEmail(email string) bool {
	if email == "" || len(email) > maxEmailLength || !utf8.ValidString(email) {
		return false
	}
	for _, r := range email {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
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
// returns false when the session no longer exists or no longer holds (its user
// disabled, or with a new password or role).
func (s *Service) Touch(ctx context.Context, token string) (bool, error) {
	sctx, err := s.Sessions.Load(ctx, token)
	if err != nil {
		return false, fmt.Errorf("loading session: %w", err)
	}
	// A session whose user was disabled, got a new password or role (epoch)
	// or is gone is over, even if its row is still there: it is not extended,
	// and the keeper closes its sockets.
	if _, ok, err := s.Current(sctx); err != nil || !ok {
		return false, err
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
