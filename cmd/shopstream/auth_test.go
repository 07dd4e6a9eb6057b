package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

func TestSocketWithoutValidSessionCloses1008(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	cases := map[string]string{"no cookie": "", "forged cookie": "Zm9yZ2VkLXRva2VuLW5vdC1pc3N1ZWQtYnktdXM"}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			jar, _ := cookiejar.New(nil)
			if token != "" {
				u, _ := url.Parse(s.URL)
				jar.SetCookies(u, []*http.Cookie{{Name: "shopstream_session", Value: token}})
			}
			ws := dialRaw(t, s, &http.Client{Jar: jar}, nil)
			code, reason := ws.expectClose()
			if code != websocket.StatusPolicyViolation || reason != "authentication required" {
				t.Fatalf("want 1008 authentication required, got %d %q", code, reason)
			}
		})
	}
}

func TestLogoutClosesSocketsOfThatSession(t *testing.T) {
	t.Parallel()
	s, c, ws := setup(t, nil)
	other := login(t, s, "admin@example.com", testPassword) // a second session of the same user
	ws2 := dial(t, s, other)
	ws.subscribe("order_changes")
	ws2.subscribe("order_changes")

	resp := postJSON(t, c, s.URL+"/api/auth/logout", map[string]any{})
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	code, reason := ws.expectClose()
	if code != websocket.StatusPolicyViolation || reason != "session ended" {
		t.Fatalf("want 1008 session ended, got %d %q", code, reason)
	}
	// The other session's socket is untouched.
	app := appConn(t, s.DBURL, "test")
	expectMarker(t, ws2, marker(t, app, 1))
	// The logged-out cookie no longer works.
	if resp := get(t, c, s.URL+"/api/auth/me"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("me after logout: %d", resp.StatusCode)
	}
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestLoginAPI(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	type errBody struct{ Error, Message string }
	call := func(contentType, body string, hdr map[string]string) (int, errBody, *http.Response) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/auth/login", strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e errBody
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e, resp
	}
	tests := []struct {
		name, ctype, body string
		hdr               map[string]string
		status            int
		code              string
	}{
		{"form body", "application/x-www-form-urlencoded", "email=a&password=b", nil, 415, "unsupported_media_type"},
		{"malformed JSON", "application/json", `{"email":`, nil, 400, "bad_request"},
		{"missing password", "application/json", `{"email":"admin@example.com"}`, nil, 400, "bad_request"},
		{"wrong password", "application/json", `{"email":"admin@example.com","password":"not the password"}`, nil, 401, "invalid_credentials"},
		{"unknown email", "application/json", `{"email":"nobody@example.com","password":"not the password"}`, nil, 401, "invalid_credentials"},
		{"cross-site", "application/json", `{"email":"admin@example.com","password":"` + testPassword + `"}`,
			map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "cross_site_request"},
	}
	var bodies = map[string]errBody{}
	for _, tc := range tests {
		status, body, _ := call(tc.ctype, tc.body, tc.hdr)
		if status != tc.status || body.Error != tc.code || body.Message == "" {
			t.Errorf("%s: want %d %s, got %d %+v", tc.name, tc.status, tc.code, status, body)
		}
		bodies[tc.name] = body
	}
	if bodies["wrong password"] != bodies["unknown email"] {
		t.Errorf("unknown email and wrong password must answer alike: %+v vs %+v", bodies["wrong password"], bodies["unknown email"])
	}
	status, _, resp := call("application/json; charset=utf-8", `{"email":"ADMIN@example.com","password":"`+testPassword+`"}`, nil)
	if status != 200 {
		t.Fatalf("login: %d", status)
	}
	ck := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"shopstream_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("cookie %q lacks %s", ck, attr)
		}
	}
	if n := len(resp.Header.Values("Set-Cookie")); n != 1 {
		t.Errorf("want one Set-Cookie, got %d", n)
	}
}

func TestLoginRenewsTokenAndSecureCookie(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, map[string]string{"COOKIE_SECURE": "true"})
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "shopstream_session", Value: "attacker-fixed-token"}})
	c := &http.Client{Jar: jar}
	resp := postJSON(t, c, s.URL+"/api/auth/login", map[string]string{"email": "admin@example.com", "password": testPassword})
	resp.Body.Close()
	ck := resp.Header.Get("Set-Cookie")
	if !strings.Contains(ck, "Secure") {
		t.Errorf("cookie not Secure: %s", ck)
	}
	if strings.Contains(ck, "attacker-fixed-token") || !strings.Contains(ck, "shopstream_session=") {
		t.Errorf("token not renewed at login: %s", ck)
	}
}

func TestSocketProtocolErrorsKeepSocketOpen(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	createAdmin(t, s.DBURL, "support@example.com", "support")
	ws := dial(t, s, login(t, s, "support@example.com", testPassword))
	tests := []struct{ send, code string }{
		{`{"type":"subscribe","channel":`, "invalid_request"},
		{`[1,2,3]`, "invalid_request"},
		{`{"type":"dance"}`, "invalid_request"},
		{`{"type":"subscribe","channel":"secret_changes"}`, "unknown_channel"},
		{`{"type":"subscribe","channel":"product_changes"}`, "forbidden"},
		{`{"type":"subscribe","channel":"order_changes","since":"abc"}`, "invalid_request"},
		{`{"type":"subscribe","channel":"order_changes","since":"999999999"}`, "invalid_request"},
		{`{"type":"subscribe","channel":"order_changes","actions":["exploded"]}`, "invalid_request"},
		{`{"type":"subscribe","channel":"order_changes","extra":1}`, "invalid_request"},
	}
	for _, tc := range tests {
		ws.sendRaw([]byte(tc.send))
		m := ws.read()
		if m["type"] != "error" || m["code"] != tc.code || m["message"] == "" {
			t.Errorf("%s: want error %s, got %v", tc.send, tc.code, m)
		}
	}
	ws.send(map[string]string{"type": "ping"})
	if m := ws.read(); m["type"] != "pong" || !timestampPattern.MatchString(m["timestamp"].(string)) {
		t.Fatalf("want pong, got %v", m)
	}
}

func TestForeignOriginRefused(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, nil)
	hdr := http.Header{"Origin": {"https://evil.example"}}
	_, resp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(s.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPClient: c, HTTPHeader: hdr})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin with a valid cookie: want 403, got %v %v", resp, err)
	}
	// The service's own origin is fine.
	ws := dialRaw(t, s, c, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {s.URL}}})
	const want = `{"type":"connected","message":"WebSocket connection established","userId":1}`
	if got := string(ws.readRaw()); got != want {
		t.Fatalf("own origin: first message %s, want %s", got, want)
	}
}
