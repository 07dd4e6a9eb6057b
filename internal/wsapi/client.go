package wsapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/wire"
	"github.com/shopstream/shopstream/internal/wsframe"
)

// maxBatchFrame bounds one batched frame; more queued messages go in the next.
const maxBatchFrame = 256 << 10

// item is one entry of a socket's send queue: a message, or a replay to run
// from the log at that point of the stream.
type item struct {
	msg    []byte
	at     time.Time // when the change of an event message was made
	replay *replay
}

// client is one socket. The hub and the read loop put messages in its queue
// without waiting; its write loop alone writes to the connection.
type client struct {
	conn       *websocket.Conn
	fw         *wsframe.Writer // under conn; nil on the library's plain path (Config.LibraryFrames)
	batch      bool
	limit      int
	limitBytes int

	mu          sync.Mutex
	queue       []item
	queued      int // bytes of the messages in queue
	spare       []item
	closing     bool
	closeCode   websocket.StatusCode
	closeReason string
	closeLabel  string // metrics reason: auth, slow, rate, shutdown
	counted     bool   // the close was counted in the metrics
	unwoken     bool   // frames were queued by SendEvent since the last Wake
	running     bool   // on the writers' ready queue, or being written by a worker
	finished    bool   // the socket ended: it is not scheduled again
	readyAt     time.Time

	ctx      context.Context // the socket's lifetime
	cancel   context.CancelFunc
	pingSlot int // guarded by the handler's mu
	w        *writer
	drains   sync.WaitGroup // one while running, and while a close handshake runs

	// writeSince is when the running write began (unix ns), 0 between writes.
	// Writes carry no context deadline (the library would arm and disarm a
	// timer per frame); the handler's watchdog closes a socket whose write
	// outlasts WriteTimeout, and the end of the socket's context aborts one.
	writeSince atomic.Int64
}

func newClient(ctx context.Context, cancel context.CancelFunc, h *Handler, conn *websocket.Conn, fw *wsframe.Writer) *client {
	c := &client{
		conn:       conn,
		fw:         fw,
		batch:      conn.Subprotocol() == wire.BatchSubprotocol,
		limit:      h.cfg.SendQueue,
		limitBytes: h.cfg.SendQueueBytes,
		ctx:        ctx,
		cancel:     cancel,
	}
	c.w = &writer{h: h, c: c}
	return c
}

// stop ends the socket: its context, and its connection at once, so that a
// read or a write blocked on it returns. The read loop reads with a context
// that never ends (the library would register a context callback for every
// read, and keep it for as long as an idle socket waits), so this is what
// ends a read; every end of a socket goes through it, the server's too
// (Handler.stopAll).
func (c *client) stop() {
	c.cancel()
	if c.fw != nil {
		c.fw.Drop()
	} else {
		_ = c.conn.CloseNow()
	}
}

// writeExpired reports whether a write has been running since before cutoff.
func (c *client) writeExpired(cutoff int64) bool {
	since := c.writeSince.Load()
	return since != 0 && since < cutoff
}

// signal puts the socket on the writers' ready queue unless it is there or
// being written: an idle socket has no writer goroutine at all, only its
// reader.
func (c *client) signal() {
	c.mu.Lock()
	start := !c.running && !c.finished && (len(c.queue) > 0 || c.closing)
	if start {
		c.running = true
		c.readyAt = time.Now()
		c.drains.Add(1)
	}
	c.mu.Unlock()
	if start {
		c.w.h.writers.schedule(c)
	}
}

// finish stops new turns and waits for the running one, if any.
func (c *client) finish() {
	c.mu.Lock()
	c.finished = true
	c.mu.Unlock()
	c.drains.Wait()
}

// Send queues msg; when the queue is full the client starts closing with 1013
// and Send returns false.
func (c *client) Send(msg []byte) bool { return c.push(item{msg: msg}) }

// SendEvent queues an event frame whose change was made at at, without waking
// the writer: the hub calls Wake once it has queued a whole batch. wake is true
// for the first frame since the last Wake.
func (c *client) SendEvent(frame []byte, at time.Time) (ok, wake bool) {
	c.mu.Lock()
	ok = c.enqueueLocked(item{msg: frame, at: at})
	if ok {
		wake, c.unwoken = !c.unwoken, true
	}
	c.mu.Unlock()
	if !ok {
		c.signal() // the writer closes the socket
	}
	return ok, wake
}

// Wake wakes the writer for the frames SendEvent queued.
func (c *client) Wake() {
	c.mu.Lock()
	c.unwoken = false
	c.mu.Unlock()
	c.signal()
}

func (c *client) push(it item) bool {
	c.mu.Lock()
	ok := c.enqueueLocked(it)
	c.mu.Unlock()
	c.signal()
	return ok
}

