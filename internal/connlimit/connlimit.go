// Package connlimit caps the TCP connections an http.Server holds, without
// ever leaving a new client hanging.
//
// At the cap, a new connection first makes room by closing the keep-alive
// connection that has been idle longest (as IdleTimeout would have, only
// sooner: clients reopen such connections and retry idempotent requests).
// When no connection is idle — all are busy requests or open sockets — the
// new one is answered "503 Service Unavailable" with Retry-After at once and
// closed. golang.org/x/net/netutil.LimitListener is not used: it stops
// accepting at the cap, so new clients wait in the kernel's backlog until a
// connection ends, which is the hang this avoids.
//
// Connections are counted from Accept to Close, across a hijack: an upgraded
// WebSocket counts until it is closed.
package connlimit

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Listener is a net.Listener that caps its open connections. Set its
// ConnState as the http.Server's ConnState: that is how it knows which
// connections are idle.
type Listener struct {
	net.Listener
	max int
	log *slog.Logger

	mu   sync.Mutex
	open int
	idle map[*conn]time.Time // keep-alive connections between requests, since when

	reaped, refused atomic.Int64
	refusers        atomic.Int64 // refused connections being drained
	lastLog         atomic.Int64 // unix nanoseconds of the last refusal logged
}

// New wraps ln so that at most max connections are open at once.
func New(ln net.Listener, max int, log *slog.Logger) *Listener {
	return &Listener{Listener: ln, max: max, log: log, idle: map[*conn]time.Time{}}
}

// Open returns the number of open connections.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Reaped and Refused count the idle connections closed to make room and the
// new connections refused with 503.
func (l *Listener) Reaped() int64  { return l.reaped.Load() }
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Accept returns the next connection under the cap; connections beyond it
// that find no idle one to replace are refused here, never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.admit(nc); c != nil {
			return c, nil
		}
		l.refuse(nc)
	}
}

// admit counts nc, closing the longest-idle connection first when at the cap;
// it returns nil when the cap is full of busy connections.
func (l *Listener) admit(nc net.Conn) *conn {
	l.mu.Lock()
	if l.open >= l.max {
		var victim *conn
		var since time.Time
		for c, t := range l.idle {
			if victim == nil || t.Before(since) {
				victim, since = c, t
			}
		}
		if victim == nil {
			l.mu.Unlock()
			return nil
		}
		delete(l.idle, victim)
		l.mu.Unlock()
		l.reaped.Add(1)
		_ = victim.Close() // gives its place back
		l.mu.Lock()
	}
	l.open++
	l.mu.Unlock()
	return &conn{Conn: nc, l: l}
}

const refusalBody = `{"error":"unavailable","message":"too many connections: try again shortly"}` + "\n"

var refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
	"Connection: close\r\nContent-Length: " + strconv.Itoa(len(refusalBody)) + "\r\n\r\n" + refusalBody

// refuse answers 503 and closes, off the accept loop, in at most maxRefusers
// goroutines (beyond them a connection is closed at once). The answer is
// written once the client has sent its first bytes (an answer before the
// request is, to an HTTP client, an unsolicited response on an idle
// connection, which it drops); then the write side is shut and what the
// client sends is read and dropped, so that it reads the answer rather than a
// reset (closing a socket with unread input resets it). All of it within a
// second.
func (l *Listener) refuse(nc net.Conn) {
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	if last := l.lastLog.Load(); now-last > int64(10*time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn("connection cap reached: refusing new connections with 503", "max", l.max, "refused_total", n)
	}
	if l.refusers.Add(1) > maxRefusers {
		l.refusers.Add(-1)
		_ = nc.Close()
		return
	}
	go func() {
		defer l.refusers.Add(-1)
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		var first [1024]byte
		if _, err := nc.Read(first[:]); err != nil {
			return
		}
		if _, err := nc.Write([]byte(refusal)); err != nil {
			return
		}
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
	}()
}

// maxRefusers bounds the refused connections being drained at once.
const maxRefusers = 64

// ConnState tracks which connections are idle; set it as http.Server.ConnState.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle && !c.closed {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// conn is one counted connection.
type conn struct {
	net.Conn
	l      *Listener
	once   sync.Once
	closed bool // under l.mu
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.closed = true
		c.l.open--
		delete(c.l.idle, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// WriteBuffers writes b with the wrapped connection's writev, which
// net.Buffers uses only on the net package's own connection types; the
// socket's frame writer (internal/wsapi) looks for this method.
func (c *conn) WriteBuffers(b *net.Buffers) (int64, error) { return b.WriteTo(c.Conn) }

// Reserve is the descriptors DefaultMax leaves for everything but clients.
const Reserve = 256

const fallbackMax = 1 << 16

// fromLimit is the cap for a descriptor limit: the limit less Reserve, but at
// least half of it.
func fromLimit(nofile uint64) int {
	return int(max(nofile-min(nofile, Reserve), nofile/2))
}
