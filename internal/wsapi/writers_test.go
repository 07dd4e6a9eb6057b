package wsapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// oneUser knows the session token "t", of user 1.
type oneUser struct{}

func (oneUser) Resolve(_ context.Context, token string) (auth.User, bool, error) {
	return auth.User{ID: 1, Role: "admin"}, token == "t", nil
}

// ordersOnly lets every role read order_changes.
type ordersOnly struct{}

func (ordersOnly) RoleChannels(context.Context, string) ([]string, error) {
	return []string{"order_changes"}, nil
}

func (ordersOnly) UserChannels(_ context.Context, ids []int64) (map[int64][]string, error) {
	m := map[int64][]string{}
	for _, id := range ids {
		m[id] = []string{"order_changes"}
	}
	return m, nil
}

// testServer serves sockets with cfg (cookie "c", channel order_changes).
func testServer(t *testing.T, cfg Config) (*Handler, *events.Hub, string) {
	t.Helper()
	base, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.CookieName, cfg.Channels, cfg.MaxMessageBytes = "c", []string{"order_changes"}, 4096
	hub := events.NewHub()
	h := NewHandler(base, cfg, hub, oneUser{}, ordersOnly{}, nil, NewKeeper(nil, nil, time.Hour, log), log)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		cancel() // ends every socket (stopAll) and the writers
		srv.Close()
	})
	return h, hub, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// subscribedSocket dials url with the session cookie through client (nil:
// the default) and subscribes to order_changes.
func subscribedSocket(t *testing.T, ctx context.Context, url string, client *http.Client) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Cookie": {"c=t"}}})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","channels":["order_changes"]}`)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// A socket whose peer stopped reading blocks the worker writing it; another
// worker takes that one's place, so that the other sockets get their frames
// while the stuck write still waits. With one worker and no write timeout
// (the watchdog is not running) the reading socket would wait forever
// otherwise.
func TestStuckSocketDoesNotHoldBackTheOthers(t *testing.T) {
	h, hub, url := testServer(t, Config{SendQueue: 100000, Writers: 1, WriteTimeout: time.Hour})
	ctx := waitfor.Context(t)
	// The stuck peer's receive buffer is small, so that the server's writes to
	// it block soon.
	small := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext}}
	subscribedSocket(t, ctx, url, small) // never read
	reader := subscribedSocket(t, ctx, url, nil)
	waitfor.Until(t, "both sockets to subscribe", func() bool { return hub.Stats().Subscriptions["order_changes"] == 2 })

	pad := strings.Repeat("x", 64<<10)
	const big = 256 // 16 MiB: far more than the stuck peer's kernel buffers hold
	for i := 1; i <= big; i++ {
		hub.Publish([]events.Record{{Position: int64(i), Entity: "order", Action: "created",
			Data: []byte(`{"id":1,"pad":"` + pad + `"}`), At: time.Now()}})
	}
	hub.Publish([]events.Record{{Position: big + 1, Entity: "order", Action: "created", Data: []byte(`{"id":2}`), At: time.Now()}})

	// The reading socket gets every event, in order.
	next := int64(1)
	for next <= big+1 {
		_, b, err := reader.Read(ctx)
		if err != nil {
			t.Fatalf("reading socket, waiting for event %d: %v", next, err)
		}
		var m struct{ Type, ID string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type != "event" {
			continue
		}
		if m.ID != itoa(next) {
			t.Fatalf("reading socket: event %s, want %d", m.ID, next)
		}
		next++
	}
	// ... while the stuck one's write was still blocked.
	stuck := 0
	for _, c := range h.openClients() {
		if c.writeSince.Load() != 0 {
			stuck++
		}
	}
	if stuck != 1 {
		t.Errorf("%d sockets with a write running, want the stuck one", stuck)
	}
	if n := h.writers.running.Load(); n < 2 {
		t.Errorf("%d workers alive, want the stuck one and its replacement", n)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// However often a socket is signalled, it is on the ready queue once, and a
// signal after its turn has begun does not queue it a second time: its
// worker sees the new frames when the turn ends.
func TestSocketIsReadyOnce(t *testing.T) {
	h := &Handler{log: slog.New(slog.NewTextHandler(io.Discard, nil)), obs: noObserver{}}
	h.writers = newWriters(context.Background(), 0, stallAfter, noStages{}) // no worker: the queue stays as signals leave it
	c := &client{limit: 100}
	c.w = &writer{h: h, c: c}
	for range 10 {
		c.Send([]byte("m"))
	}
	if n := len(h.writers.ready) - h.writers.head; n != 1 {
		t.Fatalf("ready queue holds the socket %d times, want 1", n)
	}
	if got := h.writers.take(); got != c {
		t.Fatal("the ready queue does not hold the socket")
	}
	items, _, _, _, _, ok := c.next() // a worker's turn begins
	if !ok || len(items) != 10 {
		t.Fatalf("turn got %d messages (ok %v), want all 10", len(items), ok)
	}
	c.Send([]byte("later"))
	if n := len(h.writers.ready) - h.writers.head; n != 0 {
		t.Fatalf("signalled during its turn, the socket is queued %d times, want 0", n)
	}
	if !c.giveBack(items) {
		t.Fatal("after the turn, the frame queued meanwhile does not keep the socket scheduled")
	}
}
