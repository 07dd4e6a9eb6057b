package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// rawConn is a test's own TCP connection to the server, for requests that a
// well-behaved client never makes.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialTCP(t *testing.T, s *testServer) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), waitfor.Deadline)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawConn{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// get sends a keep-alive GET of path and reads the whole response.
func (c *rawConn) get(path string) int {
	c.t.Helper()
	c.write("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n")
	_ = c.conn.SetReadDeadline(time.Now().Add(waitfor.Deadline))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// closed reports on the channel, once the server has closed the connection,
// how long after start that was. It fails the test when the server has not
// closed it within waitfor.Deadline.
func (c *rawConn) closed(start time.Time) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	go func() {
		_ = c.conn.SetReadDeadline(time.Now().Add(waitfor.Deadline))
		_, err := io.Copy(io.Discard, c.br) // until EOF, or a reset
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			ch <- -1
			return
		}
		ch <- time.Since(start)
	}()
	return ch
}

// TestStalledConnectionsAreClosed: idle keep-alive connections, requests whose
// headers stall and requests whose body stalls are closed after
// HTTP_IDLE_TIMEOUT, HTTP_READ_HEADER_TIMEOUT and HTTP_READ_TIMEOUT, while a
// new client is served; a socket opened before them outlives them all, since
// a hijacked connection has no read deadline.
func TestStalledConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	const idle, header, read = 2 * time.Second, 3 * time.Second, 4 * time.Second
	// The server closes each connection when its deadline passes; slack is
	// for the scheduler of a loaded machine, not for any work.
	const slack = 5 * time.Second
	s, _, ws := setup(t, map[string]string{
		"HTTP_IDLE_TIMEOUT": idle.String(), "HTTP_READ_HEADER_TIMEOUT": header.String(), "HTTP_READ_TIMEOUT": read.String(),
		"WS_PING_INTERVAL": "1h",
	})
	const n = 40
	type held struct {
		kind  string
		limit time.Duration
		done  <-chan time.Duration
	}
	var all []held
	for range n {
		k := dialTCP(t, s)
		if st := k.get("/healthz"); st != http.StatusOK {
			t.Fatalf("keep-alive GET: %d", st)
		}
		all = append(all, held{"idle keep-alive", idle, k.closed(time.Now())})
	}
	for range n {
		h := dialTCP(t, s)
		start := time.Now()
		h.write("GET /healthz HTTP/1.1\r\nHost: test\r\n") // no blank line: the headers never end
		all = append(all, held{"stalled header", header, h.closed(start)})
	}
	for range n {
		b := dialTCP(t, s)
		start := time.Now()
		b.write("POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":")
		all = append(all, held{"stalled body", read, b.closed(start)})
	}
	// Meanwhile a new client is served.
	resp, err := (&http.Client{Timeout: waitfor.Deadline}).Get(s.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a new client while %d connections stall: %v %v", len(all), resp, err)
	}
	resp.Body.Close()
	for i, h := range all {
		d := waitfor.Receive(t, "a stalled connection's end", h.done)
		switch {
		case d < 0:
			t.Fatalf("%s connection %d still open after %v (limit %v)", h.kind, i, waitfor.Deadline, h.limit)
		case d > h.limit+slack:
			t.Errorf("%s connection %d closed after %v, want about %v", h.kind, i, d.Round(time.Millisecond), h.limit)
		case d < h.limit/2: // the server's clock starts a moment before the test's
			t.Errorf("%s connection %d closed after %v, before its %v", h.kind, i, d.Round(time.Millisecond), h.limit)
		}
	}
	// The socket is older than every deadline above and still answers.
	ws.send(map[string]string{"type": "ping"})
	if m := ws.read(); m["type"] != "pong" {
		t.Fatalf("socket after the read timeout: %v", m)
	}
}

// TestConnectionCap: at HTTP_MAX_CONNECTIONS, a new connection finds a busy
// server answered at once with 503, and a server with an idle keep-alive
// connection closes that one and serves the new client.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	const max = 4
	s := startServer(t, pgtest.NewDB(t), map[string]string{
		"HTTP_MAX_CONNECTIONS": fmt.Sprint(max), "HTTP_READ_HEADER_TIMEOUT": "10m", "HTTP_IDLE_TIMEOUT": "10m",
	})
	fresh := func() (int, error) {
		cl := &http.Client{Timeout: waitfor.Deadline, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Get(s.URL + "/healthz")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	// The cap full of requests whose headers never end. The connections are
	// accepted in order, so the next one is judged with all of them counted.
	var stalled []*rawConn
	for range max {
		c := dialTCP(t, s)
		c.write("GET /healthz HTTP/1.1\r\nHost: test\r\n")
		stalled = append(stalled, c)
	}
	start := time.Now()
	status, err := fresh()
	if err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("a new client at the cap of busy connections: %d %v, want 503", status, err)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Microsecond))

	// One stalled connection goes; an idle keep-alive connection takes its
	// place (retried: the server may not have seen the close yet).
	_ = stalled[0].conn.Close()
	var idle *rawConn
	waitfor.Until(t, "a keep-alive connection under the cap", func() bool {
		c := dialTCP(t, s)
		c.write("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		idle = c
		return true
	})
	idleClosed := idle.closed(time.Now())
	// A new client is served: the idle connection is closed to make room
	// (retried while the server has not yet marked it idle after its answer).
	waitfor.Until(t, "a new client served at the cap", func() bool {
		status, err := fresh()
		return err == nil && status == http.StatusOK
	})
	if d := waitfor.Receive(t, "the idle connection closed", idleClosed); d < 0 {
		t.Fatal("the idle keep-alive connection was not closed to make room")
	}
	// The stalled ones are still there: only idle connections are reaped.
	var wg sync.WaitGroup
	for _, c := range stalled[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.write("\r\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("a stalled connection finishing its request: %v %v", resp, err)
			}
		}()
	}
	wg.Wait()
	if !strings.Contains(s.Log.String(), "connection cap reached") {
		t.Errorf("no log line for the refusal:\n%s", s.Log.String())
	}
}

// TestBodyLimits: a body beyond HTTP_MAX_BODY_BYTES gets 413 on every
// endpoint, login's beyond 8 KiB too, declared or chunked.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, map[string]string{"HTTP_MAX_BODY_BYTES": "4096"})
	big := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		method, path, ctype string
		body                io.Reader
		chunked             bool
	}{
		{"POST", "/api/auth/logout", "application/json", strings.NewReader(`{"pad":"` + big + `"}`), false},
		{"GET", "/healthz", "text/plain", strings.NewReader(big), false},
		{"GET", "/", "text/plain", strings.NewReader(big), false},
		{"GET", "/api/auth/me", "text/plain", strings.NewReader(big), false},
		{"POST", "/api/auth/login", "application/json", strings.NewReader(`{"email":"` + strings.Repeat("a", 9000) + `"}`), true},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, tc.body)
		req.Header.Set("Content-Type", tc.ctype)
		if tc.chunked {
			req.ContentLength = -1 // sent chunked, the size unknown ahead
			req.Body = io.NopCloser(req.Body)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"body_too_large"`) {
			t.Errorf("%s %s with a large body: %d %s, want 413 body_too_large", tc.method, tc.path, resp.StatusCode, b)
		}
	}
	// The session survived the refused logout.
	resp, err := c.Get(s.URL + "/api/auth/me")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("me after a refused logout: %v %v", resp, err)
	}
	resp.Body.Close()
}
