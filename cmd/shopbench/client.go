package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/wire"
)

// pool is a set of sockets with one session cookie, each subscribed to one
// channel and read by its own goroutine.
type pool struct {
	srv     *server
	batch   bool
	channel string
	socks   []*sock
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	recv        atomic.Int64 // distinct markers received this level, over all sockets
	dups        atomic.Int64
	lastArrival atomic.Int64
	closedSlow  atomic.Int64
	closedOther atomic.Int64
	reconnects  atomic.Int64
	errMsgs     atomic.Int64
	lastErr     atomic.Value
	closing     atomic.Bool
}

type sock struct {
	p      *pool
	idx    int
	sample bool

	cmu  sync.Mutex
	conn *websocket.Conn

	mu         sync.Mutex
	tr         tracker
	arr        []arrival
	lastID     uint64
	orderViol  int // an event id not above the previous one
	dead       bool
	subscribed bool
	onEvent    func(msg []byte, at int64) // called under mu
	pong       chan int64
}

func newPool(ctx context.Context, srv *server, channel string, batch bool) *pool {
	p := &pool{srv: srv, channel: channel, batch: batch}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p
}

// open dials n sockets, 200 at a time; the first sample of them record arrival times.
func (p *pool) open(n, sample int) error {
	start := len(p.socks)
	for i := 0; i < n; i++ {
		p.socks = append(p.socks, &sock{p: p, idx: start + i, sample: start+i < sample, pong: make(chan int64, 64)})
	}
	sem := make(chan struct{}, 200)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var failed atomic.Int64
	for _, s := range p.socks[start:] {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			for try := 0; try < 3; try++ {
				if err = s.dial(0); err == nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				s.mu.Lock()
				s.dead = true
				s.mu.Unlock()
				return
			}
			p.wg.Add(1)
			go s.readLoop()
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d sockets failed to open: %v", f, n, firstErr.Load())
	}
	return nil
}

// close closes every socket with a close handshake (1000), then stops the
// readers. (A socket dropped without the handshake is held by the server: see
// docs/benchmarks.md.)
func (p *pool) close() {
	p.closing.Store(true)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 500)
	for _, s := range p.socks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if c := s.getConn(); c != nil {
				_ = c.Close(wire.CloseNormal, "bench level done")
			}
		}()
	}
	wg.Wait()
	p.cancel()
	for _, s := range p.socks { // readers read without a context: end them here
		if c := s.getConn(); c != nil {
			_ = c.CloseNow()
		}
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		logf("some socket readers did not stop")
	}
}

func (s *sock) getConn() *websocket.Conn {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.conn
}

// dial opens the socket, reads "connected", subscribes (with since when not
// 0) and processes frames until "subscribed".
func (s *sock) dial(since uint64) error {
	p := s.p
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: p.srv.cookieHdr}
	if p.batch {
		opts.Subprotocols = []string{wire.BatchSubprotocol}
	}
	url := "ws" + strings.TrimPrefix(p.srv.base, "http") + wire.SocketPath
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return err
	}
	c.SetReadLimit(256 << 20)
	if p.batch && c.Subprotocol() != wire.BatchSubprotocol {
		_ = c.CloseNow()
		return errors.New("server did not accept " + wire.BatchSubprotocol)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		_ = c.CloseNow()
		return fmt.Errorf("reading connected: %w", err)
	}
	if classify(b) != kindConnected {
		_ = c.CloseNow()
		return fmt.Errorf("first message is not connected: %.100s", b)
	}
	sub := fmt.Sprintf(`{"type":%q,"channel":%q}`, wire.TypeSubscribe, p.channel)
	if since > 0 {
		sub = fmt.Sprintf(`{"type":%q,"channel":%q,"since":"%d"}`, wire.TypeSubscribe, p.channel, since)
	}
	s.mu.Lock()
	s.subscribed = false
	s.mu.Unlock()
	if err := c.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		_ = c.CloseNow()
		return err
	}
	var buf []byte
	for {
		_, r, err := c.Reader(ctx)
		if err != nil {
			_ = c.CloseNow()
			return fmt.Errorf("waiting for subscribed: %w", err)
		}
		if buf, err = readAll(r, buf[:0]); err != nil {
			_ = c.CloseNow()
			return err
		}
		if s.frame(buf) {
			break
		}
	}
	s.cmu.Lock()
	s.conn = c
	s.cmu.Unlock()
	return nil
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4096)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// frame handles one frame and reports whether the socket is subscribed.
func (s *sock) frame(b []byte) bool {
	at := now()
	s.mu.Lock()
	defer s.mu.Unlock()
	splitFrame(b, s.p.batch, func(m []byte) { s.handle(m, at) })
	return s.subscribed
}

