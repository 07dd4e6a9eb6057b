package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/waitfor"
)

// fakeServer answers logins and runs script on each socket, numbered from 0.
type fakeServer struct {
	*httptest.Server
	logins  atomic.Int32
	sockets atomic.Int32
}

func newFakeServer(t *testing.T, login func(w http.ResponseWriter) bool, script func(ctx context.Context, n int, c *websocket.Conn)) *fakeServer {
	t.Helper()
	fs := &fakeServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+LoginPath, func(w http.ResponseWriter, r *http.Request) {
		fs.logins.Add(1)
		if login != nil && !login(w) {
			return
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "token", Path: "/", HttpOnly: true})
		_, _ = w.Write([]byte(`{"user":{}}`))
	})
	mux.HandleFunc("GET "+SocketPath, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{BatchSubprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		if c.Subprotocol() != BatchSubprotocol {
			t.Errorf("subprotocol %q", c.Subprotocol())
		}
		script(r.Context(), int(fs.sockets.Add(1)-1), c)
	})
	fs.Server = httptest.NewServer(mux)
	t.Cleanup(fs.Close)
	return fs
}

func write(ctx context.Context, t *testing.T, c *websocket.Conn, lines ...string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(strings.Join(lines, "\n"))); err != nil {
		t.Errorf("write: %v", err)
	}
}

// readSubscribe reads one subscribe and returns its channel and since.
func readSubscribe(ctx context.Context, t *testing.T, c *websocket.Conn) (channel, since string) {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Errorf("read: %v", err)
		return "", ""
	}
	var m struct{ Type, Channel, Since string }
	if err := json.Unmarshal(b, &m); err != nil || m.Type != TypeSubscribe {
		t.Errorf("want a subscribe, got %s", b)
	}
	return m.Channel, m.Since
}

func ev(id, channel string) string {
	return `{"type":"event","id":"` + id + `","channel":"` + channel + `","event":"order:updated","data":{"id":1},"timestamp":"2026-01-25T10:30:00.000Z"}`
}

func noBackoff(int) time.Duration { return 0 }

func newTestClient(t *testing.T, url string) *Client {
	t.Helper()
	c, err := New(url, WithBackoff(noBackoff))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// next returns the next message, failing when the stream ends.
func next(t *testing.T, s *Stream) Message {
	t.Helper()
	m := waitfor.Receive(t, "a message", s.Messages())
	if m == nil {
		t.Fatalf("the stream ended: %v", s.Err())
	}
	return m
}

func TestStreamDedupesRevokesResumes(t *testing.T) {
	type sub struct{ channel, since string }
	subs := make(chan sub, 10)
	fs := newFakeServer(t, nil, func(ctx context.Context, n int, c *websocket.Conn) {
		write(ctx, t, c, `{"type":"connected"}`)
		for range 2 {
			ch, since := readSubscribe(ctx, t, c)
			subs <- sub{ch, since}
		}
		switch n {
		case 0:
			write(ctx, t, c,
				`{"type":"subscribed","channel":"order_changes","position":"10"}`,
				`{"type":"subscribed","channel":"customer_changes","position":"10"}`,
				ev("11", "order_changes"), ev("11", "order_changes"),
				`{"type":"error","code":"forbidden","channel":"customer_changes","message":"revoked"}`)
			_ = c.Close(CloseInternalError, "failed")
		case 1:
			write(ctx, t, c, `{"type":"error","code":"invalid_request","message":"ahead of the log"}`)
			ch, since := readSubscribe(ctx, t, c)
			subs <- sub{ch, since}
			write(ctx, t, c,
				`{"type":"error","code":"forbidden","message":"your role may not read customer_changes"}`,
				`{"type":"subscribed","channel":"order_changes","position":"20"}`)
			write(ctx, t, c, ev("21", "order_changes"))
			_, _, _ = c.Read(ctx) // until the client goes
		}
	})
	ctx, cancel := context.WithCancel(waitfor.Context(t))
	defer cancel()
	c := newTestClient(t, fs.URL)
	if err := c.Login(ctx, "a@example.com", "pw"); err != nil {
		t.Fatal(err)
	}
	s, err := c.Stream(ctx, Subscription{Channel: "order_changes"}, Subscription{Channel: "customer_changes"})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(want string) {
		t.Helper()
		var got string
		switch m := next(t, s).(type) {
		case Event:
			got = "event " + m.Channel + " " + m.Name() + " " + strconv.FormatInt(m.ID, 10)
		case Notice:
			got = "notice " + m.String()
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q…", got, want)
		}
	}
	expect("event order_changes order:updated 11")
	expect("notice skipping event 11 on order_changes: already seen")
	expect("notice customer_changes: subscription revoked: forbidden: revoked")
	expect("notice connection lost (reading socket: failed to get reader: received close frame: status = StatusInternalError")
	expect("notice order_changes: the server refused to resume after 11 (ahead of the log)")
	expect("notice subscribing to customer_changes failed: forbidden: your role may not read customer_changes")
	expect("event order_changes order:updated 21")
	if got := s.Positions(); got["order_changes"] != 21 || got["customer_changes"] != 10 {
		t.Errorf("positions: %v", got)
	}
	cancel()
	if m, ok := <-s.Messages(); ok {
		t.Fatalf("a message after cancel: %v", m)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after cancel: %v", err)
	}
	want := []sub{{"order_changes", ""}, {"customer_changes", ""}, {"order_changes", "11"}, {"customer_changes", "10"}, {"order_changes", ""}}
	for i, w := range want {
		if got := waitfor.Receive(t, "a subscribe", subs); got != w {
			t.Errorf("subscribe %d: got %v, want %v", i, got, w)
		}
	}
}

func TestStreamLogsInAgainOnce(t *testing.T) {
	fs := newFakeServer(t, nil, func(ctx context.Context, n int, c *websocket.Conn) {
		_ = c.Close(CloseLoginRequired, "session ended")
	})
	ctx := waitfor.Context(t)
	c := newTestClient(t, fs.URL)
	if err := c.Login(ctx, "a@example.com", "pw"); err != nil {
		t.Fatal(err)
	}
	s, err := c.Stream(ctx, Subscription{Channel: "order_changes"})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := next(t, s).(Notice); !ok || n.Kind != NoticeLoggingIn {
		t.Fatalf("want NoticeLoggingIn, got %v", n)
	}
	waitfor.Receive(t, "the end of the stream", s.Done())
	if err := s.Err(); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("want ErrSessionEnded, got %v", err)
	}
	if got := fs.logins.Load(); got != 2 {
		t.Errorf("%d logins, want 2", got)
	}

	// Without a Login there is nobody to log in as: 1008 ends the stream.
	s, err = newTestClient(t, fs.URL).Stream(ctx, Subscription{Channel: "order_changes"})
	if err != nil {
		t.Fatal(err)
	}
	for range s.Messages() {
		t.Error("a message without a login")
	}
	if err := s.Err(); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("want ErrSessionEnded, got %v", err)
	}
}

