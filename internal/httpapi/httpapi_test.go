package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/alexedwards/scs/pgxstore"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/httpapi"
	"github.com/shopstream/shopstream/internal/origin"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	host     = "shop.example.com"
	self     = "https://" + host
	email    = "grace@example.com"
	password = "a long enough password"
)

// health is /readyz's view: the real database's ping, and switches for the rest.
type health struct {
	db        *postgres.DB
	draining  atomic.Bool
	listening atomic.Bool
	mu        sync.Mutex
	warnings  []string
}

func (h *health) Ping(ctx context.Context) error { return h.db.Ping(ctx) }
func (h *health) ListenerConnected() bool        { return h.listening.Load() }
func (h *health) Draining() bool                 { return h.draining.Load() }
func (h *health) Warnings() []string             { h.mu.Lock(); defer h.mu.Unlock(); return h.warnings }

// stats answers with the channels it was asked for, so a test sees what the
// handler passed.
type stats struct{}

func (stats) Stats(allowed []string) httpapi.Stats {
	return httpapi.Stats{Stats: eventsStats(allowed), ListenerUp: true}
}

type rig struct {
	url    string
	db     *postgres.DB
	health *health
	logins chan string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDB(t)
	db, err := postgres.Open(ctx, url, url, "httpapi-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, email, "Grace", "finance", hash); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := auth.NewService(db, auth.NewHashedStore(pgxstore.NewWithCleanupInterval(db.Pool, 0)),
		auth.SessionConfig{CookieName: "sid", Secure: true, IdleTimeout: time.Hour, Lifetime: 2 * time.Hour},
		auth.LoginLimits{Pair: auth.Limit{Burst: 2, Every: time.Hour}, Address: auth.Limit{Burst: 50, Every: time.Hour},
			Account: auth.Limit{Burst: 50, Every: time.Hour}, Hashes: 2, HashQueue: 4}, log)
	policy, err := origin.New([]string{self}, nil, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{db: db, health: &health{db: db}, logins: make(chan string, 100)}
	r.health.listening.Store(true)
	socket := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Has("panic") {
			panic("socket handler broke")
		}
		w.WriteHeader(http.StatusTeapot)
	})
	e := httpapi.New(httpapi.Deps{
		Auth: svc, Socket: socket, Health: r.health, Stats: stats{}, Roles: db,
		Logins:         func(outcome string) { r.logins <- outcome },
		Static:         fstest.MapFS{"index.html": {Data: []byte("<h1>dashboard</h1>")}, "client.d.ts": {Data: []byte("export {}")}},
		OriginsAllowed: policy, MaxBodyBytes: 2048, Log: log,
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// call sends a request as the dashboard at https://shop.example.com would.
func (r *rig) call(t *testing.T, method, path, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", self)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"body": string(b)}
	}
	return resp, m
}

func cookieOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "sid" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("no session cookie: %v", resp.Header["Set-Cookie"])
	return ""
}

func wantError(t *testing.T, what string, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || m["error"] != code || m["message"] == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: %d %v (%s), want %d {error: %s, message}", what, resp.StatusCode, m, resp.Header.Get("Content-Type"), status, code)
	}
}

func loginBody(email, password string) string {
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return string(b)
}