// handle processes one message; s.mu is held.
func (s *sock) handle(m []byte, at int64) {
	switch classify(m) {
	case kindEvent:
		if id, ok := eventID(m); ok {
			if id <= s.lastID {
				s.orderViol++
			} else {
				s.lastID = id
			}
		}
		if seq, ok := eventMarker(m); ok {
			if s.tr.mark(seq) {
				s.p.dups.Add(1)
			} else if seq >= s.tr.base {
				s.p.recv.Add(1)
				s.p.lastArrival.Store(at)
				if s.sample {
					s.arr = append(s.arr, arrival{seq: seq, at: at})
				}
			}
		}
		if s.onEvent != nil {
			s.onEvent(m, at)
		}
	case kindPong:
		select {
		case s.pong <- at:
		default:
		}
	case kindSubscribed:
		s.subscribed = true
	case kindError:
		s.p.errMsgs.Add(1)
		s.p.lastErr.Store(string(m))
	}
}

func (s *sock) readLoop() {
	p := s.p
	defer p.wg.Done()
	for {
		c := s.getConn()
		// No context on the hot path (the library would arm a watcher per
		// message): close and abort end the read by closing the connection.
		_, r, err := c.Reader(context.Background())
		if err == nil {
			// A buffer from the pool, only while a frame is read and handled:
			// a buffer per socket would grow to the largest batched frame on
			// every socket (docs/performance.md, "Throughput": the load client).
			bp := readBufs.Get().(*[]byte)
			var buf []byte
			buf, err = readAll(r, (*bp)[:0])
			if err == nil {
				s.frame(buf)
			}
			if cap(buf) <= 1<<20 {
				*bp = buf[:0]
				readBufs.Put(bp)
			}
			if err == nil {
				continue
			}
		}
		if p.ctx.Err() != nil || p.closing.Load() {
			return
		}
		if code := websocket.CloseStatus(err); code != wire.CloseLoginRequired {
			// 1013 (too slow), or the socket ended otherwise (an unanswered ping
			// when this load client falls behind, a network error): resume with
			// since = the last id seen, as the browser client does. The contract
			// is that nothing is then missing or duplicated.
			if code == wire.CloseTryAgainLater {
				p.closedSlow.Add(1)
			} else {
				p.closedOther.Add(1)
			}
			_ = c.CloseNow()
			s.mu.Lock()
			since := s.lastID
			s.mu.Unlock()
			var derr error
			for try := 0; try < 5; try++ {
				if derr = s.dial(since); derr == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if derr == nil {
				p.reconnects.Add(1)
				continue
			}
			err = derr
		}
		if code := websocket.CloseStatus(err); code == wire.CloseLoginRequired {
			p.closedOther.Add(1) // not resumed: counted once here
		}
		p.lastErr.Store(fmt.Sprintf("socket %d closed: %v", s.idx, err))
		s.mu.Lock()
		s.dead = true
		s.mu.Unlock()
		return
	}
}

func (s *sock) send(ctx context.Context, msg string) error {
	c := s.getConn()
	if c == nil {
		return errors.New("not connected")
	}
	return c.Write(ctx, websocket.MessageText, []byte(msg))
}

// resetLevel prepares every socket for a level whose markers start at base.
func (p *pool) resetLevel(base uint64) {
	p.recv.Store(0)
	p.dups.Store(0)
	p.lastArrival.Store(0)
	for _, s := range p.socks {
		s.mu.Lock()
		s.tr.reset(base)
		s.arr = s.arr[:0]
		s.mu.Unlock()
	}
}

// pending is how many of committed markers the live sockets still lack.
func (p *pool) pending(committed int64) int64 {
	var n int64
	for _, s := range p.socks {
		s.mu.Lock()
		if !s.dead && int64(s.tr.recv) < committed {
			n += committed - int64(s.tr.recv)
		}
		s.mu.Unlock()
	}
	return n
}

func (p *pool) alive() int {
	n := 0
	for _, s := range p.socks {
		s.mu.Lock()
		if !s.dead {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// abort drops every socket without a close handshake, as a crashed browser or
// a dead network would.
func (p *pool) abort() {
	p.closing.Store(true)
	for _, s := range p.socks {
		if c := s.getConn(); c != nil {
			_ = c.CloseNow()
		}
	}
	p.cancel()
	p.wg.Wait()
}
