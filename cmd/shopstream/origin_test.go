package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// handshake dials /ws with the client's cookie, Origin and Host, and returns
// the HTTP status (101 when upgraded) and, when upgraded, the first message.
func handshake(t *testing.T, s *testServer, c *http.Client, origin, host string) (int, string) {
	t.Helper()
	opts := &websocket.DialOptions{HTTPClient: c, Host: host, HTTPHeader: http.Header{}}
	if origin != "" {
		opts.HTTPHeader.Set("Origin", origin)
	}
	if host != "" && c.Jar != nil {
		// The jar picks cookies by Host; send the session's whatever the Host.
		u, _ := url.Parse(s.URL)
		if cks := c.Jar.Cookies(u); len(cks) > 0 {
			opts.HTTPHeader.Set("Cookie", cks[0].String())
		}
	}
	conn, resp, err := websocket.Dial(waitfor.Context(t), "ws"+strings.TrimPrefix(s.URL, "http")+"/ws", opts)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode, ""
	}
	defer conn.CloseNow()
	_, b, err := conn.Read(waitfor.Context(t))
	if err != nil {
		return http.StatusSwitchingProtocols, err.Error() // upgraded, then closed (no session)
	}
	return http.StatusSwitchingProtocols, string(b)
}

// post sends a POST with the given headers (no body unless given) and returns
// its status and error code.
func post(t *testing.T, c *http.Client, u, body string, hdr map[string]string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(http.MethodPost, u, r)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOriginSchemeAndWildcards: the socket and the REST POSTs take the same
// decision (internal/origin): in production only https origins (http ones
// too with COOKIE_SECURE=false), a wildcard matches one label; in
// development localhost and 127.0.0.1 are one host.
func TestOriginSchemeAndWildcards(t *testing.T) {
	t.Parallel()
	t.Run("development", func(t *testing.T) {
		t.Parallel()
		s, c, _ := setup(t, map[string]string{"ALLOWED_ORIGINS": "*.example.com"})
		u, _ := url.Parse(s.URL)
		port := u.Port()
		for origin, want := range map[string]int{
			"http://127.0.0.1:" + port:     101,
			"http://localhost:" + port:     101, // the printed 127.0.0.1 page, a socket to localhost
			"http://localhost:1" + port:    403,
			"https://a.example.com":        101,
			"http://a.example.com":         101, // development: http too
			"https://a.b.example.com":      403, // one label only
			"https://example.com":          403,
			"https://a.example.com.evil.x": 403,
			"null":                         403,
		} {
			if got, _ := handshake(t, s, c, origin, ""); got != want {
				t.Errorf("socket from %s: %d, want %d", origin, got, want)
			}
		}
		// A socket to localhost from the 127.0.0.1 page.
		if got, msg := handshake(t, s, c, "http://127.0.0.1:"+port, "localhost:"+port); got != 101 || !strings.Contains(msg, `"connected"`) {
			t.Errorf("socket to localhost from the 127.0.0.1 page: %d %s", got, msg)
		}
	})
	t.Run("production", func(t *testing.T) {
		t.Parallel()
		// Secure cookies: the jar does not send them over http, so the
		// sockets below are upgraded (the origin passed) and then closed 1008.
		s := startServer(t, pgtest.NewDB(t), map[string]string{"SHOPSTREAM_ENV": "production",
			"ALLOWED_ORIGINS": "*.example.com,http://legacy.example.net"})
		createAdmin(t, s.DBURL, "admin@example.com", "admin")
		c := login(t, s, "admin@example.com", testPassword)
		host := strings.TrimPrefix(s.URL, "http://")
		for _, tc := range []struct {
			origin string
			want   bool
		}{
			{"https://" + host, true},
			{"http://" + host, false}, // the scheme counts, not only the host
			{"https://a.example.com", true},
			{"http://a.example.com", false},
			{"https://a.b.example.com", false},
			{"http://legacy.example.net", true},
			{"https://legacy.example.net", false},
		} {
			wantWS, wantPOST := 403, 403
			if tc.want {
				wantWS, wantPOST = 101, 400 // a login without a body is a bad request, past the origin check
			}
			if got, _ := handshake(t, s, c, tc.origin, ""); got != wantWS {
				t.Errorf("socket from %s: %d, want %d", tc.origin, got, wantWS)
			}
			if got, body := post(t, c, s.URL+"/api/auth/login", "{}", map[string]string{"Origin": tc.origin, "Content-Type": "application/json"}); got != wantPOST {
				t.Errorf("login from %s: %d %s, want %d", tc.origin, got, body, wantPOST)
			}
		}
	})
}

// TestPlainHTTPProduction: with COOKIE_SECURE=false (clients on plain HTTP,
// an internal network) the service's own http origin is allowed, as before.
func TestPlainHTTPProduction(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, map[string]string{"SHOPSTREAM_ENV": "production", "COOKIE_SECURE": "false"})
	if got, msg := handshake(t, s, c, s.URL, ""); got != 101 || !strings.Contains(msg, `"connected"`) {
		t.Errorf("socket from the own http origin: %d %s", got, msg)
	}
	if got, _ := handshake(t, s, c, "http://evil.example", ""); got != 403 {
		t.Errorf("socket from a foreign http origin: %d, want 403", got)
	}
}

