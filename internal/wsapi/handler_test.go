package wsapi

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// gateSessions knows no session. Its first Resolve blocks until release is
// closed, holding an unauthenticated handshake open as long as the test wants.
type gateSessions struct {
	entered chan struct{}
	release chan struct{}
	calls   chan struct{}
}

func (g *gateSessions) Resolve(ctx context.Context, token string) (auth.User, bool, error) {
	select {
	case g.calls <- struct{}{}:
		close(g.entered)
		<-g.release
	default:
	}
	return auth.User{}, false, nil
}

// dialStatus opens a socket and returns the code it is closed with (-1 when
// the dial fails or the socket ends without a close frame).
func dialStatus(ctx context.Context, url string) websocket.StatusCode {
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		return -1
	}
	defer conn.CloseNow()
	_, _, err = conn.Read(ctx)
	return websocket.CloseStatus(err)
}

// An unauthenticated socket holds a place under MaxSockets from its handshake
// until it is closed: a flood of them cannot hold more than the cap.
func TestUnauthenticatedSocketsCountTowardTheCap(t *testing.T) {
	g := &gateSessions{entered: make(chan struct{}), release: make(chan struct{}), calls: make(chan struct{}, 1)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewHandler(context.Background(), Config{CookieName: "c", MaxSockets: 1, SendQueue: 16, MaxMessageBytes: 4096},
		events.NewHub(), g, nil, nil, nil, log)
	srv := httptest.NewServer(h)
	defer srv.Close()

	first := make(chan websocket.StatusCode, 1)
	ctx := waitfor.Context(t)
	go func() { first <- dialStatus(ctx, srv.URL) }()
	waitfor.Receive(t, "the first handshake to reach the session check", g.entered)
	if got := dialStatus(ctx, srv.URL); got != websocket.StatusTryAgainLater {
		t.Errorf("second socket while the first is unauthenticated: close %d, want 1013 (at capacity)", got)
	}
	close(g.release)
	if got := waitfor.Receive(t, "the first socket's close", first); got != websocket.StatusPolicyViolation {
		t.Errorf("unauthenticated socket: close %d, want 1008", got)
	}
	// The place is given back: the next one is refused for its session alone.
	if err := waitfor.UntilContext(context.Background(), func() bool { return dialStatus(ctx, srv.URL) == websocket.StatusPolicyViolation }); err != nil {
		t.Errorf("after the first closed, a socket is still refused for capacity: %v", err)
	}
}

// Any database role can NOTIFY shopstream_sessions with any payload: the
// guard files it under what it names, or drops it, and never holds more than
// maxPending names.
func FuzzSignal(f *testing.F) {
	for _, s := range []string{"roles", "user:1", "user:-1", "user:", "user:99999999999999999999",
		strings.Repeat("a", 64), strings.Repeat("A", 64), strings.Repeat("0", 63), "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		g := newGuard(&Handler{})
		g.signal(payload)
		g.signal(payload)
		named := len(g.hashes) + len(g.users)
		if named > 1 {
			t.Fatalf("one payload filed %d names", named)
		}
		if named == 1 && !g.rights && payload == "roles" {
			t.Fatal("roles filed as a name")
		}
		if len(g.hashes) == 1 && !isTokenHash(payload) {
			t.Fatalf("%q filed as a token hash", payload)
		}
		select {
		case <-g.wake:
			if named == 0 && !g.rights {
				t.Fatalf("%q woke the guard without filing anything", payload)
			}
		default:
			if named > 0 || g.rights {
				t.Fatalf("%q filed but did not wake the guard", payload)
			}
		}
	})
}

func TestSignalBoundsPendingNames(t *testing.T) {
	g := newGuard(&Handler{})
	for i := 1; i <= maxPending+5; i++ {
		g.signal("user:" + strconv.Itoa(i))
	}
	if len(g.users) != maxPending || !g.rights {
		t.Fatalf("pending users %d (rights %v), want %d and a full rights pass", len(g.users), g.rights, maxPending)
	}
}

// A pass checks at most guardBudget sessions; the rest wait for the next
// pass, still marked as named by a signal.
func TestGuardPassBudget(t *testing.T) {
	var resolved int
	h := &Handler{clients: map[*client]*socketReader{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), hub: events.NewHub()}
	h.sessions = countingSessions{n: &resolved}
	h.guard = newGuard(h)
	for i := 0; i < guardBudget+10; i++ {
		tok := strconv.Itoa(i)
		s := &socketReader{h: h, c: &client{}, token: tok, hash: auth.TokenHash(tok), user: socketUser{ID: int64(i + 1)}}
		h.clients[s.c] = s
		h.guard.signal(s.hash)
	}
	h.guard.pass(context.Background())
	if resolved != guardBudget {
		t.Fatalf("first pass resolved %d sessions, want %d", resolved, guardBudget)
	}
	if n := len(h.guard.hashes); n != 10 {
		t.Fatalf("%d sessions left for the next pass, want 10", n)
	}
	for _, claimed := range h.guard.hashes {
		if !claimed {
			t.Fatal("a requeued session lost its signal's mark")
		}
	}
	h.guard.pass(context.Background())
	if resolved != guardBudget+10 {
		t.Fatalf("after two passes %d resolved, want %d", resolved, guardBudget+10)
	}
}

// countingSessions counts Resolve calls; every session is alive.
type countingSessions struct{ n *int }

func (c countingSessions) Resolve(ctx context.Context, token string) (auth.User, bool, error) {
	*c.n++
	return auth.User{}, true, nil
}