// enqueueLocked appends it unless the client is closing; a full queue starts
// closing it with 1013 instead.
func (c *client) enqueueLocked(it item) bool {
	if c.closing {
		return false
	}
	if len(c.queue) >= c.limit || (c.limitBytes > 0 && len(c.queue) > 0 && c.queued+len(it.msg) > c.limitBytes) {
		c.closing, c.closeCode, c.closeReason, c.closeLabel = true, wire.CloseTryAgainLater, "send queue full: resume with since", "slow"
		c.queue, c.queued = nil, 0
		return false
	}
	c.queue = append(c.queue, it)
	c.queued += len(it.msg)
	return true
}

// Close starts closing the socket with code and reason; queued messages are
// dropped (a logged-out user gets nothing more).
func (c *client) Close(code int, reason string) { c.close(code, reason, false) }

// closeAfterFlush closes once what is queued (the errors that explain why) is written.
func (c *client) closeAfterFlush(code int, reason string) { c.close(code, reason, true) }

func (c *client) close(code int, reason string, flush bool) {
	c.mu.Lock()
	if !c.closing {
		c.closing, c.closeCode, c.closeReason = true, websocket.StatusCode(code), reason
		c.closeLabel = labelFor(code, reason)
		if !flush {
			c.queue, c.queued = nil, 0
		}
	}
	c.mu.Unlock()
	c.signal()
}

func labelFor(code int, reason string) string {
	switch {
	case code == wire.CloseGoingAway:
		return "shutdown"
	case reason == rateLimitReason:
		return "rate"
	case code == wire.CloseLoginRequired:
		return "auth"
	}
	return "error"
}

// countClose counts the socket's close under label, once: before the server
// sends its close frame, or when the socket ends otherwise.
func (c *client) countClose(label string) {
	c.mu.Lock()
	first := !c.counted
	c.counted = true
	c.mu.Unlock()
	if first {
		c.w.h.obs.SocketClosed(label)
	}
}

// label says why the server closed the socket, or "" when it did not.
func (c *client) label() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLabel
}

// next swaps the queue out; ok is false (and the socket leaves the writers)
// when there is nothing to write and no close to send. waited is how long
// the socket was ready before this turn. After a long queue the next one
// starts from a pooled slice: under load queues refill to the same length, and
// growing a fresh one by doubling allocates (and zeroes) it again and again.
func (c *client) next() (items []item, closing bool, code websocket.StatusCode, reason string, waited time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 && !c.closing {
		c.running = false
		c.drains.Done()
		return nil, false, 0, "", 0, false
	}
	waited = time.Since(c.readyAt)
	items, c.queue = c.queue, c.spare[:0]
	c.spare, c.queued = nil, 0
	if len(items) > smallQueue && c.queue == nil {
		if q, ok := queuePool.Get().(*[]item); ok {
			c.queue = *q
		}
	}
	return items, c.closing, c.closeCode, c.closeReason, waited, true
}

// smallQueue is the longest drained queue a socket keeps for its next one;
// longer ones go back to queuePool, shared by all sockets. Queues shorter
// than minSpare are not kept: an idle socket holds no queue at all.
const smallQueue, minSpare = 256, 4

var queuePool sync.Pool // of *[]item, length 0

// giveBack returns the drained slice for reuse and reports whether more is
// queued (the socket stays scheduled: the worker puts it back on the ready
// queue); else the socket leaves the writers until it is signalled again.
func (c *client) giveBack(items []item) (again bool) {
	clear(items)
	keep := cap(items) <= smallQueue && cap(items) >= minSpare
	if cap(items) > smallQueue {
		items = items[:0]
		queuePool.Put(&items)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if keep {
		c.spare = items[:0]
	}
	if len(c.queue) > 0 || c.closing {
		c.readyAt = time.Now()
		return true
	}
	c.running = false
	c.drains.Done()
	return false
}

// turn writes what is queued, once, on a writer worker, and reports whether
// more was queued meanwhile. A write error or a close ends the socket (and its
// read loop, through the context); the close handshake, which waits for the
// peer, runs on a goroutine of its own.
func (c *client) turn() (again bool) {
	items, closing, code, reason, waited, ok := c.next()
	if !ok {
		return false
	}
	stages := c.w.h.writers.obs
	stages.Stage(StageWait, waited)
	start := time.Now()
	err := c.w.write(c.ctx, items)
	stages.Stage(StageWrite, time.Since(start))
	if err != nil {
		c.w.h.log.Debug("socket write failed", "err", err)
		_ = c.conn.CloseNow()
		c.stop()
		c.drains.Done() // running stays set: the socket is not scheduled again
		return false
	}
	if closing {
		go func() {
			defer c.drains.Done()
			c.countClose(c.label())
			_ = c.conn.Close(code, reason)
			c.stop()
		}()
		return false
	}
	return c.giveBack(items)
}

// writer is the write side of one socket.
type writer struct {
	h   *Handler
	c   *client
	buf []byte      // a batched frame being built, from batchPool; nil between pages
	ats []time.Time // change times of the event messages in buf
}

// batchPool holds the buffers batched frames are built in, shared by all
// sockets: a socket keeps none between writes.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// ping sends a WebSocket ping and drops the peer when no pong comes in time.
// Its deadline does not hang on the socket's context (that would give every
// socket a map of child contexts, kept after the ping); a socket that ends
// meanwhile ends the ping through its connection.
func (c *client) ping(interval time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), interval/2+time.Second)
	defer cancel()
	if err := c.conn.Ping(ctx); err != nil && c.ctx.Err() == nil {
		c.w.h.log.Debug("socket ping unanswered", "err", err)
		_ = c.conn.CloseNow()
		c.stop()
	}
}