// TestPublicURLChecksHost: with PUBLIC_URL set, a request whose Host is not
// listed (DNS rebinding) gets 421, the socket included; the probes answer
// any Host; the public origin is the service's own.
func TestPublicURLChecksHost(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), map[string]string{"PUBLIC_URL": "https://shop.example.com, http://localhost"})
	createAdmin(t, s.DBURL, "admin@example.com", "admin")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: waitfor.Deadline}
	if got, body := post(t, c, s.URL+"/api/auth/login", `{"email":"admin@example.com","password":"`+testPassword+`"}`,
		map[string]string{"Host": "shop.example.com", "Content-Type": "application/json", "Origin": "https://shop.example.com"}); got != 200 {
		t.Fatalf("login under the public name: %d %s", got, body)
	}
	// The jar keeps the cookie under the public name; the tests below send it
	// to 127.0.0.1 under any Host.
	pub, _ := url.Parse("https://shop.example.com/")
	jar.SetCookies(mustURL(s.URL), jar.Cookies(pub))
	get := func(path, host string) int {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path, host string
		want       int
	}{
		{"/api/auth/me", "rebound.evil.example", 421},
		{"/", "rebound.evil.example", 421},
		{"/metrics", "rebound.evil.example", 421},
		{"/api/auth/me", "shop.example.com", 0},
		{"/api/auth/me", "localhost", 0},
		{"/api/auth/me", "127.0.0.1", 0}, // development: one loopback host
		{"/healthz", "10.0.0.7:3000", 200},
		{"/readyz", "10.0.0.7:3000", 200},
	} {
		if got := get(tc.path, tc.host); got != tc.want && (tc.want != 0 || got == 421) {
			t.Errorf("GET %s with Host %s: %d, want %d (0: anything but 421)", tc.path, tc.host, got, tc.want)
		}
	}
	if got, _ := handshake(t, s, c, "", "rebound.evil.example"); got != 421 {
		t.Errorf("socket with an unlisted Host: %d, want 421", got)
	}
	if got, _ := handshake(t, s, c, "https://shop.example.com", "shop.example.com"); got != 101 {
		t.Errorf("socket from the public origin: %d, want 101", got)
	}
	// The request's own Host is no longer enough: the public URLs are the origins.
	if got, _ := handshake(t, s, c, "https://other.example", "other.example"); got != 421 {
		t.Errorf("socket from an unlisted host: %d, want 421", got)
	}
	if got, _ := handshake(t, s, c, "http://shop.example.com", "shop.example.com"); got != 403 {
		t.Errorf("socket from the public host over http: %d, want 403", got)
	}
}

// TestLogoutWithoutBody: curl -X POST -b cookies …/logout works (204, the
// session ends), while cross-site logouts and form logins stay refused.
func TestLogoutWithoutBody(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, nil)
	other := login(t, s, "admin@example.com", testPassword)
	// Cross-site attempts, each refused with 403 and the session kept.
	for _, hdr := range []map[string]string{
		{"Origin": "https://evil.example"},
		{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "cross-site"}, // no Origin: CrossOriginProtection decides
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "null"},
		{"Origin": "https://" + strings.TrimPrefix(s.URL, "http://") + ".evil.example"},
	} {
		if got, body := post(t, c, s.URL+"/api/auth/logout", "", hdr); got != 403 || !strings.Contains(body, "cross_site_request") {
			t.Errorf("logout with %v: %d %s, want 403 cross_site_request", hdr, got, body)
		}
	}
	// A cross-site HTML form cannot log in: refused by origin, and by type.
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	if got, _ := post(t, http.DefaultClient, s.URL+"/api/auth/login", "email=admin%40example.com&password=x", form); got != 403 {
		t.Errorf("cross-site form login: %d, want 403", got)
	}
	form = map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": s.URL, "Sec-Fetch-Site": "same-origin"}
	if got, _ := post(t, http.DefaultClient, s.URL+"/api/auth/login", "email=admin%40example.com&password=x", form); got != 415 {
		t.Errorf("same-origin form login: %d, want 415", got)
	}
	// The dashboard's own logout (same origin, JSON) and curl's (nothing) both work.
	if got, body := post(t, other, s.URL+"/api/auth/logout", "{}", map[string]string{"Origin": s.URL, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}); got != 204 {
		t.Errorf("same-origin logout: %d %s", got, body)
	}
	if got, body := post(t, c, s.URL+"/api/auth/logout", "", nil); got != 204 {
		t.Fatalf("logout without body or Content-Type: %d %s, want 204", got, body)
	}
	if code, _ := ws.expectClose(); code != websocket.StatusPolicyViolation {
		t.Errorf("socket after logout: %d, want 1008", code)
	}
	resp, err := c.Get(s.URL + "/api/auth/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("me after logout: %d, want 401", resp.StatusCode)
	}
}