// TestLoginMeLogout: the REST auth flow and its refusals, each mapped to its
// status and code, with the login outcomes counted.
func TestLoginMeLogout(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	resp, m := r.call(t, "GET", "/api/auth/me", "")
	wantError(t, "me before login", resp, m, 401, "unauthorized")
	resp, m = r.call(t, "GET", "/api/v1/ws/stats", "")
	wantError(t, "stats before login", resp, m, 401, "unauthorized")

	for _, tc := range []struct {
		what, body string
		header     []string
		status     int
		code       string
	}{
		{"form body", "email=a&password=b", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"not JSON", "{", nil, 400, "bad_request"},
		{"unknown field", `{"email":"a@b.c","password":"x","admin":true}`, nil, 400, "bad_request"},
		{"no password", `{"email":"a@b.c"}`, nil, 400, "bad_request"},
		{"control character in email", loginBody("a\u0001@b.c", "x"), nil, 400, "bad_request"},
		{"another site", loginBody(email, password), []string{"Origin", "https://evil.example"}, 403, "cross_site_request"},
		{"another site, no Origin", loginBody(email, password), []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}, 403, "cross_site_request"},
		{"body past HTTP_MAX_BODY_BYTES", loginBody(email, strings.Repeat("x", 3000)), nil, 413, "body_too_large"},
		{"unknown Host", loginBody(email, password), []string{"Host", "rebound.example"}, 421, "unknown_host"},
	} {
		hdr := tc.header
		req := func() (*http.Response, map[string]any) {
			if len(hdr) == 2 && hdr[0] == "Host" {
				return r.callHost(t, hdr[1], "POST", "/api/auth/login", tc.body)
			}
			return r.call(t, "POST", "/api/auth/login", tc.body, hdr...)
		}
		resp, m := req()
		wantError(t, tc.what, resp, m, tc.status, tc.code)
	}
	if len(r.logins) != 0 {
		t.Errorf("refused before the check, yet %d login outcomes counted", len(r.logins))
	}

	resp, m = r.call(t, "POST", "/api/auth/login", loginBody(email, "wrong password"))
	wantError(t, "wrong password", resp, m, 401, "invalid_credentials")
	if got := <-r.logins; got != "invalid" {
		t.Errorf("wrong password counted as %q", got)
	}

	resp, m = r.call(t, "POST", "/api/auth/login", loginBody(email, password))
	user, _ := m["user"].(map[string]any)
	if resp.StatusCode != 200 || user["email"] != email || user["role"] != "finance" || len(user) != 4 {
		t.Fatalf("login: %d %v, want the user's id, email, name and role alone", resp.StatusCode, m)
	}
	if got := <-r.logins; got != "success" {
		t.Errorf("login counted as %q", got)
	}
	cookie := cookieOf(t, resp)
	if resp, m := r.call(t, "GET", "/api/auth/me", "", "Cookie", cookie); resp.StatusCode != 200 || m["user"].(map[string]any)["email"] != email {
		t.Errorf("me: %d %v", resp.StatusCode, m)
	}
	if vary := resp.Header.Values("Vary"); !slices.Contains(vary, "Cookie") {
		t.Errorf("Vary %q: want Cookie (responses differ by session)", vary)
	}
	// stats asks the source for the role's channels alone.
	resp, m = r.call(t, "GET", "/api/v1/ws/stats", "", "Cookie", cookie)
	data, _ := m["data"].(map[string]any)
	if resp.StatusCode != 200 || m["success"] != true || !equalAny(data["activeChannels"], "order_changes", "transaction_changes") {
		t.Errorf("stats as finance: %d %v, want the finance role's channels", resp.StatusCode, m)
	}

	if resp, _ := r.call(t, "POST", "/api/auth/logout", "", "Cookie", cookie, "Content-Type", ""); resp.StatusCode != 204 {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	resp, m = r.call(t, "GET", "/api/auth/me", "", "Cookie", cookie)
	wantError(t, "me after logout", resp, m, 401, "unauthorized")
}