// write sends items: messages one frame each, or, with the batch subprotocol,
// several per frame. A replay item flushes what came before it and then streams
// the log.
//
// One deadline (WriteTimeout) covers each run of queued messages; a replay gets a
// fresh one per page of the log.
func (w *writer) write(ctx context.Context, items []item) error {
	for len(items) > 0 {
		n := 0
		for n < len(items) && items[n].replay == nil {
			n++
		}
		if err := w.writePage(ctx, func(wctx context.Context) error {
			for _, it := range items[:n] {
				if err := w.add(wctx, it.msg, it.at); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if n < len(items) {
			if err := w.runReplay(ctx, items[n].replay); err != nil {
				return err
			}
			n++
		}
		items = items[n:]
	}
	return nil
}

func (w *writer) add(ctx context.Context, msg []byte, at time.Time) error {
	if !w.c.batch {
		w.ats = append(w.ats[:0], at)
		return w.frame(ctx, msg)
	}
	if len(w.buf) > 0 && len(w.buf)+len(msg) > maxBatchFrame {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	if w.buf == nil {
		w.buf = (*batchPool.Get().(*[]byte))[:0]
	}
	if len(w.buf) > 0 {
		w.buf = append(w.buf, '\n')
	}
	w.buf = append(w.buf, msg...)
	w.ats = append(w.ats, at)
	return nil
}

func (w *writer) flush(ctx context.Context) error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.frame(ctx, w.buf)
	w.buf = w.buf[:0]
	return err
}

// release returns the batch buffer to the pool, unless a huge message grew it.
func (w *writer) release() {
	if w.buf != nil && cap(w.buf) <= 2*maxBatchFrame {
		b := w.buf[:0]
		batchPool.Put(&b)
	}
	w.buf = nil
}

// frame writes one frame; ctx carries the write deadline. The frame is counted
// (and its latency observed) before it is written, so that a client that has
// read it never scrapes a counter without it; a write that fails ends the
// socket.
func (w *writer) frame(ctx context.Context, b []byte) error {
	w.h.obs.FrameSent(time.Now(), w.ats)
	w.ats = w.ats[:0]
	return w.c.conn.Write(ctx, websocket.MessageText, b)
}

// replay is a resume request: the events of entity after since up to upto that
// match sub, read from the log when the write loop reaches this point.
type replay struct {
	channel, entity string
	since, upto     int64
	sub             *events.Subscription
	reading         func(channel string) bool // false once the subscription ended or was revoked
}

func (w *writer) runReplay(ctx context.Context, r *replay) error {
	after := r.since
	for after < r.upto {
		if r.reading != nil && !r.reading(r.channel) {
			return nil
		}
		recs, pruned, err := w.h.replayer.ReplayEvents(ctx, r.entity, after, r.upto, 1000)
		if err != nil {
			if ctx.Err() == nil { // else the socket is closing: nothing failed
				w.h.log.Error("replaying events failed", "err", err)
			}
			return err
		}
		if after < pruned {
			return w.writePage(ctx, func(wctx context.Context) error { return w.add(wctx, msgResync(r.channel), time.Time{}) })
		}
		if len(recs) == 0 {
			return nil
		}
		err = w.writePage(ctx, func(wctx context.Context) error {
			for i := range recs {
				ev := events.Event{Record: recs[i]}
				if !r.sub.Matches(&ev) {
					continue
				}
				if err := w.add(wctx, recs[i].Frame(), time.Time{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		after = recs[len(recs)-1].Position
	}
	return nil
}

// writePage runs add calls and a final flush under one write deadline: the
// watchdog (Handler.Run) closes the socket when the page outlasts WriteTimeout,
// and the end of ctx aborts it.
func (w *writer) writePage(ctx context.Context, adds func(context.Context) error) (err error) {
	w.c.writeSince.Store(time.Now().UnixNano())
	defer w.c.writeSince.Store(0)
	if err := ctx.Err(); err != nil { // checked after the flag: AfterFunc sees one or the other
		return err
	}
	wctx := context.WithoutCancel(ctx)
	defer w.release()
	// Without batching every message is a frame of its own; corked, the frames
	// of this page still go out in one write (a batched page is one frame
	// already, written without a copy).
	if fw := w.c.fw; fw != nil && !w.c.batch {
		fw.Cork()
		defer func() {
			if uerr := fw.Uncork(); err == nil {
				err = uerr
			}
		}()
	}
	if err := adds(wctx); err != nil {
		return err
	}
	return w.flush(wctx)
}
