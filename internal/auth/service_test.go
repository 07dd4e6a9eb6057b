package auth_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/labstack/echo/v4"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	email    = "Ada@Example.com"
	password = "correct horse battery"
)

// rig is an auth.Service on its own database, with one admin.
type rig struct {
	db    *postgres.DB
	svc   *auth.Service
	store *countingStore
	user  auth.User
}

// countingStore is the real pgxstore (behind auth's hashing) counting commits.
type countingStore struct {
	*auth.HashedStore
	commits atomic.Int32
}

func (s *countingStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	s.commits.Add(1)
	return s.HashedStore.CommitCtx(ctx, token, b, expiry)
}

func newRig(t *testing.T, limits auth.LoginLimits) *rig {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	db, err := postgres.Open(ctx, url, url, "auth-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.CreateUser(ctx, email, "Ada", "support", hash)
	if err != nil {
		t.Fatal(err)
	}
	if limits.Hashes == 0 {
		limits = auth.LoginLimits{Pair: auth.Limit{Burst: 3, Every: time.Hour}, Address: auth.Limit{Burst: 100, Every: time.Hour},
			Account: auth.Limit{Burst: 100, Every: time.Hour}, Hashes: 2, HashQueue: 4}
	}
	store := &countingStore{HashedStore: auth.NewHashedStore(pgxstore.NewWithCleanupInterval(db.Pool, 0))}
	svc := auth.NewService(db, store, auth.SessionConfig{CookieName: "sid", Secure: true, IdleTimeout: time.Hour, Lifetime: 2 * time.Hour},
		limits, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return &rig{db: db, svc: svc, store: store, user: u}
}

// server serves the service's middleware around login, me, logout, and a
// handler that changes the session and then fails.
func (r *rig) server(t *testing.T) (*httptest.Server, *http.Client) {
	t.Helper()
	e := echo.New()
	g := e.Group("", r.svc.Middleware)
	g.POST("/login", func(c echo.Context) error {
		u, err := r.svc.Login(c.Request().Context(), c.FormValue("email"), c.FormValue("password"), "192.0.2.1")
		if err != nil {
			return echo.NewHTTPError(http.StatusUnauthorized, err.Error())
		}
		return c.String(http.StatusOK, u.Email)
	})
	g.GET("/me", func(c echo.Context) error {
		u, ok, err := r.svc.Current(c.Request().Context())
		if err != nil {
			return err
		}
		if !ok {
			return c.String(http.StatusUnauthorized, "anonymous")
		}
		return c.String(http.StatusOK, u.Email)
	})
	g.POST("/logout", func(c echo.Context) error {
		if err := r.svc.Logout(c.Request().Context()); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	g.POST("/visit-then-fail", func(c echo.Context) error {
		r.svc.Sessions.Put(c.Request().Context(), "visited", true)
		return errors.New("failed after changing the session")
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return srv, &http.Client{Jar: jar}
}

func post(t *testing.T, c *http.Client, u string, form url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func body(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "sid" {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", resp.Header["Set-Cookie"])
	return nil
}

func TestPasswordHashing(t *testing.T) {
	if _, err := auth.HashPassword("short"); !errors.Is(err, auth.ErrWeakPassword) {
		t.Errorf("a 5-character password: err = %v, want ErrWeakPassword", err)
	}
	a, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := auth.HashPassword(password)
	if a == b || !strings.HasPrefix(a, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hashes %q and %q: want salted argon2id with OWASP's parameters", a, b)
	}
	if strings.Contains(a, password) {
		t.Error("the hash contains the password")
	}
}

// TestLoginSessionLogout: through the middleware, a login sets an HttpOnly,
// Secure, SameSite=Lax session cookie with a new token, the session names the
// user, its row is stored under the token's hash, and logout ends it.
func TestLoginSessionLogout(t *testing.T) {
	t.Parallel()
	r := newRig(t, auth.LoginLimits{})
	srv, c := r.server(t)
	ctx := context.Background()

	if code, _ := body(t, c, srv.URL+"/me"); code != http.StatusUnauthorized {
		t.Fatalf("before login: /me %d", code)
	}
	before := post(t, c, srv.URL+"/visit-then-fail", nil)
	if before.StatusCode != http.StatusInternalServerError {
		t.Fatalf("visit-then-fail: %d", before.StatusCode)
	}
	// The failing handler's change is committed once, and its cookie sent.
	anon := sessionCookie(t, before)
	if n := r.store.commits.Load(); n != 1 {
		t.Errorf("a handler that changed the session and failed: %d commits, want 1", n)
	}

	resp := post(t, c, srv.URL+"/login", url.Values{"email": {"  ada@example.COM "}, "password": {password}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	ck := sessionCookie(t, resp)
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != 0 || !ck.Expires.IsZero() {
		t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/, a browser-session cookie", ck)
	}
	if ck.Value == anon.Value {
		t.Error("login kept the anonymous session's token (session fixation)")
	}
	if code, who := body(t, c, srv.URL+"/me"); code != http.StatusOK || who != email {
		t.Fatalf("after login: /me %d %q", code, who)
	}

	var raw, hashed int
	if err := r.db.Pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE token = $1), count(*) FILTER (WHERE token = $2) FROM shopstream.sessions",
		ck.Value, auth.TokenHash(ck.Value)).Scan(&raw, &hashed); err != nil {
		t.Fatal(err)
	}
	if raw != 0 || hashed != 1 {
		t.Errorf("sessions rows: %d under the raw token, %d under its hash; want 0 and 1", raw, hashed)
	}
	if u, ok, err := r.svc.Resolve(ctx, ck.Value); err != nil || !ok || u.ID != r.user.ID {
		t.Errorf("Resolve(cookie) = %v %v %v", u.ID, ok, err)
	}

	if resp := post(t, c, srv.URL+"/logout", nil); resp.StatusCode != http.StatusNoContent || sessionCookie(t, resp).MaxAge >= 0 {
		t.Fatalf("logout: %d, cookie %v: want 204 and the cookie cleared", resp.StatusCode, resp.Header["Set-Cookie"])
	}
	if _, ok, err := r.svc.Resolve(ctx, ck.Value); err != nil || ok {
		t.Errorf("Resolve after logout: ok %v err %v, want not ok", ok, err)
	}
	if code, _ := body(t, c, srv.URL+"/me"); code != http.StatusUnauthorized {
		t.Errorf("after logout: /me %d", code)
	}
}

// login returns the token of a new session of the rig's user.
func (r *rig) login(t *testing.T) string {
	t.Helper()
	ctx, err := r.svc.Sessions.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Login(ctx, email, password, "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	token, _, err := r.svc.Sessions.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestSessionEndsWithTheUsersEpoch: a session holds while its user is
// enabled and keeps the epoch it was made in; disabling, a new password or
// a new role ends it (Resolve and Touch say so), a new login holds again.
func TestSessionEndsWithTheUsersEpoch(t *testing.T) {
	t.Parallel()
	r := newRig(t, auth.LoginLimits{})
	ctx := context.Background()
	for _, end := range []struct {
		name string
		do   func() error
	}{
		{"disabled", func() error { _, err := r.db.SetDisabled(ctx, email, true); return err }},
		{"new password", func() error {
			h, _ := auth.HashPassword(password)
			_, err := r.db.SetPasswordHash(ctx, email, h)
			return err
		}},
		{"new role", func() error { _, err := r.db.SetRole(ctx, email, "finance"); return err }},
	} {
		token := r.login(t)
		if ok, err := r.svc.Touch(ctx, token); err != nil || !ok {
			t.Fatalf("%s: Touch before: %v %v", end.name, ok, err)
		}
		if err := end.do(); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := r.svc.Resolve(ctx, token); err != nil || ok {
			t.Errorf("%s: Resolve = %v %v, want the session over", end.name, ok, err)
		}
		if ok, err := r.svc.Touch(ctx, token); err != nil || ok {
			t.Errorf("%s: Touch = %v %v, want false", end.name, ok, err)
		}
		if _, err := r.db.SetDisabled(ctx, email, false); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := r.svc.Touch(ctx, "no-such-token"); err != nil || ok {
		t.Errorf("Touch(unknown token) = %v %v", ok, err)
	}
	if _, ok, err := r.svc.Resolve(ctx, ""); err != nil || ok {
		t.Errorf("Resolve(\"\") = %v %v", ok, err)
	}
}

// TestTouchExtendsTheSession: Touch moves the row's expiry forward.
func TestTouchExtendsTheSession(t *testing.T) {
	t.Parallel()
	r := newRig(t, auth.LoginLimits{})
	ctx := context.Background()
	token := r.login(t)
	expiry := func() (e time.Time) {
		if err := r.db.Pool.QueryRow(ctx, "SELECT expiry FROM shopstream.sessions WHERE token = $1", auth.TokenHash(token)).Scan(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Backdate the row's expiry, as if the session had idled.
	if _, err := r.db.Pool.Exec(ctx, "UPDATE shopstream.sessions SET expiry = now() + interval '1 minute' WHERE token = $1", auth.TokenHash(token)); err != nil {
		t.Fatal(err)
	}
	before := expiry()
	if ok, err := r.svc.Touch(ctx, token); err != nil || !ok {
		t.Fatalf("Touch: %v %v", ok, err)
	}
	if after := expiry(); !after.After(before.Add(30 * time.Minute)) {
		t.Errorf("expiry %v after Touch, was %v: want it an idle timeout (1h) away", after, before)
	}
}

// TestLoginRefusals: a bad email, a wrong password, an unknown email and a
// disabled user are refused; the pair limit throttles, even the right password.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	r := newRig(t, auth.LoginLimits{})
	ctx, err := r.svc.Sessions.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "   ", "a\x00b@example.com", strings.Repeat("a", 250) + "@x.io"} {
		if _, err := r.svc.Login(ctx, bad, password, "203.0.113.9"); !errors.Is(err, auth.ErrBadEmail) {
			t.Errorf("email %q: err = %v, want ErrBadEmail", bad, err)
		}
	}
	if _, err := r.svc.Login(ctx, "nobody@example.com", password, "203.0.113.1"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("unknown email: %v", err)
	}
	if _, err := r.db.SetDisabled(ctx, email, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Login(ctx, email, password, "203.0.113.2"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("disabled user: %v", err)
	}
	if _, err := r.db.SetDisabled(ctx, email, false); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the pair's burst
		if _, err := r.svc.Login(ctx, email, "wrong password!", "203.0.113.3"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	_, err = r.svc.Login(ctx, email, password, "203.0.113.3")
	var te *auth.ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, auth.ErrThrottled) || te.RetryAfter <= 0 {
		t.Fatalf("right password after the burst: %v, want a ThrottledError with a wait", err)
	}
	if _, err := r.svc.Login(ctx, email, password, "203.0.113.4"); err != nil {
		t.Errorf("the same account from another address: %v (the pair limit is per address)", err)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"::ffff:192.0.2.1":          "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1%eth0": "2001:db8:1:2::/64",
		"not an address":            "not an address",
	} {
		if got := auth.AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPublicLeavesTheHashOut(t *testing.T) {
	u := auth.User{ID: 7, Email: "a@b.c", Name: "A", Role: "admin", PasswordHash: "$argon2id$secret", SessionEpoch: 3}
	if p := u.Public(); p != (auth.Public{ID: 7, Email: "a@b.c", Name: "A", Role: "admin"}) {
		t.Errorf("Public() = %+v", p)
	}
}