func (r *rig) callHost(t *testing.T, h, method, path, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://"+h)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

func equalAny(v any, want ...string) bool {
	list, _ := v.([]any)
	if len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}

// TestThrottledLoginSaysWhenToRetry: past the pair limit, 429 with a
// Retry-After in whole seconds, even for the right password.
func TestThrottledLoginSaysWhenToRetry(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for range 2 {
		r.call(t, "POST", "/api/auth/login", loginBody(email, "wrong password"))
	}
	resp, m := r.call(t, "POST", "/api/auth/login", loginBody(email, password))
	wantError(t, "right password past the limit", resp, m, 429, "too_many_attempts")
	if ra := resp.Header.Get("Retry-After"); ra == "" || strings.Trim(ra, "0123456789") != "" || ra == "0" {
		t.Errorf("Retry-After %q: want a positive number of seconds", ra)
	}
	if _, ok := resp.Header["Set-Cookie"]; ok {
		t.Errorf("a refused login set a cookie: %v", resp.Header["Set-Cookie"])
	}
}

// TestEdge: the probes, the error handler for routing errors and panics,
// the security headers on every response, the body limit by Content-Length,
// the Host check, and the static files.
func TestEdge(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	resp, m := r.call(t, "GET", "/healthz", "")
	if resp.StatusCode != 200 || m["status"] != "ok" {
		t.Errorf("healthz: %d %v", resp.StatusCode, m)
	}
	if resp, m := r.call(t, "HEAD", "/healthz", ""); resp.StatusCode != 200 || m["body"] != "" {
		t.Errorf("HEAD healthz: %d %v", resp.StatusCode, m)
	}
	for _, hdr := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if resp.Header.Get(hdr) == "" {
			t.Errorf("healthz lacks %s", hdr)
		}
	}
	// The probes answer under any Host (the load balancer's), the rest only under PUBLIC_URL's.
	if resp, _ := r.callHost(t, "10.1.2.3:8080", "GET", "/readyz", ""); resp.StatusCode != 200 {
		t.Errorf("readyz under the pod's address: %d", resp.StatusCode)
	}
	resp, m = r.callHost(t, "10.1.2.3:8080", "GET", "/api/auth/me", "")
	wantError(t, "me under another Host", resp, m, 421, "unknown_host")

	resp, m = r.call(t, "GET", "/readyz", "")
	if resp.StatusCode != 200 || m["status"] != "ready" || m["warnings"] != nil {
		t.Errorf("readyz: %d %v", resp.StatusCode, m)
	}
	r.health.mu.Lock()
	r.health.warnings = []string{"public.orders has no capture triggers"}
	r.health.mu.Unlock()
	if _, m := r.call(t, "GET", "/readyz", ""); !equalAny(m["warnings"], "public.orders has no capture triggers") {
		t.Errorf("readyz with a warning: %v", m)
	}
	r.health.listening.Store(false)
	resp, m = r.call(t, "GET", "/readyz", "")
	wantError(t, "readyz, listener down", resp, m, 503, "not_ready")
	r.health.listening.Store(true)
	r.health.draining.Store(true)
	resp, m = r.call(t, "GET", "/readyz", "")
	wantError(t, "readyz, draining", resp, m, 503, "not_ready")
	if m["message"] != "shutting down" {
		t.Errorf("draining: %v", m)
	}

	resp, m = r.call(t, "GET", "/api/nothing-here", "")
	wantError(t, "unknown API route", resp, m, 404, "not_found")
	resp, m = r.call(t, "PUT", "/healthz", "")
	wantError(t, "PUT healthz", resp, m, 405, "method_not_allowed")
	resp, m = r.call(t, "GET", "/ws?panic=1", "")
	wantError(t, "a panicking handler", resp, m, 500, "internal_error")
	if strings.Contains(m["message"].(string), "broke") {
		t.Errorf("the panic's value reached the client: %v", m)
	}
	if resp, _ := r.call(t, "GET", "/ws", ""); resp.StatusCode != http.StatusTeapot {
		t.Errorf("/ws: %d, want the socket handler's answer", resp.StatusCode)
	}

	big := bytes.Repeat([]byte("x"), 4096)
	req, _ := http.NewRequest("POST", r.url+"/api/auth/logout", bytes.NewReader(big))
	req.Host = host
	req.Header.Set("Origin", self)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || !resp.Close {
		t.Errorf("4 KiB body over a 2 KiB limit: %d, connection closed %v; want 413 and close", resp.StatusCode, resp.Close)
	}

	if resp, m := r.call(t, "GET", "/", ""); resp.StatusCode != 200 || m["body"] != "<h1>dashboard</h1>" {
		t.Errorf("the dashboard: %d %v", resp.StatusCode, m)
	}
	if resp, _ := r.call(t, "GET", "/client.d.ts", ""); resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("client.d.ts served as %q", resp.Header.Get("Content-Type"))
	}
}

func TestNewRefusesNoBodyLimit(t *testing.T) {
	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(string), "MaxBodyBytes") {
			t.Errorf("New without MaxBodyBytes: recovered %v, want a panic naming it", v)
		}
	}()
	httpapi.New(httpapi.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func eventsStats(allowed []string) events.Stats { return events.Stats{ActiveChannels: allowed} }