func TestStreamEndsOnBadJSONAndOnNoChannel(t *testing.T) {
	for name, reply := range map[string]string{
		"bad json":   `{"type":"subscribed","channel":"order_changes","position":"1"}` + "\n" + `{"type":`,
		"bad event":  ev("x", "order_changes"),
		"no channel": `{"type":"error","code":"unknown_channel","message":"no such channel"}`,
	} {
		t.Run(name, func(t *testing.T) {
			fs := newFakeServer(t, nil, func(ctx context.Context, n int, c *websocket.Conn) {
				write(ctx, t, c, `{"type":"connected"}`)
				readSubscribe(ctx, t, c)
				write(ctx, t, c, reply)
				_, _, _ = c.Read(ctx)
			})
			s, err := newTestClient(t, fs.URL).Stream(waitfor.Context(t), Subscription{Channel: "order_changes"})
			if err != nil {
				t.Fatal(err)
			}
			for range s.Messages() {
			}
			if err := s.Err(); err == nil || (name == "no channel") != errors.Is(err, ErrNoChannel) {
				t.Fatalf("Err: %v", err)
			}
			if fs.sockets.Load() != 1 {
				t.Errorf("%d sockets: a fatal error must not reconnect", fs.sockets.Load())
			}
		})
	}
}

func TestStreamRefusesBadSubscriptions(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1")
	for _, subs := range [][]Subscription{
		nil,
		{{}},
		{{Channel: "a"}, {Channel: "a"}},
		{{Channel: "a", Filter: json.RawMessage(`[1]`)}},
		{{Channel: "a", Filter: json.RawMessage(`null`)}},
		{{Channel: "a", Since: -1}},
	} {
		if _, err := c.Stream(context.Background(), subs...); err == nil {
			t.Errorf("%v: want an error", subs)
		}
	}
}

func TestLoginErrors(t *testing.T) {
	for _, c := range []struct {
		status     int
		retryAfter string
		want       error
		wantRetry  time.Duration
	}{
		{http.StatusUnauthorized, "", ErrInvalidCredentials, 0},
		{http.StatusTooManyRequests, "17", ErrThrottled, 17 * time.Second},
		{http.StatusServiceUnavailable, "1", ErrBusy, time.Second},
	} {
		fs := newFakeServer(t, func(w http.ResponseWriter) bool {
			if c.retryAfter != "" {
				w.Header().Set("Retry-After", c.retryAfter)
			}
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(`{"error":"some_code","message":"some text"}`))
			return false
		}, nil)
		err := newTestClient(t, fs.URL).Login(context.Background(), "a@example.com", "pw")
		var le *LoginError
		if !errors.Is(err, c.want) || !errors.As(err, &le) || le.Status != c.status || le.RetryAfter != c.wantRetry ||
			le.Code != "some_code" || le.Message != "some text" {
			t.Errorf("HTTP %d: got %#v (%v)", c.status, err, err)
		}
		if errors.Is(err, ErrInvalidCredentials) != (c.status == http.StatusUnauthorized) {
			t.Errorf("HTTP %d matches ErrInvalidCredentials", c.status)
		}
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://x", "http://", "://", "localhost:3000"} {
		if _, err := New(u); err == nil {
			t.Errorf("%q: want an error", u)
		}
	}
	c, err := New("https://shop.example.com/stream/?q=1#f")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.socketURL(); got != "wss://shop.example.com/stream/ws" {
		t.Errorf("socket URL %s", got)
	}
}
